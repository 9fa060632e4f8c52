package kind

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPreflightWithoutDocker runs the real docker CLI. On a machine without a
// Docker daemon it must fail fast, say Docker is required and point to the
// local provider.
func TestPreflightWithoutDocker(t *testing.T) {
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("no docker CLI here; TestPreflightMissingCLI covers that case")
	}
	if err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").Run(); err == nil {
		t.Skip("a Docker daemon answers here, so Preflight has nothing to refuse")
	}

	start := time.Now()
	err := Preflight(context.Background())
	elapsed := time.Since(start)
	if err == nil {
		t.Fatal("Preflight passed without a Docker daemon")
	}
	if !errors.Is(err, ErrNoDocker) {
		t.Errorf("error does not wrap ErrNoDocker: %v", err)
	}
	for _, want := range []string{"needs Docker", "make e2e PROVIDER=local"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if elapsed > DefaultTimeouts().Preflight+time.Second {
		t.Errorf("Preflight took %s, longer than its %s timeout", elapsed, DefaultTimeouts().Preflight)
	}
}

func TestPreflightMissingCLI(t *testing.T) {
	err := preflight(context.Background(), time.Second, filepath.Join(t.TempDir(), "no-docker-here"), 0)
	if !errors.Is(err, ErrNoDocker) || !strings.Contains(err.Error(), "PROVIDER=local") {
		t.Fatalf("error = %v, want ErrNoDocker with the local provider advice", err)
	}
}

// fakeDocker writes a docker stand-in script that prints version and exits
// with code, or sleeps when hang is set.
func fakeDocker(t *testing.T, version string, code int, hang bool) string {
	t.Helper()
	script := "#!/bin/sh\n"
	if hang {
		script += "exec sleep 30\n"
	}
	script += "echo '" + version + "'\necho 'daemon says no' >&2\nexit " + map[bool]string{true: "1", false: "0"}[code != 0] + "\n"
	path := filepath.Join(t.TempDir(), "docker")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestPreflightDaemonError(t *testing.T) {
	err := preflight(context.Background(), 5*time.Second, fakeDocker(t, "", 1, false), 0)
	if !errors.Is(err, ErrNoDocker) || !strings.Contains(err.Error(), "daemon says no") {
		t.Fatalf("error = %v, want ErrNoDocker with docker's stderr", err)
	}
}

func TestPreflightDaemonHangs(t *testing.T) {
	start := time.Now()
	err := preflight(context.Background(), 300*time.Millisecond, fakeDocker(t, "", 0, true), 0)
	if !errors.Is(err, ErrNoDocker) || !strings.Contains(err.Error(), "timed out after 300ms") {
		t.Fatalf("error = %v, want a timeout naming 300ms", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("preflight waited %s for a hanging docker", time.Since(start))
	}
}

func TestPreflightNeedsRoot(t *testing.T) {
	docker := fakeDocker(t, "28.2.2", 0, false)
	if err := preflight(context.Background(), 5*time.Second, docker, 0); err != nil {
		t.Fatalf("root with a working daemon: %v", err)
	}
	err := preflight(context.Background(), 5*time.Second, docker, 1000)
	if err == nil || errors.Is(err, ErrNoDocker) || !strings.Contains(err.Error(), "needs root") {
		t.Fatalf("error = %v, want a root error that is not ErrNoDocker", err)
	}
}

package kind

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// ErrNoDocker is wrapped by Preflight's error when no Docker daemon responds.
var ErrNoDocker = errors.New("no Docker daemon responded")

// localAdvice points a user without Docker to the local provider.
const localAdvice = "run the same scenarios on this machine with the local provider instead: make e2e PROVIDER=local"

// Preflight checks, within a few seconds, what a real kind run needs before
// it creates anything. A Docker daemon must respond to `docker info`,
// because kind's nodes are Docker containers. The process must be root,
// because the provider enters the nodes' network namespaces from the host.
// The dry run needs neither.
func Preflight(ctx context.Context) error {
	return preflight(ctx, DefaultTimeouts().Preflight, "docker", os.Geteuid())
}

func preflight(ctx context.Context, timeout time.Duration, docker string, euid int) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, docker, "info", "--format", "{{.ServerVersion}}")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	version := strings.TrimSpace(stdout.String())
	switch {
	case errors.Is(err, exec.ErrNotFound):
		return fmt.Errorf("kind: the kind provider needs Docker, and the docker CLI is not installed (%w): install Docker, or %s", ErrNoDocker, localAdvice)
	case ctx.Err() != nil:
		return fmt.Errorf("kind: the kind provider needs Docker: `docker info` timed out after %s (%w): check that the daemon runs, or %s", timeout, ErrNoDocker, localAdvice)
	case err != nil || version == "":
		detail := strings.TrimSpace(stderr.String())
		if detail == "" && err != nil {
			detail = err.Error()
		}
		return fmt.Errorf("kind: the kind provider needs Docker: `docker info` failed: %s (%w): start the Docker daemon, or %s", detail, ErrNoDocker, localAdvice)
	}

	if euid != 0 {
		return fmt.Errorf("kind: Docker %s responds, but the kind provider needs root to enter the kind nodes' network namespaces and wire the parent bridges: run it with sudo", version)
	}
	return nil
}

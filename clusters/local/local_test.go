package local

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vmnet-e2e/vmnet-e2e/framework/cleanup"
	"github.com/vmnet-e2e/vmnet-e2e/framework/report"
	"github.com/vmnet-e2e/vmnet-e2e/framework/scenario"
)

func TestMain(m *testing.M) {
	ctx, stop := cleanup.NotifyContext(context.Background())
	testContext = ctx
	code := m.Run()
	stop()
	os.Exit(code)
}

// testContext is cancelled by SIGINT or SIGTERM, so an interrupted test run
// still tears down what it built.
var testContext = context.Background()

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the local provider needs root")
	}
}

// runDirs returns the run directories under cleanup.StateDir.
func runDirs(t *testing.T) map[string]bool {
	t.Helper()
	entries, err := os.ReadDir(cleanup.StateDir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	dirs := map[string]bool{}
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), "vmnet-") {
			dirs[e.Name()] = true
		}
	}
	return dirs
}

// ledgerProcesses returns the processes a run's ledger recorded.
func ledgerProcesses(t *testing.T, dir string) []cleanup.Resource {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "ledger.jsonl"))
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []cleanup.Resource
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		var rec struct {
			Op       string           `json:"op"`
			Resource cleanup.Resource `json:"resource"`
		}
		if json.Unmarshal(scanner.Bytes(), &rec) == nil && rec.Op == "add" && rec.Resource.Kind == cleanup.KindProcess {
			out = append(out, rec.Resource)
		}
	}
	return out
}

// TestObserveInterruptedLeavesNothing cancels a scenario while its guest
// boots, as Ctrl-C does, and checks that the run's namespaces, its qemu
// process and its state directory are gone when Observe returns.
func TestObserveInterruptedLeavesNothing(t *testing.T) {
	requireRoot(t)
	s, err := scenario.LoadFile(filepath.Join("..", "..", "scenarios", "linux-bridge", "cloud-init-nic-name.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Prepare(testContext); err != nil {
		t.Fatal(err)
	}

	before := runDirs(t)
	ctx, cancel := context.WithCancel(testContext)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := p.Observe(ctx, s, &report.Phases{})
		done <- err
	}()

	// wait until this run's guest runs, then interrupt it
	var runDir string
	var processes []cleanup.Resource
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) && len(processes) == 0 {
		time.Sleep(200 * time.Millisecond)
		for dir := range runDirs(t) {
			if !before[dir] {
				runDir = filepath.Join(cleanup.StateDir, dir)
				processes = ledgerProcesses(t, runDir)
			}
		}
	}
	if len(processes) == 0 {
		t.Fatal("no guest process appeared in a new run's ledger within 2 minutes")
	}
	// let the guest get into its boot before the interrupt
	time.Sleep(10 * time.Second)
	cancel()

	select {
	case err := <-done:
		if err == nil {
			t.Error("Observe returned no error after its context was cancelled")
		}
	case <-time.After(3 * time.Minute):
		t.Fatal("Observe did not return within 3 minutes of the cancel")
	}

	run := filepath.Base(runDir)
	if _, err := os.Stat(runDir); !os.IsNotExist(err) {
		t.Errorf("run directory %s still exists", runDir)
	}
	for _, role := range []string{"node", "ext", "pod"} {
		if _, err := os.Stat(filepath.Join("/run/netns", run+"-"+role)); !os.IsNotExist(err) {
			t.Errorf("namespace %s-%s still exists", run, role)
		}
	}
	for _, proc := range processes {
		if err := syscall.Kill(proc.PID, 0); err == nil {
			if start, err := cleanup.ProcessStartTime(proc.PID); err == nil && start == proc.StartTime {
				t.Errorf("%s still runs", proc)
			}
		}
	}
}

package cleanup

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

func TestLedgerCloseReleasesNewestFirst(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the ledger lives under /run and needs root")
	}
	l, err := NewLedger(fmt.Sprintf("test-close-%d", os.Getpid()), nil)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, name := range []string{"first", "second", "third"} {
		l.Track(Resource{Kind: KindPath, Name: name}, func(context.Context) error {
			order = append(order, name)
			return nil
		})
	}
	h := l.Track(Resource{Kind: KindPath, Name: "early"}, func(context.Context) error {
		order = append(order, "early")
		return nil
	})
	if err := h.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{"early", "third", "second", "first"}
	if fmt.Sprint(order) != fmt.Sprint(want) {
		t.Errorf("release order %v, want %v", order, want)
	}
	if _, err := os.Stat(l.Dir()); !os.IsNotExist(err) {
		t.Errorf("run directory %s still exists after Close", l.Dir())
	}
}

// TestReapEndedRun writes the ledger of a run whose owner has exited and
// checks that Reap stops the process it recorded and removes its directory.
func TestReapEndedRun(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the ledger lives under /run and needs root")
	}

	sleeper := exec.Command("sleep", "300")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sleeper.Process.Kill(); _ = sleeper.Wait() })
	exited := make(chan struct{})
	go func() { _ = sleeper.Wait(); close(exited) }()

	// The owner is a process that has already ended.
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}

	runID := fmt.Sprintf("test-reap-%d", os.Getpid())
	dir := filepath.Join(StateDir, runID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	owner := fmt.Sprintf(`{"pid":%d,"startTime":1}`, gone.Process.Pid)
	if err := os.WriteFile(filepath.Join(dir, "owner.json"), []byte(owner), 0o600); err != nil {
		t.Fatal(err)
	}
	proc, err := ProcessResource("sleep", sleeper.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	ledger := fmt.Sprintf("{\"op\":\"add\",\"resource\":{\"kind\":\"process\",\"name\":\"sleep\",\"pid\":%d,\"startTime\":%d}}\n", proc.PID, proc.StartTime)
	if err := os.WriteFile(filepath.Join(dir, "ledger.jsonl"), []byte(ledger), 0o600); err != nil {
		t.Fatal(err)
	}

	reaped, err := Reap(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, id := range reaped {
		found = found || id == runID
	}
	if !found {
		t.Fatalf("Reap returned %v, want it to include %s", reaped, runID)
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Errorf("process %d still runs after Reap", proc.PID)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("run directory %s still exists after Reap", dir)
	}
}

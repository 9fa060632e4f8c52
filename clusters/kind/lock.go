package kind

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/vmnet-e2e/vmnet-e2e/framework/cleanup"
)

// scenarioLock serializes scenarios on one cluster across the processes of
// a parallel suite. Scenarios share each parent's L2 segment and often reuse
// the same static addresses and object names, so two at once would reply to
// each other's probes.
type scenarioLock struct {
	path string
}

func newScenarioLock(clusterName string) scenarioLock {
	return scenarioLock{path: filepath.Join(cleanup.StateDir, "kind-"+clusterName+".lock")}
}

// acquire takes the lock with flock(2), polling every second until ctx ends,
// and returns the function that releases it. The kernel releases the lock
// when the process dies, so a killed run never leaves it held.
func (l scenarioLock) acquire(ctx context.Context, log *slog.Logger) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(l.path), 0o755); err != nil {
		return nil, fmt.Errorf("kind: create %s: %w", filepath.Dir(l.path), err)
	}
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("kind: open scenario lock %s: %w", l.path, err)
	}

	start := time.Now()
	logged := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("kind: lock %s: %w", l.path, err)
		}
		if !logged {
			log.Info("waiting for another process's scenario to finish", "lock", l.path)
			logged = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("kind: waited %s for the scenario lock %s: %w", time.Since(start).Round(time.Second), l.path, ctx.Err())
		case <-time.After(time.Second):
		}
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

package filelock

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func TestLockWaitsForHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	unlock, err := Lock(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}

	// A second lock on the same file, through another open file
	// description, must wait and give up with the context.
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	waited := false
	if _, err := Lock(ctx, path, func() { waited = true }); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("second Lock while held returned %v, want a deadline error", err)
	}
	if !waited {
		t.Error("onWait was not called while the lock was held")
	}

	unlock()
	unlockAgain, err := Lock(context.Background(), path, nil)
	if err != nil {
		t.Fatalf("Lock after release: %v", err)
	}
	unlockAgain()
}

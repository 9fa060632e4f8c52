// Package filelock serializes work across processes with an exclusive
// flock(2) on a file, such as two test processes that would otherwise build
// the same cached artifact at once.
package filelock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// pollInterval is how often Lock retries while another process holds the
// lock.
const pollInterval = time.Second

// Lock takes an exclusive flock on path, creating the file if needed, and
// returns the function that releases it. While another process holds the
// lock it retries every second, calls onWait once (when not nil) so the caller
// can say what it waits for, and gives up when ctx ends.
func Lock(ctx context.Context, path string, onWait func()) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("filelock: open %s: %w", path, err)
	}

	waited := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); _ = f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			_ = f.Close()
			return nil, fmt.Errorf("filelock: lock %s: %w", path, err)
		}
		if !waited && onWait != nil {
			onWait()
		}
		waited = true

		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, fmt.Errorf("filelock: wait for %s: %w", path, ctx.Err())
		case <-time.After(pollInterval):
		}
	}
}

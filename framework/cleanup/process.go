package cleanup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ProcessStartTime returns field 22 of /proc/PID/stat (starttime, clock ticks
// since boot). Together with the PID it names one process for its lifetime.
func ProcessStartTime(pid int) (uint64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("cleanup: read start time of pid %d: %w", pid, err)
	}

	// The command name (field 2) is in parentheses and may hold spaces, so
	// count fields from the last ')'.
	end := bytes.LastIndexByte(data, ')')
	if end < 0 {
		return 0, fmt.Errorf("cleanup: unexpected /proc/%d/stat format", pid)
	}
	fields := strings.Fields(string(data[end+1:]))
	// fields[0] is field 3 (state), so field 22 is fields[19].
	if len(fields) < 20 {
		return 0, fmt.Errorf("cleanup: /proc/%d/stat has %d fields after the command name, want at least 20", pid, len(fields))
	}
	start, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("cleanup: parse start time of pid %d: %w", pid, err)
	}
	return start, nil
}

// ProcessResource records a started process for the ledger.
func ProcessResource(name string, pid int) (Resource, error) {
	start, err := ProcessStartTime(pid)
	if err != nil {
		return Resource{}, err
	}
	return Resource{Kind: KindProcess, Name: name, PID: pid, StartTime: start}, nil
}

// TerminateProcess sends SIGTERM to the process r names, waits up to grace for
// it to exit, then sends SIGKILL. It does nothing when the PID no longer
// belongs to that process. Only Reap, which cannot wait(2) on another
// process's children, needs this; a parent stops its own child with
// exec.Cmd.
func TerminateProcess(ctx context.Context, r Resource, grace time.Duration) error {
	if !processAlive(r.PID, r.StartTime) {
		return nil
	}
	if err := syscall.Kill(r.PID, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("cleanup: SIGTERM %s: %w", r, err)
	}

	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if !processAlive(r.PID, r.StartTime) {
			return nil
		}
		select {
		case <-ctx.Done():
			deadline = time.Now()
		case <-time.After(100 * time.Millisecond):
		}
	}

	if !processAlive(r.PID, r.StartTime) {
		return nil
	}
	if err := syscall.Kill(r.PID, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("cleanup: SIGKILL %s: %w", r, err)
	}
	return nil
}

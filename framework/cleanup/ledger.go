// Package cleanup records everything a run creates (network namespaces, guest
// processes, files) and removes it in reverse order: at the end of the run, when
// the run fails, when it is interrupted, and, through Reap, after a run that was
// killed before it could clean up.
//
// The record is a ledger file per run under StateDir. Processes are recorded by
// PID together with their start time, so a later Reap never signals an unrelated
// process that reused the PID. Nothing is ever found or killed by name.
package cleanup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

// StateDir contains one directory per run: its ledger and the files the run
// creates (overlays, seeds, consoles, CNI cache).
const StateDir = "/run/vmnet-e2e"

// Kind is the type of a tracked resource; it decides how Reap removes it.
type Kind string

const (
	// KindNetns is a named network namespace under /run/netns.
	KindNetns Kind = "netns"
	// KindProcess is a child process, identified by PID and start time.
	KindProcess Kind = "process"
	// KindPath is a file or directory that the run created.
	KindPath Kind = "path"
	// KindStep is a teardown step that only the running process can take
	// (CNI DEL, closing a file, stopping a server). It leaves nothing for
	// Reap: what it would undo disappears with the namespaces and the process.
	KindStep Kind = "step"
)

// Resource identifies one thing a run created.
type Resource struct {
	Kind Kind   `json:"kind"`
	Name string `json:"name"`
	// PID and StartTime identify a process (KindProcess). StartTime is field
	// 22 of /proc/PID/stat, in clock ticks since boot.
	PID       int    `json:"pid,omitempty"`
	StartTime uint64 `json:"startTime,omitempty"`
}

func (r Resource) String() string {
	if r.Kind == KindProcess {
		return fmt.Sprintf("process %s (pid %d)", r.Name, r.PID)
	}
	return fmt.Sprintf("%s %s", r.Kind, r.Name)
}

// Ledger is the record of one run. It is safe for concurrent use.
type Ledger struct {
	runID string
	dir   string
	log   *slog.Logger

	mu      sync.Mutex
	file    *os.File
	entries []*Handle
	closed  bool
}

// Handle releases one tracked resource.
type Handle struct {
	ledger   *Ledger
	resource Resource
	release  func(context.Context) error

	once sync.Once
	err  error
}

type record struct {
	Op       string   `json:"op"` // "add" or "done"
	Resource Resource `json:"resource"`
}

type owner struct {
	PID       int    `json:"pid"`
	StartTime uint64 `json:"startTime"`
}

// NewLedger creates StateDir/runID and starts its ledger. runID must be unique
// among live runs; it becomes part of namespace names.
func NewLedger(runID string, log *slog.Logger) (*Ledger, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir := filepath.Join(StateDir, runID)
	if err := os.MkdirAll(StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("cleanup: create %s: %w (the harness needs root)", StateDir, err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cleanup: create run directory %s: %w", dir, err)
	}

	self, err := ProcessStartTime(os.Getpid())
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	ownerJSON, _ := json.Marshal(owner{PID: os.Getpid(), StartTime: self})
	if err := os.WriteFile(filepath.Join(dir, "owner.json"), ownerJSON, 0o600); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("cleanup: write owner of run %s: %w", runID, err)
	}

	file, err := os.OpenFile(filepath.Join(dir, "ledger.jsonl"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("cleanup: open ledger of run %s: %w", runID, err)
	}
	return &Ledger{runID: runID, dir: dir, log: log, file: file}, nil
}

// RunID returns the run's identifier.
func (l *Ledger) RunID() string { return l.runID }

// Dir returns the run's state directory; files placed there are removed with
// the run.
func (l *Ledger) Dir() string { return l.dir }

// Track records r and the function that removes it. Call it right after the
// resource exists, before any step that can fail. release must tolerate a
// resource that is already gone.
func (l *Ledger) Track(r Resource, release func(context.Context) error) *Handle {
	h := &Handle{ledger: l, resource: r, release: release}

	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = append(l.entries, h)
	l.append(record{Op: "add", Resource: r})
	return h
}

// Release removes the resource now, once; later calls return the first
// result.
func (h *Handle) Release(ctx context.Context) error {
	h.once.Do(func() {
		h.err = h.release(ctx)
		if h.err != nil {
			h.ledger.log.Warn("cleanup failed", "resource", h.resource.String(), "error", h.err)
			return
		}
		h.ledger.mu.Lock()
		h.ledger.append(record{Op: "done", Resource: h.resource})
		h.ledger.mu.Unlock()
	})
	return h.err
}

// Close releases every resource still held, newest first, and then removes the
// run directory. It returns every release error, joined; the directory stays
// when something could not be removed, so that Reap can retry.
func (l *Ledger) Close(ctx context.Context) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	entries := append([]*Handle(nil), l.entries...)
	l.mu.Unlock()

	var errs []error
	for i := len(entries) - 1; i >= 0; i-- {
		if err := entries[i].Release(ctx); err != nil {
			errs = append(errs, fmt.Errorf("release %s: %w", entries[i].resource, err))
		}
	}

	l.mu.Lock()
	_ = l.file.Close()
	l.mu.Unlock()

	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if err := os.RemoveAll(l.dir); err != nil {
		return fmt.Errorf("cleanup: remove run directory %s: %w", l.dir, err)
	}
	return nil
}

// append writes one ledger line; the caller holds l.mu. The ledger is only a
// safety net for Reap, so a write error is logged and not returned.
func (l *Ledger) append(rec record) {
	if l.file == nil || l.closed && rec.Op == "add" {
		return
	}
	line, _ := json.Marshal(rec)
	if _, err := l.file.Write(append(line, '\n')); err != nil {
		l.log.Warn("cannot write cleanup ledger", "run", l.runID, "error", err)
	}
}

// processAlive reports whether pid is running and started at startTime.
func processAlive(pid int, startTime uint64) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	got, err := ProcessStartTime(pid)
	return err == nil && got == startTime
}

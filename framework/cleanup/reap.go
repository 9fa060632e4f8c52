package cleanup

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	vnetns "github.com/vishvananda/netns"
)

// Reap removes what earlier runs left behind: for every run directory under
// StateDir whose owner process is gone, it releases each resource the ledger
// added and never marked done, newest first, then removes the directory. Runs
// whose owner is alive (parallel Ginkgo processes, for example) are left alone.
// It returns the IDs of the runs it reaped.
func Reap(ctx context.Context, log *slog.Logger) ([]string, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dirs, err := os.ReadDir(StateDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cleanup: list %s: %w", StateDir, err)
	}

	var reaped []string
	var errs []error
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		dir := filepath.Join(StateDir, d.Name())
		if ownerAlive(dir) {
			continue
		}
		log.Info("removing what an ended run left behind", "run", d.Name())
		if err := reapRun(ctx, dir, log); err != nil {
			errs = append(errs, err)
			continue
		}
		reaped = append(reaped, d.Name())
	}
	return reaped, errors.Join(errs...)
}

func ownerAlive(dir string) bool {
	data, err := os.ReadFile(filepath.Join(dir, "owner.json"))
	if err != nil {
		// A directory without an owner file is half-made; treat its owner as
		// alive for a minute so that a run being created right now is not
		// reaped under its feet.
		info, statErr := os.Stat(dir)
		return statErr == nil && time.Since(info.ModTime()) < time.Minute
	}
	var o owner
	if err := json.Unmarshal(data, &o); err != nil {
		return false
	}
	return processAlive(o.PID, o.StartTime)
}

func reapRun(ctx context.Context, dir string, log *slog.Logger) error {
	pending, err := pendingResources(filepath.Join(dir, "ledger.jsonl"))
	if err != nil {
		return err
	}

	var errs []error
	for i := len(pending) - 1; i >= 0; i-- {
		r := pending[i]
		log.Info("removing", "resource", r.String())
		if err := releaseResource(ctx, r); err != nil {
			errs = append(errs, fmt.Errorf("release %s: %w", r, err))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("cleanup: remove %s: %w", dir, err)
	}
	return nil
}

// pendingResources replays a ledger and returns resources added and not done,
// in the order they were added.
func pendingResources(path string) ([]Resource, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cleanup: open ledger %s: %w", path, err)
	}
	defer f.Close()

	var order []Resource
	open := map[Resource]int{}
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		var rec record
		if err := json.Unmarshal(scanner.Bytes(), &rec); err != nil {
			// A line cut short by a kill is the only expected damage.
			continue
		}
		switch rec.Op {
		case "add":
			open[rec.Resource]++
			order = append(order, rec.Resource)
		case "done":
			open[rec.Resource]--
		}
	}
	if err := scanner.Err(); err != nil {
		return nil, fmt.Errorf("cleanup: read ledger %s: %w", path, err)
	}

	var pending []Resource
	for i := len(order) - 1; i >= 0; i-- {
		r := order[i]
		if open[r] > 0 {
			open[r]--
			pending = append([]Resource{r}, pending...)
		}
	}
	return pending, nil
}

// releaseResource removes a resource found in the ledger of an ended run.
func releaseResource(ctx context.Context, r Resource) error {
	switch r.Kind {
	case KindProcess:
		return TerminateProcess(ctx, r, 5*time.Second)

	case KindNetns:
		if _, err := os.Stat(filepath.Join("/run/netns", r.Name)); errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return vnetns.DeleteNamed(r.Name)

	case KindStep:
		return nil

	case KindPath:
		// Only paths under StateDir or the user's cache may be recorded; refuse
		// anything else rather than remove it.
		clean := filepath.Clean(r.Name)
		if !strings.HasPrefix(clean, StateDir+"/") && !strings.Contains(clean, "/vmnet-e2e/") {
			return fmt.Errorf("cleanup: refusing to remove %s: not a vmnet-e2e path", clean)
		}
		return os.RemoveAll(clean)
	}
	return fmt.Errorf("cleanup: unknown resource kind %q", r.Kind)
}

// Command vmnet runs, reproduces and inspects KubeVirt secondary-network
// scenarios: lint and repro for a user's own manifests, image to build the
// local guest image, report to print a report's verdict table, plan for the
// kind provider's dry run, and cleanup to remove what interrupted runs left.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/vmnet-e2e/vmnet-e2e/framework/cleanup"
	"github.com/vmnet-e2e/vmnet-e2e/framework/scenario"
)

// Exit codes: 0 reachable (or success), 1 unreachable or rejected (or a
// failed check), 2 invalid input, 3 the harness could not run (not root, a
// missing package, a step that failed), 130 interrupted.
const (
	exitOK          = 0
	exitFailed      = 1
	exitInvalid     = 2
	exitCannotRun   = 3
	exitInterrupted = 130
)

// exitError carries the exit code a command wants.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func main() {
	// The first Ctrl-C cancels the context so that every command removes what
	// it created; a second one exits at once (vmnet cleanup removes the rest).
	ctx, stop := cleanup.NotifyContext(context.Background())
	cmd := newRootCommand()
	err := cmd.ExecuteContext(ctx)
	interrupted := ctx.Err() != nil
	stop()
	if err == nil {
		os.Exit(exitOK)
	}

	var exit *exitError
	switch {
	case errors.As(err, &exit):
		if exit.err != nil {
			fmt.Fprintln(os.Stderr, "vmnet:", exit.err)
		}
		os.Exit(exit.code)
	case scenario.IsInputError(err):
		fmt.Fprintln(os.Stderr, "vmnet:", err)
		os.Exit(exitInvalid)
	case interrupted && errors.Is(err, context.Canceled):
		fmt.Fprintln(os.Stderr, "vmnet: interrupted; what the run had created was removed (vmnet cleanup removes what a killed run leaves)")
		os.Exit(exitInterrupted)
	default:
		fmt.Fprintln(os.Stderr, "vmnet:", err)
		os.Exit(exitCannotRun)
	}
}

// Package clusters defines what a provider does for the suites: it runs a
// scenario's manifests on some data plane and returns the evidence it
// observed. clusters/local rebuilds the data plane in network namespaces on
// this machine; clusters/kind runs it on a kind cluster with KubeVirt and
// Multus. Both return the same evidence type, so verdicts compare.
package clusters

import (
	"context"

	"github.com/vmnet-e2e/vmnet-e2e/framework/report"
	"github.com/vmnet-e2e/vmnet-e2e/framework/scenario"
	"github.com/vmnet-e2e/vmnet-e2e/framework/verdict"
)

// Provider runs scenarios on one kind of data plane.
type Provider interface {
	// Name is "local" or "kind"; it appears in reports.
	Name() string

	// Prepare readies what all scenarios share (a guest image, a cluster),
	// once per suite, and returns data that Attach passes to other parallel
	// processes of the same suite.
	Prepare(ctx context.Context) ([]byte, error)
	// Attach readies a parallel process with the data Prepare returned. The
	// process that ran Prepare does not call it.
	Attach(ctx context.Context, data []byte) error
	// Teardown undoes Prepare; the suite calls it once, at the end.
	Teardown(ctx context.Context) error

	// Skip returns why the provider cannot run the scenario, or "" when it
	// can.
	Skip(s *scenario.Scenario) string

	// Observe runs the scenario and returns what it observed. It removes
	// everything it created before it returns, also on error or when ctx is
	// cancelled. An error means the evidence is incomplete, not that the
	// VM is unreachable.
	Observe(ctx context.Context, s *scenario.Scenario, phases *report.Phases) (*verdict.Evidence, error)
}

// Package providers creates a provider by name for the suites and the CLI.
package providers

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"

	"github.com/vmnet-e2e/vmnet-e2e/clusters"
	"github.com/vmnet-e2e/vmnet-e2e/clusters/kind"
	"github.com/vmnet-e2e/vmnet-e2e/clusters/local"
	"github.com/vmnet-e2e/vmnet-e2e/framework/guest"
	"github.com/vmnet-e2e/vmnet-e2e/framework/scenario"
)

// Options are the settings every provider takes.
type Options struct {
	Log *slog.Logger
	// ArtifactsDir receives per-scenario consoles, link tables and evidence.
	ArtifactsDir string
	// Progress receives progress of long steps (image build, cluster
	// creation).
	Progress io.Writer
	// Scenarios are the scenarios of the run; the kind provider needs them
	// to know which parent bridges, CNI plugins and macvtap resources to set
	// up.
	Scenarios []*scenario.Scenario
}

// Names lists the providers New creates.
var Names = []string{"local", "kind"}

// New returns the provider called name.
func New(_ context.Context, name string, opts Options) (clusters.Provider, error) {
	switch name {
	case "local":
		return local.New(local.WithLogger(opts.Log), local.WithArtifactsDir(opts.ArtifactsDir), local.WithProgress(opts.Progress))
	case "kind":
		kindOpts := append([]kind.Option{
			kind.WithLogger(opts.Log),
			kind.WithScenarios(opts.Scenarios),
		}, KindHarnessOptions(guest.NewNonce())...)
		if opts.ArtifactsDir != "" {
			kindOpts = append(kindOpts, kind.WithArtifactsDir(filepath.Join(opts.ArtifactsDir, "kind")))
		}
		return kind.New(kindOpts...)
	}
	return nil, fmt.Errorf("unknown provider %q: use one of %v", name, Names)
}

// Package providers creates a provider by name for the suites and the CLI.
package providers

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"

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
		envOpts, err := KindEnvOptions()
		if err != nil {
			return nil, err
		}
		return kind.New(append(kindOpts, envOpts...)...)
	}
	return nil, fmt.Errorf("unknown provider %q: use one of %v", name, Names)
}

// KindEnvOptions returns the kind settings a user of `make e2e PROVIDER=kind`
// can set: VMNET_KIND_CLUSTER names the cluster (an existing one is reused
// and never deleted), VMNET_KIND_KEEP=1 keeps a cluster the run created, and
// VMNET_KIND_WORKERS sets the number of worker nodes.
func KindEnvOptions() ([]kind.Option, error) {
	var opts []kind.Option
	if name := os.Getenv("VMNET_KIND_CLUSTER"); name != "" {
		opts = append(opts, kind.WithClusterName(name))
	}
	if keep := os.Getenv("VMNET_KIND_KEEP"); keep != "" {
		value, err := strconv.ParseBool(keep)
		if err != nil {
			return nil, fmt.Errorf("VMNET_KIND_KEEP=%q is not a boolean: use 1 or 0", keep)
		}
		opts = append(opts, kind.WithKeep(value))
	}
	if workers := os.Getenv("VMNET_KIND_WORKERS"); workers != "" {
		n, err := strconv.Atoi(workers)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("VMNET_KIND_WORKERS=%q is not a positive number of worker nodes", workers)
		}
		opts = append(opts, kind.WithWorkers(n))
	}
	return opts, nil
}

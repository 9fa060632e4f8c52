package main

import (
	"log/slog"
	"os"

	"github.com/spf13/cobra"
)

type globalOptions struct {
	verbose bool
}

func newRootCommand() *cobra.Command {
	opts := &globalOptions{}
	root := &cobra.Command{
		Use:   "vmnet",
		Short: "Evidence on whether a KubeVirt VM's static IP on a secondary network answers",
		Long: `vmnet rebuilds the data plane Multus and KubeVirt make for a VM on a secondary
network (macvlan, linux-bridge or the macvtap binding), boots a real guest
configured by cloud-init, and probes the VM's static IP from outside the pod.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().BoolVarP(&opts.verbose, "verbose", "v", false, "log every step, not only progress")

	root.AddCommand(
		newCleanupCommand(opts),
		newReportCommand(opts),
		newImageCommand(opts),
		newLintCommand(opts),
		newReproCommand(opts),
		newPlanCommand(opts),
		newPreflightCommand(opts),
		newMatrixCommand(opts),
	)
	return root
}

func (o *globalOptions) logger() *slog.Logger {
	level := slog.LevelInfo
	if o.verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

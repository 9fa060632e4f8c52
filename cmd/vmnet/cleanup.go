package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/vmnet-e2e/vmnet-e2e/framework/cleanup"
)

func newCleanupCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "cleanup",
		Short: "Remove what ended or killed runs left behind (namespaces, guests, files)",
		Long: `cleanup reads the ledger of every run under ` + cleanup.StateDir + ` whose owner
process has exited and removes what it recorded and never released: network
namespaces, qemu processes (by PID and start time, never by name) and files.
Runs whose owner is still alive are left alone.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			reaped, err := cleanup.Reap(cmd.Context(), g.logger())
			for _, id := range reaped {
				fmt.Fprintf(cmd.OutOrStdout(), "removed what run %s left behind\n", id)
			}
			if err != nil {
				return err
			}
			if len(reaped) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "nothing to remove")
			}
			return nil
		},
	}
}

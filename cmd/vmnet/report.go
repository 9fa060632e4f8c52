package main

import (
	"github.com/spf13/cobra"

	"github.com/vmnet-e2e/vmnet-e2e/framework/report"
)

func newReportCommand(_ *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "report [FILE]",
		Short: "Print the verdict table of a JSON report (default " + report.DefaultPath + ")",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := report.DefaultPath
			if len(args) == 1 {
				path = args[0]
			}
			rep, err := report.Read(path)
			if err != nil {
				return err
			}
			if err := report.WriteTable(cmd.OutOrStdout(), rep.Results); err != nil {
				return err
			}
			for _, r := range rep.Results {
				if r.Match != nil && !*r.Match {
					return &exitError{code: exitFailed, err: nil}
				}
			}
			return nil
		},
	}
}

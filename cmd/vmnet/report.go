package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/vmnet-e2e/vmnet-e2e/framework/report"
)

func newReportCommand(_ *globalOptions) *cobra.Command {
	var timing, noTable bool
	cmd := &cobra.Command{
		Use:   "report [FILE]",
		Short: "Print the verdict table of a JSON report (default " + report.DefaultPath + ")",
		Long: `report prints one row per scenario: expected and observed verdicts and whether
they match. It exits 1 when a verdict differs from its expectation. With
--timing it also prints the suite's wall time divided by one guest's median
boot-to-network-evidence time, both measured in the run that wrote the report.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := report.DefaultPath
			if len(args) == 1 {
				path = args[0]
			}
			rep, err := report.Read(path)
			if err != nil {
				return err
			}
			if len(rep.Results) == 0 {
				return &exitError{code: exitFailed, err: fmt.Errorf("%s contains no results: no scenario ran (check the label filter)", path)}
			}
			if !noTable {
				if err := report.WriteTable(cmd.OutOrStdout(), rep.Results); err != nil {
					return err
				}
			}
			if timing {
				// A report without guest boots (only rejected scenarios) has no
				// ratio, which is not an error of the table.
				if t, err := report.SuiteTiming(rep); err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "no timing: %v\n", err)
				} else {
					fmt.Fprintf(cmd.OutOrStdout(), "%s (%d parallel processes)\n", t, rep.Processes)
				}
			}
			for _, r := range rep.Results {
				if r.Match != nil && !*r.Match {
					return &exitError{code: exitFailed, err: nil}
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&timing, "timing", false, "also print the ratio of suite wall time to one guest's boot time")
	cmd.Flags().BoolVar(&noTable, "no-table", false, "do not print the table (the suite already did); still fail on a mismatch or an empty report")
	return cmd
}

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vmnet-e2e/vmnet-e2e/framework/lint"
	"github.com/vmnet-e2e/vmnet-e2e/framework/scenario"
)

func newLintCommand(_ *globalOptions) *cobra.Command {
	var files []string
	var output string
	cmd := &cobra.Command{
		Use:   "lint -f FILE...",
		Short: "Check NAD and VM manifests for what keeps a static IP from answering, without a cluster",
		Long: `lint reads the manifests as you apply them (NetworkAttachmentDefinitions and one
VirtualMachine or VirtualMachineInstance, multi-document YAML, several -f
allowed) and reports: fields the API server rejects, networkData cloud-init
cannot use, upper-case MACs, interface names over 15 bytes, networkData keys
the guest will not have as NIC names, MAC matches without spec macAddress, a
NAD without the mac capability, and macvlan under the bridge binding.
It needs no root and no guest. Exit status: 0 no errors, 1 errors found,
2 invalid input.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := validateOutput(output); err != nil {
				return err
			}
			s, err := scenario.LoadFiles(files...)
			if err != nil {
				return err
			}
			findings := lint.Scenario(s)

			if output == "json" {
				if findings == nil {
					findings = []lint.Finding{}
				}
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(findings); err != nil {
					return err
				}
			} else {
				writeFindings(cmd.OutOrStdout(), findings)
			}
			if lint.HasErrors(findings) {
				return &exitError{code: exitFailed}
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVarP(&files, "filename", "f", nil, "manifest file (repeat for several)")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	_ = cmd.MarkFlagRequired("filename")
	return cmd
}

func writeFindings(w io.Writer, findings []lint.Finding) {
	if len(findings) == 0 {
		fmt.Fprintln(w, "no problems found")
		return
	}
	for _, f := range findings {
		where := f.Object
		if f.Path != "" {
			where += " " + f.Path
		}
		fmt.Fprintf(w, "%s %s: %s\n", strings.ToUpper(string(f.Severity)), f.Check, where)
		fmt.Fprintf(w, "  %s\n", f.Message)
		fmt.Fprintf(w, "  fix: %s\n\n", f.Fix)
	}
}

func validateOutput(output string) error {
	if output != "text" && output != "json" {
		return &exitError{code: exitInvalid, err: fmt.Errorf("invalid --output %q: use text or json", output)}
	}
	return nil
}

package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/vmnet-e2e/vmnet-e2e/clusters/kind"
	"github.com/vmnet-e2e/vmnet-e2e/clusters/local"
	"github.com/vmnet-e2e/vmnet-e2e/clusters/providers"
	"github.com/vmnet-e2e/vmnet-e2e/framework/matrix"
	"github.com/vmnet-e2e/vmnet-e2e/framework/scenario"
)

func newPlanCommand(_ *globalOptions) *cobra.Command {
	var provider, dir, labelFilter string
	var workers int
	cmd := &cobra.Command{
		Use:   "plan --provider kind [--scenarios DIR]",
		Short: "Print every step, version, manifest and command a kind run would apply (dry run)",
		Long: `plan prints, in order, what ` + "`make e2e PROVIDER=kind`" + ` would do: the kind cluster
config, the parent bridge wiring per node, the external probe endpoint, each
component manifest with its version and sha256, the objects the harness
renders (KubeVirt CR, macvtap ConfigMap) and each scenario's objects after the
evidence part is joined to their user-data. It needs no Docker and no root and
downloads nothing. The evidence nonce is shown as zeros; a real run draws one.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if provider != "kind" {
				return &exitError{code: exitInvalid, err: fmt.Errorf("invalid --provider %q: only kind has a dry-run plan (the local provider builds nothing outside this machine's namespaces)", provider)}
			}
			scenarios, err := scenario.LoadDir(dir)
			if err != nil {
				return err
			}
			specs, err := matrix.Select(labelFilter, matrix.Specs(scenarios))
			if err != nil {
				return &exitError{code: exitInvalid, err: err}
			}
			if len(specs) == 0 {
				return &exitError{code: exitInvalid, err: fmt.Errorf("the label filter %q selects no scenario under %s", labelFilter, dir)}
			}
			versions, err := kind.LoadVersions()
			if err != nil {
				return err
			}
			// The same VMNET_KIND_* settings a real run reads, then the flags.
			envOpts, err := providers.KindEnvOptions()
			if err != nil {
				return &exitError{code: exitInvalid, err: err}
			}
			opts := append(providers.KindHarnessOptions(providers.PlanNonce), envOpts...)
			if cmd.Flags().Changed("workers") {
				opts = append(opts, kind.WithWorkers(workers))
			}
			plan, err := kind.NewPlan(versions, specs, opts...)
			if err != nil {
				return err
			}
			return plan.Write(cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&provider, "provider", "kind", "provider to plan for (kind)")
	cmd.Flags().StringVar(&dir, "scenarios", "scenarios", "directory of scenario files")
	cmd.Flags().IntVar(&workers, "workers", 1, "number of kind worker nodes (default: VMNET_KIND_WORKERS, else 1)")
	cmd.Flags().StringVar(&labelFilter, "label-filter", "", "Ginkgo label filter selecting the scenarios to plan, as LABEL_FILTER in make e2e")
	return cmd
}

func newPreflightCommand(_ *globalOptions) *cobra.Command {
	var provider string
	cmd := &cobra.Command{
		Use:   "preflight --provider local|kind",
		Short: "Check that this machine can run a provider, and say what is missing",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch provider {
			case "local":
				if err := local.Preflight("/usr/lib/cni"); err != nil {
					return err
				}
			case "kind":
				if err := kind.Preflight(cmd.Context()); err != nil {
					return err
				}
			default:
				return &exitError{code: exitInvalid, err: fmt.Errorf("invalid --provider %q: use local or kind", provider)}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s provider: ready\n", provider)
			return nil
		},
	}
	cmd.Flags().StringVar(&provider, "provider", "local", "provider to check: local or kind")
	return cmd
}

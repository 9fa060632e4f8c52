// Package e2e runs every scenario under scenarios/ as one Ginkgo spec on the
// provider chosen with VMNET_PROVIDER (local by default, or kind). Each spec
// asserts the observed verdict against the scenario's expectation. At the end
// the suite writes the JSON report and prints the verdict table.
package e2e

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/vmnet-e2e/vmnet-e2e/clusters"
	"github.com/vmnet-e2e/vmnet-e2e/clusters/providers"
	"github.com/vmnet-e2e/vmnet-e2e/framework/report"
	"github.com/vmnet-e2e/vmnet-e2e/framework/scenario"
)

// Settings come from flags (go test ./e2e -args -vmnet.provider=kind) or
// from the environment variables named in each flag's help.
var (
	providerName = flag.String("vmnet.provider", envOr("VMNET_PROVIDER", "local"),
		"provider that runs the scenarios: local or kind (env VMNET_PROVIDER)")
	scenarioDir = flag.String("vmnet.scenarios", envOr("VMNET_SCENARIOS", filepath.Join("..", "scenarios")),
		"directory of scenario files, searched recursively (env VMNET_SCENARIOS)")
	reportPath = flag.String("vmnet.report", envOr("VMNET_REPORT", filepath.Join("..", report.DefaultPath)),
		"path of the JSON report written after the suite (env VMNET_REPORT)")
	artifactsDir = flag.String("vmnet.artifacts", envOr("VMNET_ARTIFACTS", filepath.Join("..", "artifacts")),
		"directory for consoles, link tables and per-scenario artifacts (env VMNET_ARTIFACTS)")
)

// resultEntry names the report entry each spec adds; ReportAfterSuite
// collects them from every parallel process.
const resultEntry = "vmnet-result"

var provider clusters.Provider

// loadedScenarios are the scenarios the spec tree was built from; the kind
// provider sets up its cluster for them.
var loadedScenarios []*scenario.Scenario

func TestE2E(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "vmnet-e2e scenarios")
}

var _ = SynchronizedBeforeSuite(func(ctx SpecContext) []byte {
	p, err := newProvider()
	Expect(err).NotTo(HaveOccurred())
	provider = p

	By(fmt.Sprintf("preparing the %s provider", p.Name()))
	data, err := p.Prepare(ctx)
	Expect(err).NotTo(HaveOccurred(), "prepare the %s provider", p.Name())
	return data
}, func(ctx SpecContext, data []byte) {
	if provider != nil {
		return
	}
	p, err := newProvider()
	Expect(err).NotTo(HaveOccurred())
	provider = p
	Expect(p.Attach(ctx, data)).To(Succeed(), "attach to the %s provider", p.Name())
}, NodeTimeout(30*time.Minute))

var _ = SynchronizedAfterSuite(func() {}, func(ctx SpecContext) {
	if provider != nil {
		Expect(provider.Teardown(ctx)).To(Succeed())
	}
}, NodeTimeout(10*time.Minute))

// ReportAfterSuite runs once, after every parallel process has finished, so
// it receives every spec's result.
var _ = ReportAfterSuite("verdict table and JSON report", func(r Report) {
	rep := report.Report{Provider: *providerName, StartedAt: r.StartTime, FinishedAt: r.EndTime, Processes: r.SuiteConfig.ParallelTotal}
	for _, spec := range r.SpecReports {
		for _, entry := range spec.ReportEntries {
			if entry.Name != resultEntry {
				continue
			}
			var result report.Result
			if err := json.Unmarshal([]byte(entry.Value.String()), &result); err != nil {
				fmt.Fprintf(GinkgoWriter, "cannot read the result of %q: %v\n", spec.FullText(), err)
				continue
			}
			rep.Results = append(rep.Results, result)
		}
	}
	// Write the report even when no spec ran, so that a stale report from an
	// earlier run is never read as this run's.
	if err := report.Write(*reportPath, rep); err != nil {
		fmt.Fprintf(os.Stderr, "%v\n", err)
	}
	if len(rep.Results) == 0 {
		fmt.Fprintf(os.Stdout, "\nNo scenario ran: check the label filter. Empty report written to %s.\n", *reportPath)
		return
	}
	fmt.Fprintf(os.Stdout, "\nVerdicts (%s provider, JSON report in %s):\n", rep.Provider, *reportPath)
	if err := report.WriteTable(os.Stdout, rep.Results); err != nil {
		fmt.Fprintf(os.Stderr, "%v\n", err)
	}
})

func newProvider() (clusters.Provider, error) {
	log := slog.New(slog.NewTextHandler(GinkgoWriter, &slog.HandlerOptions{Level: slog.LevelInfo}))
	return providers.New(context.Background(), *providerName, providers.Options{
		Log:          log,
		ArtifactsDir: *artifactsDir,
		Progress:     GinkgoWriter,
		Scenarios:    loadedScenarios,
	})
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

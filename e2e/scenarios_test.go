package e2e

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/vmnet-e2e/vmnet-e2e/framework/report"
	"github.com/vmnet-e2e/vmnet-e2e/framework/scenario"
	"github.com/vmnet-e2e/vmnet-e2e/framework/verdict"
)

// specTimeout bounds one scenario: building the data plane, a TCG guest boot
// (30 to 60 s alone, about 75 s with three guests on two cores), probes and
// teardown, with room for a slow shared machine.
const specTimeout = 10 * time.Minute

var _ = Describe("scenario", func() {
	// Flags are parsed by the time Ginkgo builds the tree in RunSpecs.
	if !flag.Parsed() {
		flag.Parse()
	}
	scenarios, err := scenario.LoadDir(*scenarioDir)
	if err != nil {
		It("loads the scenario files", func() {
			Fail(err.Error())
		})
		return
	}

	for _, s := range scenarios {
		if !s.Harness {
			// Files without a Scenario section (scenarios/examples) are
			// manifests for vmnet repro, not specs.
			continue
		}
		loadedScenarios = append(loadedScenarios, s)
		s := s
		It(s.Name, labelsOf(s), func(ctx SpecContext) {
			Expect(verdict.ValidateExpectation(s.Spec.Expect)).To(Succeed(), "scenario file %s", s.Source)

			if reason := provider.Skip(s); reason != "" {
				Skip(fmt.Sprintf("%s provider: %s", provider.Name(), reason))
			}

			result := report.NewResult(s, provider.Name())
			// Report the source relative to the repository, not to e2e/.
			result.Source = strings.TrimPrefix(filepath.ToSlash(s.Source), "../")
			phases := &report.Phases{}
			start := time.Now()
			evidence, observeErr := provider.Observe(ctx, s, phases)
			phases.Record("total", time.Since(start))
			result.Phases = phases.List()

			if observeErr != nil {
				result.Error = observeErr.Error()
			}
			if evidence != nil {
				v := verdict.Derive(evidence)
				result.SetVerdict(v, evidence)
			}
			recordResult(result)

			Expect(observeErr).NotTo(HaveOccurred(), "the %s provider could not finish observing %s", provider.Name(), s.Name)
			Expect(evidence).NotTo(BeNil())
			if s.Spec.Expect == nil {
				Skip("the scenario states no expectation: observed " + result.Observed.String())
			}
			// Fail with the mismatch's own text: expected, observed and the
			// evidence, without Gomega's dump of the error value.
			if err := verdict.Compare(s.Name, *s.Spec.Expect, result.Observed, evidence); err != nil {
				Fail(err.Error())
			}
		}, SpecTimeout(specTimeout))
	}
})

func recordResult(result report.Result) {
	data, err := json.Marshal(result)
	if err != nil {
		fmt.Fprintf(os.Stderr, "cannot encode the result of %s: %v\n", result.Scenario, err)
		return
	}
	AddReportEntry(resultEntry, string(data), ReportEntryVisibilityNever)
}

// labelsOf returns Ginkgo labels "cni:X", "binding:Y" and "strategy:Z", which
// label filters select as `cni: containsAny {macvlan}` or
// `strategy: containsAny {ipam-dhcp}`.
func labelsOf(s *scenario.Scenario) Labels {
	r := report.NewResult(s, "")
	var labels []string
	for key, value := range map[string]string{"cni": r.CNI, "binding": r.Binding, "strategy": r.Strategy} {
		if value != "" {
			labels = append(labels, key+":"+sanitizeLabel(value))
		}
	}
	return Label(labels...)
}

// sanitizeLabel drops characters Ginkgo does not allow in labels.
func sanitizeLabel(s string) string {
	return strings.Map(func(r rune) rune {
		if strings.ContainsRune("&|!,()/", r) {
			return '-'
		}
		return r
	}, s)
}

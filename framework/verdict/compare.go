package verdict

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/vmnet-e2e/vmnet-e2e/framework/scenario"
)

// ValidateExpectation rejects cause names Derive never returns, so that a
// typo in a scenario file fails at load time, not as a mismatch.
func ValidateExpectation(e *scenario.Expectation) error {
	if e == nil {
		return nil
	}
	for _, c := range e.Causes {
		if !slices.Contains(KnownCauses, c) {
			return fmt.Errorf("spec.expect.causes: unknown cause %q: use one of %s", c, strings.Join(KnownCauses, ", "))
		}
	}
	return nil
}

// Mismatch is returned by Compare when the observed verdict differs from the
// expectation. Its message shows expected, observed and the evidence.
type Mismatch struct {
	Scenario string
	Expected scenario.Expectation
	Observed Verdict
	Evidence *Evidence
}

func (m *Mismatch) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "scenario %s: observed verdict differs from the expectation\n", m.Scenario)
	fmt.Fprintf(&b, "  expected: %s\n", formatExpectation(m.Expected))
	fmt.Fprintf(&b, "  observed: %s\n", m.Observed)
	if len(m.Observed.Causes) > 0 {
		b.WriteString("  evidence by cause:\n")
		for _, f := range m.Observed.Causes {
			fmt.Fprintf(&b, "    %s:\n", f.Cause)
			for _, line := range f.Evidence {
				fmt.Fprintf(&b, "      - %s\n", line)
			}
		}
	}
	if m.Evidence != nil {
		raw, _ := json.MarshalIndent(m.Evidence, "    ", "  ")
		fmt.Fprintf(&b, "  evidence:\n    %s\n", raw)
	}
	return b.String()
}

// Compare returns nil when v matches the expectation: the same outcome and
// the same set of causes. It returns a *Mismatch otherwise.
func Compare(name string, expected scenario.Expectation, v Verdict, e *Evidence) error {
	want := append([]string(nil), expected.Causes...)
	sort.Strings(want)
	if expected.Outcome == v.Outcome && slices.Equal(want, v.CauseNames()) {
		return nil
	}
	return &Mismatch{Scenario: name, Expected: expected, Observed: v, Evidence: e}
}

func formatExpectation(e scenario.Expectation) string {
	if len(e.Causes) == 0 {
		return string(e.Outcome)
	}
	causes := append([]string(nil), e.Causes...)
	sort.Strings(causes)
	return fmt.Sprintf("%s (%s)", e.Outcome, strings.Join(causes, ", "))
}

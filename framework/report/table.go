package report

import (
	"fmt"
	"io"
	"strings"

	"github.com/olekukonko/tablewriter"
)

// WriteTable prints one row per result: the scenario, its labels, the
// expected and observed verdicts and whether they match.
func WriteTable(w io.Writer, results []Result) error {
	table := tablewriter.NewWriter(w)
	table.Header("Scenario", "CNI", "Binding", "Strategy", "Expected", "Observed", "Match", "Seconds")
	for _, r := range results {
		expected := "-"
		if r.Expected != nil {
			expected = string(r.Expected.Outcome)
			if len(r.Expected.Causes) > 0 {
				expected += " (" + strings.Join(r.Expected.Causes, ", ") + ")"
			}
		}
		observed := r.Observed.String()
		if r.Error != "" {
			observed = "error: " + firstLine(r.Error)
		}
		match := "-"
		if r.Match != nil {
			match = map[bool]string{true: "yes", false: "NO"}[*r.Match]
		}
		if err := table.Append(r.Scenario, r.CNI, r.Binding, r.Strategy, expected, observed, match, fmt.Sprintf("%.0f", totalSeconds(r.Phases))); err != nil {
			return fmt.Errorf("report: table row %s: %w", r.Scenario, err)
		}
	}
	if err := table.Render(); err != nil {
		return fmt.Errorf("report: render table: %w", err)
	}
	return nil
}

// totalSeconds returns the "total" phase when the provider recorded one,
// else the sum of the phases.
func totalSeconds(phases []Phase) float64 {
	var total float64
	for _, p := range phases {
		if p.Name == "total" {
			return p.Seconds
		}
		total += p.Seconds
	}
	return total
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

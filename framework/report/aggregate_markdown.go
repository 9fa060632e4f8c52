package report

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Marks in the Markdown verdict table.
const (
	markMismatch = "✗"
	markError    = "⚠"
	markNotRun   = "–"
)

// WriteMarkdown writes the matrix report for a pull request comment or a job
// summary: the changes since the previous run (regressions first), a line per
// cell with its counts, and the verdict table with one row per scenario and
// one column per cell.
func WriteMarkdown(w io.Writer, agg *MatrixReport, changes []Change) error {
	var b strings.Builder

	b.WriteString("# Regression matrix\n\n")
	fmt.Fprintf(&b, "Generated %s from %d cells and %d scenarios.", formatTime(agg.GeneratedAt), len(agg.Cells), len(agg.Rows))
	if !agg.ComparedWith.IsZero() {
		fmt.Fprintf(&b, " Compared with the report generated %s.", formatTime(agg.ComparedWith))
	}
	b.WriteString("\n\n")

	writeChanges(&b, agg, changes)
	writeCellSummary(&b, agg)
	writeVerdictTable(&b, agg)

	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("report: write Markdown: %w", err)
	}
	return nil
}

func writeChanges(b *strings.Builder, agg *MatrixReport, changes []Change) {
	b.WriteString("## Changes since the previous run\n\n")
	if agg.ComparedWith.IsZero() && len(changes) == 0 {
		b.WriteString("No previous report to compare with.\n\n")
		return
	}
	if len(changes) == 0 {
		b.WriteString("No verdict changed.\n\n")
		return
	}

	counts := map[ChangeKind]int{}
	for _, c := range changes {
		counts[c.Kind]++
	}
	fmt.Fprintf(b, "**%s, %s, %s.**\n\n",
		plural(counts[Regression], "regression", "regressions"),
		plural(counts[Fix], "fix", "fixes"),
		plural(counts[Changed]+counts[Added]+counts[Removed], "other change", "other changes"))

	sections := []struct {
		title string
		kinds []ChangeKind
	}{
		{"Regressions", []ChangeKind{Regression}},
		{"Fixes", []ChangeKind{Fix}},
		{"Other changes", []ChangeKind{Changed, Added, Removed}},
	}
	for _, section := range sections {
		var rows []Change
		for _, c := range changes {
			for _, k := range section.kinds {
				if c.Kind == k {
					rows = append(rows, c)
				}
			}
		}
		if len(rows) == 0 {
			continue
		}
		fmt.Fprintf(b, "### %s\n\n", section.title)
		b.WriteString("| Scenario | Cell | Change | Before | After | Why |\n|---|---|---|---|---|---|\n")
		for _, c := range rows {
			scenarioName := c.Scenario
			if scenarioName == "" {
				scenarioName = "(whole cell)"
			}
			fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s |\n",
				escapeCell(scenarioName), escapeCell(c.Cell), c.Kind,
				escapeCell(changeVerdict(c.Before)), escapeCell(changeVerdict(c.After)), escapeCell(c.Reason))
		}
		b.WriteString("\n")
	}
}

func changeVerdict(v *CellVerdict) string {
	if v == nil {
		return markNotRun
	}
	return markedVerdict(*v)
}

func writeCellSummary(b *strings.Builder, agg *MatrixReport) {
	b.WriteString("## Cells\n\n")
	b.WriteString("| Cell | Provider | Started | Match | Differ | No expectation | Error | Not run |\n|---|---|---|---|---|---|---|---|\n")
	for _, c := range agg.Cells {
		if c.Missing {
			fmt.Fprintf(b, "| %s | | no report | | | | | |\n", escapeCell(c.Name))
			continue
		}
		var match, differ, none, errored, notRun int
		for _, r := range agg.Rows {
			v, ok := r.Verdicts[c.Name]
			switch {
			case !ok:
				notRun++
			case v.Error != "":
				errored++
			case v.Match == nil:
				none++
			case *v.Match:
				match++
			default:
				differ++
			}
		}
		fmt.Fprintf(b, "| %s | %s | %s | %d | %d | %d | %d | %d |\n",
			escapeCell(c.Name), escapeCell(c.Provider), formatTime(c.StartedAt), match, differ, none, errored, notRun)
	}
	b.WriteString("\n")
}

func writeVerdictTable(b *strings.Builder, agg *MatrixReport) {
	b.WriteString("## Verdicts\n\n")
	header := []string{"Scenario", "CNI", "Binding", "Strategy", "Expected"}
	for _, c := range agg.Cells {
		header = append(header, escapeCell(c.Name))
	}
	b.WriteString("| " + strings.Join(header, " | ") + " |\n")
	b.WriteString(strings.Repeat("|---", len(header)) + "|\n")

	for _, r := range agg.Rows {
		cells := []string{escapeCell(r.Scenario), escapeCell(r.CNI), escapeCell(r.Binding), escapeCell(r.Strategy), escapeCell(formatExpected(r.Expected))}
		for _, c := range agg.Cells {
			v, ok := r.Verdicts[c.Name]
			switch {
			case c.Missing:
				cells = append(cells, "no report")
			case !ok:
				cells = append(cells, markNotRun)
			default:
				cells = append(cells, escapeCell(markedVerdict(v)))
			}
		}
		b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	}
	fmt.Fprintf(b, "\n%s the verdict differs from the expectation. %s the harness could not finish observing. %s the cell did not run the scenario (its label filter excludes it, or the provider skipped it).\n",
		markMismatch, markError, markNotRun)
}

// markedVerdict returns the verdict with a mark when it differs from the
// expectation or is incomplete.
func markedVerdict(v CellVerdict) string {
	switch {
	case v.Error != "":
		return markError + " " + v.String()
	case v.Match != nil && !*v.Match:
		return markMismatch + " " + v.String()
	}
	return v.String()
}

// escapeCell keeps a value inside one Markdown table cell.
func escapeCell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.Join(strings.Fields(s), " ")
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "unknown"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

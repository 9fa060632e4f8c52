package report

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/vmnet-e2e/vmnet-e2e/framework/scenario"
)

// ChangeKind classifies a difference between two matrix reports.
type ChangeKind string

const (
	// Regression: the verdict matched the expectation and now does not, or
	// the guest was reachable and now is not.
	Regression ChangeKind = "regression"
	// Fix is the reverse of a regression.
	Fix ChangeKind = "fix"
	// Changed is any other difference: another cause with the same match,
	// a harness error, an edited expectation, a cell without a report.
	Changed ChangeKind = "changed"
	// Added is a scenario or a cell the previous report did not have.
	Added ChangeKind = "added"
	// Removed is a scenario or a cell the current report no longer has.
	Removed ChangeKind = "removed"
)

// kindOrder sorts changes the way the Markdown report lists them.
var kindOrder = map[ChangeKind]int{Regression: 0, Fix: 1, Changed: 2, Added: 3, Removed: 4}

// Change is one difference between the previous and the current report.
type Change struct {
	Kind ChangeKind `json:"kind"`
	// Scenario is empty for a change of a whole cell.
	Scenario string `json:"scenario,omitempty"`
	Cell     string `json:"cell"`
	// Before and After are the verdicts in the previous and the current
	// report; nil where the scenario did not run in that cell.
	Before *CellVerdict `json:"before,omitempty"`
	After  *CellVerdict `json:"after,omitempty"`
	// Reason explains in words why the change has its kind.
	Reason string `json:"reason"`
}

// Diff lists every difference from prev to cur, regressions first, then
// fixes, other changes, additions and removals, each sorted by scenario and
// cell. It returns nil when prev is nil (the first run).
//
// A cell is compared only when both runs produced a report for it. When one
// side is missing, Diff records that once for the cell instead of once per
// scenario.
func Diff(prev, cur *MatrixReport) []Change {
	if prev == nil || cur == nil {
		return nil
	}
	var changes []Change

	for _, pc := range prev.Cells {
		if _, ok := cur.Cell(pc.Name); !ok {
			changes = append(changes, Change{Kind: Removed, Cell: pc.Name, Reason: "the cell is no longer in the matrix run"})
		}
	}
	for _, cc := range cur.Cells {
		pc, ok := prev.Cell(cc.Name)
		switch {
		case !ok:
			changes = append(changes, Change{Kind: Added, Cell: cc.Name, Reason: "new cell"})
		case cc.Missing && !pc.Missing:
			changes = append(changes, Change{Kind: Changed, Cell: cc.Name, Reason: "the cell produced no report; the previous run had one"})
		case !cc.Missing && pc.Missing:
			changes = append(changes, Change{Kind: Changed, Cell: cc.Name, Reason: "the cell produced a report again; the previous run had none, so its verdicts are not compared"})
		case !cc.Missing && !pc.Missing:
			changes = append(changes, diffCell(prev, cur, cc.Name)...)
		}
	}

	sort.SliceStable(changes, func(i, j int) bool {
		a, b := changes[i], changes[j]
		if kindOrder[a.Kind] != kindOrder[b.Kind] {
			return kindOrder[a.Kind] < kindOrder[b.Kind]
		}
		if a.Scenario != b.Scenario {
			return a.Scenario < b.Scenario
		}
		return a.Cell < b.Cell
	})
	return changes
}

// diffCell compares the verdicts of one cell present in both reports.
func diffCell(prev, cur *MatrixReport, cell string) []Change {
	names := map[string]bool{}
	for _, r := range prev.Rows {
		names[r.Scenario] = true
	}
	for _, r := range cur.Rows {
		names[r.Scenario] = true
	}

	var changes []Change
	for name := range names {
		prevRow, inPrev := prev.Row(name)
		curRow, inCur := cur.Row(name)
		var before, after *CellVerdict
		if inPrev {
			if v, ok := prevRow.Verdicts[cell]; ok {
				before = &v
			}
		}
		if inCur {
			if v, ok := curRow.Verdicts[cell]; ok {
				after = &v
			}
		}

		change := Change{Scenario: name, Cell: cell, Before: before, After: after}
		switch {
		case before == nil && after == nil:
			continue
		case before == nil:
			change.Kind, change.Reason = Added, "now run in this cell"
			if !inPrev {
				change.Reason = "new scenario"
			}
		case after == nil:
			change.Kind, change.Reason = Removed, "no longer run in this cell"
			if !inCur {
				change.Reason = "the scenario was removed"
			}
		default:
			kind, reason, changed := classify(*before, *after, prevRow.Expected, curRow.Expected)
			if !changed {
				continue
			}
			change.Kind, change.Reason = kind, reason
			if kind != Changed && !sameExpectation(prevRow.Expected, curRow.Expected) {
				change.Reason += fmt.Sprintf("; the expectation also changed from %s to %s",
					formatExpected(prevRow.Expected), formatExpected(curRow.Expected))
			}
		}
		changes = append(changes, change)
	}
	return changes
}

// classify decides whether a verdict change is a regression, a fix or
// neither. The expectation comes first: a verdict that stops matching it is a
// regression even when the guest became reachable. Reachability decides only
// when the match did not change or the scenario states no expectation.
func classify(before, after CellVerdict, prevExpected, curExpected *scenario.Expectation) (ChangeKind, string, bool) {
	sameMatch := (before.Match == nil) == (after.Match == nil) && (before.Match == nil || *before.Match == *after.Match)
	if before.sameObservation(after) && sameMatch {
		return "", "", false
	}

	switch {
	case after.Error != "":
		return Changed, "the harness could not finish observing: " + firstLine(after.Error), true
	case before.Error != "":
		return Changed, "observed again after a harness error in the previous run", true
	}

	if before.sameObservation(after) {
		// Only the match changed, so the expectation was edited.
		return Changed, fmt.Sprintf("the expectation changed from %s to %s", formatExpected(prevExpected), formatExpected(curExpected)), true
	}

	if before.Match != nil && after.Match != nil && *before.Match != *after.Match {
		if *before.Match {
			return Regression, "matched the expectation, now does not", true
		}
		return Fix, "now matches the expectation", true
	}
	if before.Reachable() != after.Reachable() {
		if before.Reachable() {
			return Regression, "was reachable, now is not", true
		}
		return Fix, "now reachable", true
	}
	return Changed, "the verdict changed", true
}

func sameExpectation(a, b *scenario.Expectation) bool {
	return formatExpected(a) == formatExpected(b)
}

func formatExpected(e *scenario.Expectation) string {
	if e == nil {
		return "none"
	}
	if len(e.Causes) == 0 {
		return string(e.Outcome)
	}
	causes := slices.Sorted(slices.Values(e.Causes))
	return fmt.Sprintf("%s (%s)", e.Outcome, strings.Join(causes, ", "))
}

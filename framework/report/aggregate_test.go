package report

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmnet-e2e/vmnet-e2e/framework/scenario"
	"github.com/vmnet-e2e/vmnet-e2e/framework/verdict"
)

// observed builds a result the way the e2e suite does: NewResult's fields,
// then SetVerdict, which computes Match with verdict.Compare.
func observed(name string, expected *scenario.Expectation, outcome scenario.Outcome, causes ...string) Result {
	r := Result{Scenario: name, Provider: "kind", CNI: "macvlan", Binding: "bridge", Strategy: "cloud-init-nic-name", Expected: expected}
	v := verdict.Verdict{Outcome: outcome}
	for _, c := range causes {
		v.Causes = append(v.Causes, verdict.Finding{Cause: c, Evidence: []string{"test evidence"}})
	}
	r.SetVerdict(v, &verdict.Evidence{})
	return r
}

func expect(outcome scenario.Outcome, causes ...string) *scenario.Expectation {
	return &scenario.Expectation{Outcome: outcome, Causes: causes}
}

func newReport(provider string, results ...Result) *Report {
	return &Report{Provider: provider, StartedAt: time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC), Results: results}
}

// roundTrip writes and reads a matrix report, as the nightly workflow hands
// the previous night's report to the next one.
func roundTrip(t *testing.T, m *MatrixReport) *MatrixReport {
	t.Helper()
	path := filepath.Join(t.TempDir(), "aggregate.json")
	if err := WriteAggregate(path, m); err != nil {
		t.Fatal(err)
	}
	read, err := ReadAggregate(path)
	if err != nil {
		t.Fatal(err)
	}
	return read
}

func markdown(t *testing.T, m *MatrixReport, changes []Change) string {
	t.Helper()
	var b bytes.Buffer
	if err := WriteMarkdown(&b, m, changes); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

const (
	nicName   = "macvlan-cloud-init-nic-name"
	macMatch  = "macvlan-cloud-init-mac-match"
	ipamDHCP  = "macvlan-ipam-dhcp"
	cellKind  = "kind-pinned"
	cellOld   = "kind-kubevirt-1.8"
	cellLocal = "local-all"
)

func TestAggregateRowsAndColumns(t *testing.T) {
	agg := Aggregate(map[string]*Report{
		cellKind: newReport("kind",
			observed(nicName, expect(scenario.Reachable), scenario.Reachable),
			observed(macMatch, expect(scenario.Reachable), scenario.Unreachable, "GuestHasNoAddress")),
		cellLocal: newReport("local",
			observed(nicName, expect(scenario.Reachable), scenario.Reachable)),
		cellOld: nil,
	})

	if agg.Format != AggregateFormat {
		t.Errorf("format %q, want %q", agg.Format, AggregateFormat)
	}
	var names []string
	for _, c := range agg.Cells {
		names = append(names, c.Name)
	}
	if got, want := strings.Join(names, ","), strings.Join([]string{cellOld, cellKind, cellLocal}, ","); got != want {
		t.Errorf("cells %s, want %s (sorted by name)", got, want)
	}
	if c, _ := agg.Cell(cellOld); !c.Missing {
		t.Errorf("cell %s has no report but is not marked missing", cellOld)
	}
	if c, _ := agg.Cell(cellLocal); c.Provider != "local" {
		t.Errorf("cell %s provider %q, want local", cellLocal, c.Provider)
	}
	if len(agg.Rows) != 2 || agg.Rows[0].Scenario != macMatch || agg.Rows[1].Scenario != nicName {
		t.Fatalf("rows %+v, want %s then %s", agg.Rows, macMatch, nicName)
	}

	row, _ := agg.Row(macMatch)
	if _, ran := row.Verdicts[cellLocal]; ran {
		t.Errorf("%s has a verdict in %s, which did not run it", macMatch, cellLocal)
	}
	v := row.Verdicts[cellKind]
	if v.Outcome != scenario.Unreachable || len(v.Causes) != 1 || v.Causes[0] != "GuestHasNoAddress" {
		t.Errorf("verdict %+v, want unreachable (GuestHasNoAddress)", v)
	}
	if v.Match == nil || *v.Match {
		t.Errorf("match %v, want false: expected reachable", v.Match)
	}

	md := markdown(t, agg, nil)
	for _, want := range []string{
		// Columns: kind-kubevirt-1.8 (no report), kind-pinned, local-all.
		"| " + macMatch + " | macvlan | bridge | cloud-init-nic-name | reachable | no report | ✗ unreachable (GuestHasNoAddress) | – |",
		"| " + nicName + " | macvlan | bridge | cloud-init-nic-name | reachable | no report | reachable | reachable |",
		"No previous report to compare with.",
		"| " + cellOld + " | | no report |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestDiffRegression(t *testing.T) {
	prev := roundTrip(t, Aggregate(map[string]*Report{
		cellKind: newReport("kind",
			observed(nicName, expect(scenario.Reachable), scenario.Reachable),
			observed(ipamDHCP, expect(scenario.Reachable), scenario.Reachable)),
		cellLocal: newReport("local", observed(nicName, expect(scenario.Reachable), scenario.Reachable)),
	}))
	cur := Aggregate(map[string]*Report{
		cellKind: newReport("kind",
			observed(nicName, expect(scenario.Reachable), scenario.Unreachable, "GuestMACOnNoMacvlan"),
			observed(ipamDHCP, expect(scenario.Reachable), scenario.Reachable)),
		cellLocal: newReport("local", observed(nicName, expect(scenario.Reachable), scenario.Reachable)),
	})

	changes := Diff(prev, cur)
	if len(changes) != 1 {
		t.Fatalf("%d changes, want exactly 1: %+v", len(changes), changes)
	}
	c := changes[0]
	if c.Kind != Regression {
		t.Errorf("kind %s, want %s", c.Kind, Regression)
	}
	if c.Scenario != nicName || c.Cell != cellKind {
		t.Errorf("change names %s in %s, want %s in %s", c.Scenario, c.Cell, nicName, cellKind)
	}
	if c.Before == nil || !c.Before.Reachable() || c.After == nil || c.After.Reachable() {
		t.Errorf("before %v after %v, want reachable then unreachable", c.Before, c.After)
	}

	cur.ComparedWith = prev.GeneratedAt
	md := markdown(t, cur, changes)
	if !strings.Contains(md, "**1 regression, 0 fixes, 0 other changes.**") {
		t.Errorf("Markdown lacks the change count:\n%s", md)
	}
	want := "| " + nicName + " | " + cellKind + " | regression | reachable | ✗ unreachable (GuestMACOnNoMacvlan) | matched the expectation, now does not |"
	regressions := sectionOf(md, "### Regressions")
	if !strings.Contains(regressions, want) {
		t.Errorf("Regressions section lacks %q:\n%s", want, md)
	}
	if strings.Contains(md, "### Fixes") || strings.Contains(md, "### Other changes") {
		t.Errorf("Markdown lists fixes or other changes for a single regression:\n%s", md)
	}
}

// sectionOf returns the Markdown from heading to the next heading.
func sectionOf(md, heading string) string {
	i := strings.Index(md, heading)
	if i < 0 {
		return ""
	}
	rest := md[i+len(heading):]
	if j := strings.Index(rest, "\n#"); j >= 0 {
		rest = rest[:j]
	}
	return rest
}

func TestDiffFix(t *testing.T) {
	prev := roundTrip(t, Aggregate(map[string]*Report{
		cellKind: newReport("kind", observed(macMatch, expect(scenario.Reachable), scenario.Unreachable, "GuestHasNoAddress")),
	}))
	cur := Aggregate(map[string]*Report{
		cellKind: newReport("kind", observed(macMatch, expect(scenario.Reachable), scenario.Reachable)),
	})

	changes := Diff(prev, cur)
	if len(changes) != 1 {
		t.Fatalf("%d changes, want 1: %+v", len(changes), changes)
	}
	if c := changes[0]; c.Kind != Fix || c.Scenario != macMatch || c.Cell != cellKind {
		t.Errorf("change %+v, want a fix of %s in %s", c, macMatch, cellKind)
	}
	if md := markdown(t, cur, changes); !strings.Contains(sectionOf(md, "### Fixes"), macMatch) {
		t.Errorf("Fixes section lacks %s:\n%s", macMatch, md)
	}
}

func TestDiffUnchanged(t *testing.T) {
	build := func() *MatrixReport {
		return Aggregate(map[string]*Report{
			cellKind:  newReport("kind", observed(nicName, expect(scenario.Unreachable, "GuestMACOnNoMacvlan"), scenario.Unreachable, "GuestMACOnNoMacvlan")),
			cellLocal: newReport("local", observed(nicName, expect(scenario.Unreachable, "GuestMACOnNoMacvlan"), scenario.Reachable)),
			cellOld:   nil,
		})
	}
	prev := roundTrip(t, build())
	cur := build()

	if changes := Diff(prev, cur); len(changes) != 0 {
		t.Fatalf("identical runs gave %d changes: %+v", len(changes), changes)
	}
	cur.ComparedWith = prev.GeneratedAt
	if md := markdown(t, cur, nil); !strings.Contains(md, "No verdict changed.") {
		t.Errorf("Markdown does not say that nothing changed:\n%s", md)
	}
}

func TestDiffNewScenario(t *testing.T) {
	prev := roundTrip(t, Aggregate(map[string]*Report{
		cellKind: newReport("kind", observed(nicName, expect(scenario.Reachable), scenario.Reachable)),
	}))
	cur := Aggregate(map[string]*Report{
		cellKind: newReport("kind",
			observed(nicName, expect(scenario.Reachable), scenario.Reachable),
			observed(ipamDHCP, expect(scenario.Reachable), scenario.Unreachable, "GuestMACOnNoMacvlan")),
	})

	changes := Diff(prev, cur)
	if len(changes) != 1 {
		t.Fatalf("%d changes, want 1: %+v", len(changes), changes)
	}
	c := changes[0]
	if c.Kind != Added || c.Scenario != ipamDHCP || c.Cell != cellKind || c.Reason != "new scenario" {
		t.Errorf("change %+v, want %s added in %s as a new scenario", c, ipamDHCP, cellKind)
	}
	if c.Before != nil || c.After == nil {
		t.Errorf("before %v after %v, want no verdict before and one after", c.Before, c.After)
	}
}

func TestDiffRemovedCell(t *testing.T) {
	prev := roundTrip(t, Aggregate(map[string]*Report{
		cellKind: newReport("kind", observed(nicName, expect(scenario.Reachable), scenario.Reachable)),
		cellOld:  newReport("kind", observed(nicName, expect(scenario.Reachable), scenario.Reachable)),
	}))
	cur := Aggregate(map[string]*Report{
		cellKind: newReport("kind", observed(nicName, expect(scenario.Reachable), scenario.Reachable)),
	})

	changes := Diff(prev, cur)
	if len(changes) != 1 {
		t.Fatalf("%d changes, want 1 (the cell, not each of its scenarios): %+v", len(changes), changes)
	}
	if c := changes[0]; c.Kind != Removed || c.Cell != cellOld || c.Scenario != "" {
		t.Errorf("change %+v, want cell %s removed", c, cellOld)
	}
	if md := markdown(t, cur, changes); !strings.Contains(md, "| (whole cell) | "+cellOld+" | removed |") {
		t.Errorf("Markdown does not list the removed cell:\n%s", md)
	}
}

func TestDiffReachabilityWithoutExpectation(t *testing.T) {
	prev := roundTrip(t, Aggregate(map[string]*Report{
		cellKind: newReport("kind", observed(nicName, nil, scenario.Reachable)),
	}))
	cur := Aggregate(map[string]*Report{
		cellKind: newReport("kind", observed(nicName, nil, scenario.Unreachable, "GuestHasNoAddress")),
	})

	changes := Diff(prev, cur)
	if len(changes) != 1 || changes[0].Kind != Regression || changes[0].Reason != "was reachable, now is not" {
		t.Fatalf("changes %+v, want one regression: was reachable, now is not", changes)
	}
}

func TestDiffMatchOutranksReachability(t *testing.T) {
	// The scenario documents a failure; the guest becoming reachable breaks
	// that expectation, so it is a regression, not a fix.
	prev := roundTrip(t, Aggregate(map[string]*Report{
		cellKind: newReport("kind", observed(nicName, expect(scenario.Unreachable, "GuestMACOnNoMacvlan"), scenario.Unreachable, "GuestMACOnNoMacvlan")),
	}))
	cur := Aggregate(map[string]*Report{
		cellKind: newReport("kind", observed(nicName, expect(scenario.Unreachable, "GuestMACOnNoMacvlan"), scenario.Reachable)),
	})

	changes := Diff(prev, cur)
	if len(changes) != 1 || changes[0].Kind != Regression {
		t.Fatalf("changes %+v, want one regression", changes)
	}
}

func TestDiffOtherChanges(t *testing.T) {
	mismatchA := observed(nicName, expect(scenario.Reachable), scenario.Unreachable, "GuestHasNoAddress")
	mismatchB := observed(nicName, expect(scenario.Reachable), scenario.Unreachable, "GuestMACOnNoMacvlan")
	harnessError := Result{Scenario: ipamDHCP, Provider: "kind", Expected: expect(scenario.Reachable),
		Error: "kind: timed out after 10m0s waiting for VMI default/vm-x to be Ready\nlast phase: Scheduling"}

	prev := roundTrip(t, Aggregate(map[string]*Report{
		cellKind:  newReport("kind", mismatchA, observed(ipamDHCP, expect(scenario.Reachable), scenario.Reachable)),
		cellLocal: newReport("local", observed(macMatch, expect(scenario.Reachable), scenario.Reachable)),
	}))
	cur := Aggregate(map[string]*Report{
		cellKind:  newReport("kind", mismatchB, harnessError),
		cellLocal: nil,
	})

	changes := Diff(prev, cur)
	got := map[string]Change{}
	for _, c := range changes {
		got[c.Scenario+"@"+c.Cell] = c
	}
	if len(changes) != 3 {
		t.Fatalf("%d changes, want 3: %+v", len(changes), changes)
	}
	if c := got[nicName+"@"+cellKind]; c.Kind != Changed || c.Reason != "the verdict changed" {
		t.Errorf("another cause with the same mismatch: %+v, want changed", c)
	}
	if c := got[ipamDHCP+"@"+cellKind]; c.Kind != Changed || !strings.HasPrefix(c.Reason, "the harness could not finish observing: kind: timed out") {
		t.Errorf("harness error: %+v, want changed with the error's first line", c)
	}
	if c := got["@"+cellLocal]; c.Kind != Changed || !strings.Contains(c.Reason, "no report") {
		t.Errorf("cell without report: %+v, want one changed entry for the cell", c)
	}

	md := markdown(t, cur, changes)
	if !strings.Contains(md, "⚠ error: kind: timed out after 10m0s waiting for VMI default/vm-x to be Ready |") {
		t.Errorf("Markdown does not mark the harness error:\n%s", md)
	}
}

func TestDiffEditedExpectation(t *testing.T) {
	prev := roundTrip(t, Aggregate(map[string]*Report{
		cellKind: newReport("kind", observed(macMatch, expect(scenario.Reachable), scenario.Unreachable, "GuestHasNoAddress")),
	}))
	cur := Aggregate(map[string]*Report{
		cellKind: newReport("kind", observed(macMatch, expect(scenario.Unreachable, "GuestHasNoAddress"), scenario.Unreachable, "GuestHasNoAddress")),
	})

	changes := Diff(prev, cur)
	if len(changes) != 1 || changes[0].Kind != Changed {
		t.Fatalf("changes %+v, want one neutral change: only the expectation moved", changes)
	}
	if want := "the expectation changed from reachable to unreachable (GuestHasNoAddress)"; changes[0].Reason != want {
		t.Errorf("reason %q, want %q", changes[0].Reason, want)
	}
}

func TestDiffFirstRun(t *testing.T) {
	cur := Aggregate(map[string]*Report{cellKind: newReport("kind", observed(nicName, expect(scenario.Reachable), scenario.Reachable))})
	if changes := Diff(nil, cur); changes != nil {
		t.Errorf("Diff without a previous report returned %+v, want nil", changes)
	}
}

func TestReadAggregateRejectsOtherFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "report.json")
	if err := Write(path, Report{Provider: "kind"}); err != nil {
		t.Fatal(err)
	}
	_, err := ReadAggregate(path)
	if err == nil || !strings.Contains(err.Error(), "format") {
		t.Errorf("reading a single-cell report as a matrix report: error %v, want a format error", err)
	}

	if err := os.WriteFile(path, []byte("not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadAggregate(path); err == nil {
		t.Error("reading a file that is not JSON returned no error")
	}
}

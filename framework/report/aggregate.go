package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/vmnet-e2e/vmnet-e2e/framework/scenario"
)

// AggregateFormat identifies the JSON document of a MatrixReport. Diff is
// only meaningful between documents of one format, so ReadAggregate rejects
// any other.
const AggregateFormat = "vmnet-e2e/matrix-report/v1"

// MatrixReport is the verdicts of several matrix cells side by side: one row
// per scenario, one column per cell. Aggregate builds it from the cells' JSON
// reports; it is written as JSON so that the next run can Diff against it.
//
// NOTE: the type is not called Aggregate because that is the name of the
// function that builds it.
type MatrixReport struct {
	Format      string    `json:"format"`
	GeneratedAt time.Time `json:"generatedAt"`
	// Cells are the columns, sorted by name.
	Cells []CellInfo `json:"cells"`
	// Rows are the scenarios, sorted by name.
	Rows []Row `json:"rows"`
	// ComparedWith is the GeneratedAt of the previous report that Changes
	// were computed against; zero when there was none.
	ComparedWith time.Time `json:"comparedWith,omitzero"`
	// Changes are the differences from that previous report, as Diff
	// returns them.
	Changes []Change `json:"changes,omitempty"`
}

// CellInfo describes one column of a MatrixReport.
type CellInfo struct {
	Name      string    `json:"name"`
	Provider  string    `json:"provider,omitempty"`
	StartedAt time.Time `json:"startedAt,omitzero"`
	// Missing is true when the cell produced no report, for example because
	// its cluster could not be created before the first scenario ran.
	Missing bool `json:"missing,omitempty"`
}

// Row is one scenario across the cells.
type Row struct {
	Scenario string                `json:"scenario"`
	CNI      string                `json:"cni"`
	Binding  string                `json:"binding"`
	Strategy string                `json:"strategy"`
	Expected *scenario.Expectation `json:"expected,omitempty"`
	// Verdicts maps a cell name to the verdict observed there. A cell that
	// did not run the scenario (its label filter excluded it, or the
	// provider skipped it) has no entry.
	Verdicts map[string]CellVerdict `json:"verdicts"`
}

// CellVerdict is the verdict one cell observed for one scenario.
type CellVerdict struct {
	Outcome scenario.Outcome `json:"outcome,omitempty"`
	// Causes are the cause names, sorted.
	Causes []string `json:"causes,omitempty"`
	// Match is whether the verdict equals the scenario's expectation; nil
	// when the scenario states none or the observation is incomplete.
	Match *bool `json:"match,omitempty"`
	// Error is set when the harness could not finish observing; Outcome
	// and Causes are then incomplete or empty.
	Error string `json:"error,omitempty"`
}

// Reachable reports whether the guest's address replied to the probe and the
// observation finished.
func (v CellVerdict) Reachable() bool {
	return v.Error == "" && v.Outcome == scenario.Reachable
}

// String returns the verdict as the report tables show it, for example
// "unreachable (GuestHasNoAddress)" or "error: timed out waiting for ...".
func (v CellVerdict) String() string {
	if v.Error != "" {
		return "error: " + firstLine(v.Error)
	}
	if v.Outcome == "" {
		return "no verdict"
	}
	if len(v.Causes) == 0 {
		return string(v.Outcome)
	}
	return fmt.Sprintf("%s (%s)", v.Outcome, strings.Join(v.Causes, ", "))
}

// sameObservation reports whether two verdicts observed the same thing,
// ignoring Match (which also depends on the expectation) and the error text
// (which names timings and run IDs that change every night).
func (v CellVerdict) sameObservation(o CellVerdict) bool {
	return v.Outcome == o.Outcome && slices.Equal(v.Causes, o.Causes) && (v.Error == "") == (o.Error == "")
}

// Aggregate puts the reports of several cells, keyed by cell name, side by
// side. A nil report stands for a cell that produced none; its column is
// marked Missing.
func Aggregate(cells map[string]*Report) *MatrixReport {
	agg := &MatrixReport{Format: AggregateFormat, GeneratedAt: time.Now().UTC().Truncate(time.Second)}

	names := make([]string, 0, len(cells))
	for name := range cells {
		names = append(names, name)
	}
	sort.Strings(names)

	rows := map[string]*Row{}
	for _, name := range names {
		rep := cells[name]
		if rep == nil {
			agg.Cells = append(agg.Cells, CellInfo{Name: name, Missing: true})
			continue
		}
		agg.Cells = append(agg.Cells, CellInfo{Name: name, Provider: rep.Provider, StartedAt: rep.StartedAt})

		for _, r := range rep.Results {
			row, ok := rows[r.Scenario]
			if !ok {
				// The first cell in name order describes the scenario;
				// every cell loads the same scenario files.
				row = &Row{
					Scenario: r.Scenario, CNI: r.CNI, Binding: r.Binding, Strategy: r.Strategy,
					Expected: r.Expected, Verdicts: map[string]CellVerdict{},
				}
				rows[r.Scenario] = row
			}
			row.Verdicts[name] = cellVerdictOf(r)
		}
	}

	for _, row := range rows {
		agg.Rows = append(agg.Rows, *row)
	}
	sort.Slice(agg.Rows, func(i, j int) bool { return agg.Rows[i].Scenario < agg.Rows[j].Scenario })
	return agg
}

func cellVerdictOf(r Result) CellVerdict {
	v := CellVerdict{Outcome: r.Observed.Outcome, Causes: r.Observed.CauseNames(), Error: r.Error}
	if len(v.Causes) == 0 {
		v.Causes = nil
	}
	if r.Match != nil {
		match := *r.Match
		v.Match = &match
	}
	return v
}

// Cell returns the column called name and whether it exists.
func (m *MatrixReport) Cell(name string) (CellInfo, bool) {
	for _, c := range m.Cells {
		if c.Name == name {
			return c, true
		}
	}
	return CellInfo{}, false
}

// Row returns the row of a scenario and whether it exists.
func (m *MatrixReport) Row(scenarioName string) (*Row, bool) {
	for i := range m.Rows {
		if m.Rows[i].Scenario == scenarioName {
			return &m.Rows[i], true
		}
	}
	return nil, false
}

// WriteAggregate writes a MatrixReport as indented JSON, creating the
// directory. Error messages keep their < > & unescaped.
func WriteAggregate(path string, m *MatrixReport) error {
	var data bytes.Buffer
	enc := json.NewEncoder(&data)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m); err != nil {
		return fmt.Errorf("report: encode matrix report: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("report: create directory for %s: %w", path, err)
	}
	if err := os.WriteFile(path, data.Bytes(), 0o644); err != nil {
		return fmt.Errorf("report: write %s: %w", path, err)
	}
	return nil
}

// ReadAggregate loads a MatrixReport written by WriteAggregate.
func ReadAggregate(path string) (*MatrixReport, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("report: read %s: %w", path, err)
	}
	var m MatrixReport
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("report: %s is not a matrix report: %w", path, err)
	}
	if m.Format != AggregateFormat {
		return nil, fmt.Errorf("report: %s has format %q, want %q: compare only reports written by this version of vmnet matrix aggregate", path, m.Format, AggregateFormat)
	}
	return &m, nil
}

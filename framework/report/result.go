// Package report records each scenario's verdict with its evidence and phase
// timings, writes them as JSON (artifacts/report.json by default) and prints
// the verdict table at the end of a suite.
package report

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vmnet-e2e/vmnet-e2e/framework/scenario"
	"github.com/vmnet-e2e/vmnet-e2e/framework/verdict"
)

// DefaultPath is the JSON report path suites use unless given another.
const DefaultPath = "artifacts/report.json"

// Result is one scenario's record in the report.
type Result struct {
	Scenario string `json:"scenario"`
	Source   string `json:"source,omitempty"`
	Provider string `json:"provider"`
	CNI      string `json:"cni"`
	Binding  string `json:"binding"`
	Strategy string `json:"strategy"`

	Expected *scenario.Expectation `json:"expected,omitempty"`
	Observed verdict.Verdict       `json:"observed"`
	// Cause is the observed causes joined with ", ", for quick reading.
	Cause string `json:"cause"`
	// Match is true when the observed verdict equals the expectation; nil
	// when the scenario states none.
	Match *bool `json:"match,omitempty"`

	Evidence *verdict.Evidence `json:"evidence,omitempty"`
	Phases   []Phase           `json:"phases"`
	// Error is set when the harness could not finish observing the
	// scenario; the verdict is then incomplete.
	Error string `json:"error,omitempty"`
}

// Report is the JSON document written at the end of a run.
type Report struct {
	Provider   string    `json:"provider"`
	StartedAt  time.Time `json:"startedAt"`
	FinishedAt time.Time `json:"finishedAt"`
	// Processes is the number of parallel Ginkgo processes that ran the
	// scenarios.
	Processes int      `json:"processes,omitempty"`
	Results   []Result `json:"results"`
}

// NewResult fills the identifying fields of a result from a scenario.
func NewResult(s *scenario.Scenario, provider string) Result {
	r := Result{
		Scenario: s.Name, Source: s.Source, Provider: provider,
		CNI: s.Spec.CNI, Binding: s.Spec.Binding, Strategy: s.Spec.Strategy,
		Expected: s.Spec.Expect,
	}
	if r.Strategy == "" {
		r.Strategy = "unlabelled"
	}
	if secondary := s.SecondaryAttachments(); len(secondary) > 0 {
		if r.CNI == "" {
			r.CNI = secondary[0].CNI.Type
		}
		if r.Binding == "" {
			r.Binding = string(secondary[0].Binding)
		}
	}
	return r
}

// SetVerdict records the verdict and, when the scenario has an expectation,
// whether it matches.
func (r *Result) SetVerdict(v verdict.Verdict, e *verdict.Evidence) {
	r.Observed = v
	r.Cause = strings.Join(v.CauseNames(), ", ")
	r.Evidence = e
	if r.Expected != nil {
		match := verdict.Compare(r.Scenario, *r.Expected, v, e) == nil
		r.Match = &match
	}
}

// Write writes the report to path as indented JSON, creating its directory.
// Results are sorted by scenario name so that reports diff cleanly.
func Write(path string, rep Report) error {
	sort.Slice(rep.Results, func(i, j int) bool { return rep.Results[i].Scenario < rep.Results[j].Scenario })
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("report: encode: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("report: create directory for %s: %w", path, err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("report: write %s: %w", path, err)
	}
	return nil
}

// Read loads a report written by Write.
func Read(path string) (*Report, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("report: read %s: %w", path, err)
	}
	var rep Report
	if err := json.Unmarshal(data, &rep); err != nil {
		return nil, fmt.Errorf("report: %s is not a report: %w", path, err)
	}
	return &rep, nil
}

// Phase is how long one step of a scenario took.
type Phase struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
}

// Phases times the steps of one scenario. It is safe for concurrent use.
type Phases struct {
	mu     sync.Mutex
	phases []Phase
}

// Time runs fn and records its duration under name, also when fn fails.
func (p *Phases) Time(name string, fn func() error) error {
	start := time.Now()
	err := fn()
	p.Record(name, time.Since(start))
	return err
}

// Record adds a phase measured elsewhere.
func (p *Phases) Record(name string, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	// Rounded to milliseconds in decimal, so the JSON shows 2.538, not
	// 2.5380000000000003.
	p.phases = append(p.phases, Phase{Name: name, Seconds: math.Round(d.Seconds()*1000) / 1000})
}

// List returns the recorded phases in order.
func (p *Phases) List() []Phase {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Phase(nil), p.phases...)
}

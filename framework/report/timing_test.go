package report

import (
	"testing"
	"time"
)

func TestSuiteTiming(t *testing.T) {
	start := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	rep := &Report{
		StartedAt:  start,
		FinishedAt: start.Add(300 * time.Second),
		Results: []Result{
			{Scenario: "a", Phases: []Phase{{Name: BootPhase, Seconds: 40}}},
			{Scenario: "b", Phases: []Phase{{Name: BootPhase, Seconds: 60}}},
			{Scenario: "c", Phases: []Phase{{Name: BootPhase, Seconds: 50}}},
			{Scenario: "rejected", Phases: []Phase{{Name: "total", Seconds: 0}}},
		},
	}
	timing, err := SuiteTiming(rep)
	if err != nil {
		t.Fatal(err)
	}
	if timing.Boot != 50*time.Second {
		t.Errorf("median boot %v, want 50s", timing.Boot)
	}
	if timing.Boots != 3 {
		t.Errorf("%d boots counted, want 3", timing.Boots)
	}
	if timing.Ratio != 6 {
		t.Errorf("ratio %v, want 6", timing.Ratio)
	}
}

func TestSuiteTimingWithoutBoots(t *testing.T) {
	start := time.Now()
	if _, err := SuiteTiming(&Report{StartedAt: start, FinishedAt: start.Add(time.Second)}); err == nil {
		t.Error("SuiteTiming without any boot returned no error")
	}
}

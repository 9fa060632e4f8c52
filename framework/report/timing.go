package report

import (
	"errors"
	"fmt"
	"sort"
	"time"
)

// BootPhase is the phase that times one guest from qemu start to its network
// evidence; providers record it under this name.
const BootPhase = "boot-to-network-evidence"

// Timing relates a suite's wall time to the time one guest takes to boot and
// report its network, both measured in the same run.
type Timing struct {
	Wall time.Duration
	// Boot is the median boot-to-evidence time over Boots guests.
	Boot  time.Duration
	Boots int
	// Ratio is Wall / Boot: how many single guest boots the suite costs.
	Ratio float64
}

func (t Timing) String() string {
	return fmt.Sprintf("suite wall time %.0f s; one guest boot to network evidence %.1f s (median of %d); ratio %.1f",
		t.Wall.Seconds(), t.Boot.Seconds(), t.Boots, t.Ratio)
}

// SuiteTiming computes the Timing of a report.
func SuiteTiming(rep *Report) (Timing, error) {
	if rep.StartedAt.IsZero() || rep.FinishedAt.IsZero() {
		return Timing{}, errors.New("report: the report has no start or finish time (written by an older harness?)")
	}
	var boots []float64
	for _, r := range rep.Results {
		for _, p := range r.Phases {
			if p.Name == BootPhase {
				boots = append(boots, p.Seconds)
			}
		}
	}
	if len(boots) == 0 {
		return Timing{}, errors.New("report: no scenario booted a guest, so there is no boot time to compare with")
	}
	sort.Float64s(boots)
	median := boots[len(boots)/2]
	if len(boots)%2 == 0 {
		median = (boots[len(boots)/2-1] + boots[len(boots)/2]) / 2
	}

	t := Timing{
		Wall:  rep.FinishedAt.Sub(rep.StartedAt),
		Boot:  time.Duration(median * float64(time.Second)),
		Boots: len(boots),
	}
	t.Ratio = t.Wall.Seconds() / median
	return t, nil
}

package probe

import (
	"fmt"
	"strings"

	"github.com/vmnet-e2e/vmnet-e2e/framework/link"
	"github.com/vmnet-e2e/vmnet-e2e/framework/netns"
)

// CounterRef names a link whose counters are watched.
type CounterRef struct {
	// Role is the link's place in the data path, for example "parent
	// bridge" or "pod nic".
	Role      string
	Namespace *netns.Namespace
	Link      string
}

func (r CounterRef) key() string { return r.Namespace.Name + "/" + r.Link }

// Counters is a snapshot of the watched links' statistics.
type Counters struct {
	Refs  []CounterRef
	Stats map[string]link.Statistics
}

// SnapshotCounters reads the statistics of every ref.
func SnapshotCounters(refs []CounterRef) (Counters, error) {
	c := Counters{Refs: refs, Stats: map[string]link.Statistics{}}
	for _, r := range refs {
		h, err := link.NewHandle(r.Namespace)
		if err != nil {
			return c, err
		}
		s, err := link.ReadStatistics(h, r.Link)
		h.Close()
		if err != nil {
			return c, fmt.Errorf("probe: counters of %s (%s): %w", r.Link, r.Role, err)
		}
		c.Stats[r.key()] = s
	}
	return c, nil
}

// CounterDelta is the change of one link's counters between two snapshots.
type CounterDelta struct {
	Ref                CounterRef
	RxPackets          int64
	TxPackets          int64
	RxDropped          int64
	TxDropped          int64
	RxOtherhostDropped int64
	// HasOtherhost is false when the kernel does not report
	// rx_otherhost_dropped.
	HasOtherhost bool
}

// Delta returns after minus before for every ref of after.
func (after Counters) Delta(before Counters) []CounterDelta {
	var out []CounterDelta
	for _, r := range after.Refs {
		a, b := after.Stats[r.key()], before.Stats[r.key()]
		out = append(out, CounterDelta{
			Ref:                r,
			RxPackets:          int64(a.RxPackets - b.RxPackets),
			TxPackets:          int64(a.TxPackets - b.TxPackets),
			RxDropped:          int64(a.RxDropped - b.RxDropped),
			TxDropped:          int64(a.TxDropped - b.TxDropped),
			RxOtherhostDropped: int64(a.RxOtherhostDropped - b.RxOtherhostDropped),
			HasOtherhost:       a.HasOtherhost,
		})
	}
	return out
}

// Lookup returns the delta of a link.
func Lookup(deltas []CounterDelta, ns *netns.Namespace, name string) (CounterDelta, bool) {
	for _, d := range deltas {
		if d.Ref.Namespace.Name == ns.Name && d.Ref.Link == name {
			return d, true
		}
	}
	return CounterDelta{}, false
}

// FormatDeltas prints one line per link, for reports.
func FormatDeltas(deltas []CounterDelta) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-16s %-44s %8s %8s %8s %10s\n", "role", "link", "rx", "tx", "rx_drop", "otherhost")
	for _, d := range deltas {
		other := "n/a"
		if d.HasOtherhost {
			other = fmt.Sprint(d.RxOtherhostDropped)
		}
		fmt.Fprintf(&b, "%-16s %-44s %8d %8d %8d %10s\n", d.Ref.Role, d.Ref.Namespace.Name+"/"+d.Ref.Link,
			d.RxPackets, d.TxPackets, d.RxDropped, other)
	}
	return b.String()
}

package probe

import (
	"net/netip"
	"testing"
	"time"

	"github.com/vmnet-e2e/vmnet-e2e/framework/link/linktest"
)

func TestMain(m *testing.M) { linktest.Main(m) }

func TestProbesOfAbsentHostAreBounded(t *testing.T) {
	linktest.RequireRoot(t)
	topo := linktest.NewTopology(t)
	ctx := linktest.Context(t)
	absent := netip.MustParseAddr("192.0.2.99")

	start := time.Now()
	arp, err := ARP(ctx, topo.External, topo.ExternalLink, absent, ARPOptions{Timeout: time.Second, Interval: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if arp.Answered() || arp.Requests < 3 {
		t.Errorf("ARP for an absent host: answered %v after %d requests, want no answer after at least 3", arp.MACs, arp.Requests)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("ARP with a 1 s timeout took %v", d)
	}

	ping, err := Ping(ctx, topo.External, absent, PingOptions{Count: 2, Interval: 100 * time.Millisecond, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if ping.Received != 0 || ping.Duration > 2*time.Second {
		t.Errorf("ping of an absent host: %d replies in %v, want 0 within about 1 s", ping.Received, ping.Duration)
	}
}

func TestPingRunsInsideNamespace(t *testing.T) {
	linktest.RequireRoot(t)
	topo := linktest.NewTopology(t)
	ctx := linktest.Context(t)
	// The external peer pings its own address: the raw socket is inside its
	// namespace, so a reply proves the socket lives there.
	ping, err := Ping(ctx, topo.External, topo.ExternalAddr.Addr(), PingOptions{Count: 2})
	if err != nil {
		t.Fatal(err)
	}
	if ping.Received != 2 || len(ping.RTTs) != 2 {
		t.Errorf("ping of %s inside %s: %d replies, %d RTTs, want 2", topo.ExternalAddr.Addr(), topo.External.Name, ping.Received, len(ping.RTTs))
	}
}

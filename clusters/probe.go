package clusters

import (
	"context"
	"net"
	"net/netip"

	"github.com/vmnet-e2e/vmnet-e2e/framework/netns"
	"github.com/vmnet-e2e/vmnet-e2e/framework/probe"
	"github.com/vmnet-e2e/vmnet-e2e/framework/verdict"
)

// Probe sizes: small enough to finish in a few seconds, large enough that one
// lost frame does not decide a verdict.
const (
	UnicastFrames = 20
	EchoCount     = 5
)

// ProbeRequest names the probed guest and the external peer, and reads the
// counters along the path.
type ProbeRequest struct {
	// Namespace and Interface are the external peer's; Peer is its address.
	Namespace *netns.Namespace
	Interface string
	Peer      netip.Addr
	// Target is the probed address and GuestMAC the guest NIC's MAC.
	Target   netip.Addr
	GuestMAC net.HardwareAddr
	// PodLink names the pod's end of the attachment, for the evidence.
	PodLink string
	// ReadCounters returns the pod link's received packets (drops included)
	// and the parent's rx_otherhost_dropped, both as running totals.
	ReadCounters func(ctx context.Context) (podReceived, parentOtherhostDropped uint64, err error)
}

// ProbeEvidence is the evidence of the three probes.
type ProbeEvidence struct {
	Unicast *verdict.Unicast
	ARP     *verdict.ARP
	Echo    *verdict.Echo
}

// Probe runs, in this order, the unicast probe (frames to the guest MAC, with
// the counters read before and after), ARP for the target and ICMP echo.
// Both providers call it, so their probes have the same order and sizes.
func Probe(ctx context.Context, req ProbeRequest) (ProbeEvidence, error) {
	var ev ProbeEvidence

	// where frames for the guest MAC go
	podBefore, parentBefore, err := req.ReadCounters(ctx)
	if err != nil {
		return ev, err
	}
	sent, err := probe.SendUnicast(ctx, req.Namespace, req.Interface, req.GuestMAC, probe.UnicastOptions{
		Frames: UnicastFrames, Source: req.Peer, Destination: req.Target,
	})
	if err != nil {
		return ev, err
	}
	podAfter, parentAfter, err := req.ReadCounters(ctx)
	if err != nil {
		return ev, err
	}
	ev.Unicast = &verdict.Unicast{
		Frames:                 sent,
		PodLink:                req.PodLink,
		ReachedPod:             rise(podBefore, podAfter),
		ParentOtherhostDropped: rise(parentBefore, parentAfter),
	}

	// ARP, then ICMP echo
	arp, err := probe.ARP(ctx, req.Namespace, req.Interface, req.Target, probe.ARPOptions{})
	if err != nil {
		return ev, err
	}
	ev.ARP = &verdict.ARP{Requests: arp.Requests}
	if arp.MAC != nil {
		ev.ARP.ReplyMAC = arp.MAC.String()
	}

	ping, err := probe.Ping(ctx, req.Namespace, req.Target, probe.PingOptions{Count: EchoCount})
	if err != nil {
		return ev, err
	}
	ev.Echo = &verdict.Echo{Sent: ping.Sent, Received: ping.Received}
	return ev, nil
}

// rise returns after minus before, or 0 when a counter went backwards (a
// link recreated between the reads).
func rise(before, after uint64) uint64 {
	if after < before {
		return 0
	}
	return after - before
}

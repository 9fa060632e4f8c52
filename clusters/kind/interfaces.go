package kind

import (
	"context"
	"io"
	"net"
	"net/netip"

	"github.com/vmnet-e2e/vmnet-e2e/framework/netns"
	"github.com/vmnet-e2e/vmnet-e2e/framework/scenario"
	"github.com/vmnet-e2e/vmnet-e2e/framework/verdict"
)

// What the provider needs from packages the local provider shares. The
// provider takes them as options so that both providers observe guests and
// probe with the same code.

// UserDataJoiner adds the harness's evidence part to cloud-init user-data.
//
// TODO: wire framework/cloudinit: Join is cloudinit.JoinUserData with the
// evidence script of framework/guest, and HasEvidencePart looks for
// cloudinit.HarnessPartFilename.
type UserDataJoiner interface {
	// HasEvidencePart reports whether userData already carries the part.
	HasEvidencePart(userData []byte) bool
	// Join returns userData with the part added, and cloud-init still runs
	// every part of the original userData.
	Join(userData []byte) ([]byte, error)
}

// EvidenceParser reads a guest's serial console output until the guest's
// evidence report is complete, and returns it. It returns an error when the
// stream ends first. The provider ends the stream when its wait times out.
//
// TODO: wire framework/guest's parser of the serial console.
type EvidenceParser func(console io.Reader) (*verdict.Guest, error)

// Prober probes the guest from the external endpoint's namespace: ARP and
// ICMP echo for the target address, and Ethernet frames to the guest MAC
// counted where they arrive.
//
// TODO: wire framework/probe.
type Prober interface {
	Probe(ctx context.Context, req ProbeRequest) (ProbeResult, error)
}

// ProbeRequest is the prober's input for one scenario.
type ProbeRequest struct {
	// Namespace is the external endpoint's namespace on the CI host, and
	// Interface its link to the parent's L2 segment, carrying Peer.
	Namespace *netns.Namespace
	Interface string
	Peer      netip.Prefix
	// Target is the probed address and GuestMAC the guest NIC's MAC on the
	// probed network.
	Target   netip.Addr
	GuestMAC net.HardwareAddr
	// PodLink names the pod's end of the attachment, which every frame for
	// the guest passes (<hash>-nic for the bridge binding, the macvtap link
	// for the macvtap binding); PodLinkReceived reads its received and
	// rx-dropped packets.
	PodLink         string
	PodLinkReceived Counter
	// ParentOtherhostDropped reads the parent's rx_otherhost_dropped on the
	// node that runs the VMI. Nil when no StatsReader is configured.
	ParentOtherhostDropped Counter
}

// Counter reads a kernel counter now.
type Counter func(ctx context.Context) (uint64, error)

// ProbeResult is the prober's observations. A nil field means the probe did
// not run.
type ProbeResult struct {
	ARP     *verdict.ARP
	Echo    *verdict.Echo
	Unicast *verdict.Unicast
}

// StatsReader returns a link's rx_otherhost_dropped counter in a namespace.
// The provider passes the node's namespace (/proc/<node pid>/ns/net).
//
// TODO: wire framework/link's ReadStatistics, because netlink v1.3.1 does
// not decode that counter and the nodes' iproute2 may not print it.
type StatsReader func(ns *netns.Namespace, link string) (uint64, error)

// TargetResolver picks the probed interface of a scenario, the address to
// probe and the external endpoint's address. DefaultTargetResolver is the
// local provider's inference.
type TargetResolver func(s *scenario.Scenario) (Target, error)

// Target is the probed interface with its addresses.
type Target struct {
	Attachment scenario.Attachment
	Probe      netip.Addr
	Peer       netip.Prefix
}

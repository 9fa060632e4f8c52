package providers

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/vmnet-e2e/vmnet-e2e/clusters"
	"github.com/vmnet-e2e/vmnet-e2e/clusters/kind"
	"github.com/vmnet-e2e/vmnet-e2e/framework/cloudinit"
	"github.com/vmnet-e2e/vmnet-e2e/framework/guest"
	"github.com/vmnet-e2e/vmnet-e2e/framework/link"
	"github.com/vmnet-e2e/vmnet-e2e/framework/netns"
	"github.com/vmnet-e2e/vmnet-e2e/framework/verdict"
)

// PlanNonce is the evidence nonce shown in dry-run plans, which keeps a plan
// the same from one run to the next. Real runs draw a random one.
const PlanNonce = "0000000000000000"

// KindHarnessOptions returns the kind provider options that connect it to
// the harness's guest evidence, probes and counters: the same code the local
// provider uses. nonce marks this run's evidence; use guest.NewNonce().
func KindHarnessOptions(nonce string) []kind.Option {
	evidence := &guestEvidence{nonce: nonce}
	return []kind.Option{
		kind.WithUserDataJoiner(evidence),
		kind.WithEvidenceParser(evidence.parse),
		kind.WithProber(externalProber{}),
		kind.WithStatsReader(readOtherhostDropped),
	}
}

// guestEvidence joins the evidence script to a VM's user-data and reads the
// evidence back from its serial console, with one nonce for both.
type guestEvidence struct {
	nonce string
}

var _ kind.UserDataJoiner = (*guestEvidence)(nil)

func (g *guestEvidence) HasEvidencePart(userData []byte) bool {
	return bytes.Contains(userData, []byte(cloudinit.HarnessPartFilename))
}

func (g *guestEvidence) Join(userData []byte) ([]byte, error) {
	return cloudinit.JoinUserData(userData, guest.FinalEvidenceScript(g.nonce))
}

// parse reads console lines until an evidence block of this run completes.
// Guests booted from a containerDisk have no early evidence unit, so the
// first block is the final one.
func (g *guestEvidence) parse(console io.Reader) (*verdict.Guest, error) {
	parser := guest.NewEvidenceParser(g.nonce)
	scanner := bufio.NewScanner(console)
	scanner.Buffer(make([]byte, 64*1024), 1024*1024)
	for scanner.Scan() {
		ev, err := parser.Feed(scanner.Text())
		if err != nil {
			return nil, err
		}
		if ev != nil {
			return clusters.GuestReport(ev), nil
		}
	}
	if err := scanner.Err(); err != nil {
		return nil, fmt.Errorf("read the serial console: %w", err)
	}
	return nil, errors.New("the serial console ended before the guest printed its evidence")
}

// externalProber runs clusters.Probe, the local provider's probes, from the
// external endpoint's namespace.
type externalProber struct{}

func (externalProber) Probe(ctx context.Context, req kind.ProbeRequest) (kind.ProbeResult, error) {
	read := func(c kind.Counter) (uint64, error) {
		if c == nil {
			return 0, nil
		}
		return c(ctx)
	}
	readCounters := func(context.Context) (uint64, uint64, error) {
		pod, err := read(req.PodLinkReceived)
		if err != nil {
			return 0, 0, err
		}
		parent, err := read(req.ParentOtherhostDropped)
		return pod, parent, err
	}

	ev, err := clusters.Probe(ctx, clusters.ProbeRequest{
		Namespace: req.Namespace, Interface: req.Interface, Peer: req.Peer.Addr(),
		Target: req.Target, GuestMAC: req.GuestMAC, PodLink: req.PodLink, ReadCounters: readCounters,
	})
	return kind.ProbeResult{Unicast: ev.Unicast, ARP: ev.ARP, Echo: ev.Echo}, err
}

// readOtherhostDropped reads rx_otherhost_dropped from netlink, because
// netlink v1.3.1 does not decode it and a node's iproute2 may not print it.
func readOtherhostDropped(ns *netns.Namespace, name string) (uint64, error) {
	h, err := link.NewHandle(ns)
	if err != nil {
		return 0, err
	}
	defer h.Close()
	stats, err := link.ReadStatistics(h, name)
	if err != nil {
		return 0, err
	}
	if !stats.HasOtherhost {
		return 0, fmt.Errorf("the kernel of netns %s does not report rx_otherhost_dropped (Linux 5.19 or later does)", ns.Name)
	}
	return stats.RxOtherhostDropped, nil
}

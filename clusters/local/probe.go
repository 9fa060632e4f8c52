package local

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/vmnet-e2e/vmnet-e2e/framework/link"
	"github.com/vmnet-e2e/vmnet-e2e/framework/netns"
	"github.com/vmnet-e2e/vmnet-e2e/framework/probe"
	"github.com/vmnet-e2e/vmnet-e2e/framework/verdict"
)

// Probe sizes: small enough to finish in a few seconds, large enough that one
// lost frame does not decide a verdict.
const (
	unicastFrames = 20
	echoCount     = 5
)

// probe sends, from the external namespace, unicast frames to the guest MAC
// (counting where they arrive), ARP requests for the probed address and ICMP
// echo requests, in that order.
func (r *run) probe(ctx context.Context) error {
	nic, ok := r.targetNIC()
	if !ok {
		return fmt.Errorf("no guest NIC for network %q", r.target.Attachment.Network.Name)
	}
	ext := r.topo.External

	// the pod's links while the guest runs (qemu holds the taps, so their
	// carrier is up), as `ip addr` in the launcher pod would show them
	table, err := r.podLinkTable()
	if err != nil {
		return err
	}
	r.evidence.PodLinks = table
	r.evidence.ParentMACs = parentMACs(table)

	// where frames for the guest MAC go
	refs := []probe.CounterRef{
		{Role: "parent", Namespace: r.topo.Node, Link: r.evidence.Parent},
		{Role: "pod link", Namespace: r.pod, Link: nic.podLink},
		{Role: "guest tap", Namespace: r.pod, Link: nic.tapName},
	}
	before, err := probe.SnapshotCounters(refs)
	if err != nil {
		return err
	}
	sent, err := probe.SendUnicast(ctx, ext, externalLink, nic.mac, probe.UnicastOptions{
		Frames: unicastFrames, Source: r.target.Peer.Addr(), Destination: r.target.Address,
	})
	if err != nil {
		return err
	}
	after, err := probe.SnapshotCounters(refs)
	if err != nil {
		return err
	}
	deltas := after.Delta(before)
	parent, pod := deltas[0], deltas[1]
	r.evidence.Unicast = &verdict.Unicast{
		Frames:                 sent,
		PodLink:                nic.podLink,
		ReachedPod:             uint64(max(pod.RxPackets+pod.RxDropped, 0)),
		ParentOtherhostDropped: uint64(max(parent.RxOtherhostDropped, 0)),
	}
	r.p.log.Info("unicast probe", "scenario", r.s.Name, "frames", sent, "to", nic.mac.String(),
		"podLinkReceived", r.evidence.Unicast.ReachedPod, "parentOtherhostDropped", r.evidence.Unicast.ParentOtherhostDropped)
	r.p.log.Debug("unicast probe counters", "scenario", r.s.Name, "deltas", probe.FormatDeltas(deltas))

	// ARP, then ICMP echo
	arp, err := probe.ARP(ctx, ext, externalLink, r.target.Address, probe.ARPOptions{})
	if err != nil {
		return err
	}
	r.evidence.ARP = &verdict.ARP{Requests: arp.Requests}
	if arp.MAC != nil {
		r.evidence.ARP.ReplyMAC = arp.MAC.String()
	}

	ping, err := probe.Ping(ctx, ext, r.target.Address, probe.PingOptions{Count: echoCount})
	if err != nil {
		return err
	}
	r.evidence.Echo = &verdict.Echo{Sent: ping.Sent, Received: ping.Received}
	r.p.log.Info("probe results", "scenario", r.s.Name, "target", r.target.Address,
		"arpReply", r.evidence.ARP.ReplyMAC, "echo", fmt.Sprintf("%d/%d", ping.Received, ping.Sent))
	return nil
}

func (r *run) targetNIC() (guestNIC, bool) {
	for _, n := range r.nics {
		if n.attachment.Network.Name == r.target.Attachment.Network.Name {
			return n, true
		}
	}
	return guestNIC{}, false
}

// podLinkTable lists the pod namespace's links as the binding left them.
func (r *run) podLinkTable() ([]verdict.Link, error) {
	h, err := link.NewHandle(r.pod)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	table, err := link.Snapshot(h)
	if err != nil {
		return nil, err
	}

	var out []verdict.Link
	for _, l := range table.Links {
		row := verdict.Link{
			Name: l.Name, Kind: l.Kind, MAC: l.MAC.String(), State: l.OperState,
			Master: l.Master, Lower: l.Lower, Mode: l.MacvlanMode, MTU: l.MTU,
		}
		if !l.AdminUp {
			row.State = "DOWN"
		}
		for _, a := range l.Addrs {
			row.Addresses = append(row.Addresses, a.String())
		}
		out = append(out, row)
	}
	return out, nil
}

// parentMACs returns the MACs of the pod's macvlan and macvtap links: every
// such link in a run sits on the run's parent bridge.
func parentMACs(links []verdict.Link) []string {
	var macs []string
	for _, l := range links {
		if l.Kind == "macvlan" || l.Kind == "macvtap" {
			macs = append(macs, l.MAC)
		}
	}
	return macs
}

// saveArtifacts keeps the console log, the guest's evidence and the link
// tables of the run in the scenario's artifacts directory.
func (r *run) saveArtifacts() {
	if r.artifacts == "" {
		return
	}
	if err := os.MkdirAll(r.artifacts, 0o755); err != nil {
		r.p.log.Warn("cannot create the artifacts directory", "dir", r.artifacts, "error", err)
		return
	}
	if r.vm != nil {
		if data, err := os.ReadFile(r.vm.ConsolePath()); err == nil {
			_ = os.WriteFile(filepath.Join(r.artifacts, "console.log"), data, 0o644)
		}
	}
	if data, err := json.MarshalIndent(r.evidence, "", "  "); err == nil {
		_ = os.WriteFile(filepath.Join(r.artifacts, "evidence.json"), data, 0o644)
	}

	var tables strings.Builder
	for _, target := range r.namespaces() {
		h, err := link.NewHandle(target)
		if err != nil {
			continue
		}
		table, err := link.Snapshot(h)
		h.Close()
		if err != nil {
			continue
		}
		fmt.Fprintf(&tables, "%s\n", table.String())
	}
	if tables.Len() > 0 {
		_ = os.WriteFile(filepath.Join(r.artifacts, "links.txt"), []byte(tables.String()), 0o644)
	}
}

// namespaces returns the run's namespaces that exist so far.
func (r *run) namespaces() []*netns.Namespace {
	var out []*netns.Namespace
	if r.topo != nil {
		out = append(out, r.topo.Node, r.topo.External)
	}
	if r.pod != nil {
		out = append(out, r.pod)
	}
	return out
}

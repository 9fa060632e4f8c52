package local

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/vmnet-e2e/vmnet-e2e/clusters"
	"github.com/vmnet-e2e/vmnet-e2e/framework/link"
	"github.com/vmnet-e2e/vmnet-e2e/framework/netns"
	"github.com/vmnet-e2e/vmnet-e2e/framework/verdict"
)

// probe records the pod's link table and runs clusters.Probe from the
// external namespace.
func (r *run) probe(ctx context.Context) error {
	nic, ok := r.targetNIC()
	if !ok {
		return fmt.Errorf("no guest NIC for network %q", r.target.Attachment.Network.Name)
	}

	// the pod's links while the guest runs (qemu holds the taps, so their
	// carrier is up), as `ip addr` in the launcher pod would show them
	table, err := r.podLinkTable()
	if err != nil {
		return err
	}
	r.evidence.PodLinks = table
	r.evidence.ParentMACs = parentMACs(table)

	// the counters along the path: the pod's end of the attachment and the
	// parent bridge in the node namespace
	readCounters := func(context.Context) (uint64, uint64, error) {
		pod, err := linkStatistics(r.pod, nic.podLink)
		if err != nil {
			return 0, 0, err
		}
		parent, err := linkStatistics(r.topo.Node, r.evidence.Parent)
		if err != nil {
			return 0, 0, err
		}
		return pod.RxPackets + pod.RxDropped, parent.RxOtherhostDropped, nil
	}

	result, err := clusters.Probe(ctx, clusters.ProbeRequest{
		Namespace: r.topo.External, Interface: externalLink, Peer: r.target.Peer.Addr(),
		Target: r.target.Address, GuestMAC: nic.mac, PodLink: nic.podLink, ReadCounters: readCounters,
	})
	if err != nil {
		return err
	}
	r.evidence.Unicast, r.evidence.ARP, r.evidence.Echo = result.Unicast, result.ARP, result.Echo
	r.p.log.Info("probe results", "scenario", r.s.Name, "target", r.target.Address, "guestMAC", nic.mac.String(),
		"podLinkReceived", result.Unicast.ReachedPod, "parentOtherhostDropped", result.Unicast.ParentOtherhostDropped,
		"arpReply", result.ARP.ReplyMAC, "echo", fmt.Sprintf("%d/%d", result.Echo.Received, result.Echo.Sent))
	return nil
}

// linkStatistics reads one link's counters in ns.
func linkStatistics(ns *netns.Namespace, name string) (link.Statistics, error) {
	h, err := link.NewHandle(ns)
	if err != nil {
		return link.Statistics{}, err
	}
	defer h.Close()
	return link.ReadStatistics(h, name)
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

package binding

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"github.com/vmnet-e2e/vmnet-e2e/framework/link"
	"github.com/vmnet-e2e/vmnet-e2e/framework/link/linktest"
	"github.com/vmnet-e2e/vmnet-e2e/framework/netns"
	"github.com/vmnet-e2e/vmnet-e2e/framework/probe"
)

func TestBridgeBindingMacvlanLinks(t *testing.T) {
	p := addPod(t, "mynet", macvlanNAD)
	res := applyBridge(t, p, BridgeSpec{NetworkName: "mynet", InterfaceIndex: 0})
	checkBridgeBindingLinks(t, p, res, "macvlan")

	table := snapshot(t, p)
	nic, _ := table.Link(res.BridgedNIC)
	if nic.MacvlanMode != "bridge" {
		t.Errorf("%s macvlan mode %q, want bridge", res.BridgedNIC, nic.MacvlanMode)
	}
	if nic.Lower == "" {
		t.Errorf("%s shows no lower link, want the parent in the node namespace", res.BridgedNIC)
	}
}

func TestBridgeBindingLinuxBridgeLinks(t *testing.T) {
	p := addPod(t, "mynet", linuxBridgeNAD)
	res := applyBridge(t, p, BridgeSpec{NetworkName: "mynet", InterfaceIndex: 1})
	checkBridgeBindingLinks(t, p, res, "veth")
	if want := netip.MustParsePrefix("169.254.75.11/32"); res.BridgeAddress != want {
		t.Errorf("bridge address for interface index 1 = %s, want %s", res.BridgeAddress, want)
	}
}

func TestBridgeBindingRequestedMAC(t *testing.T) {
	const mac = "02:00:c0:00:02:0a"
	linktest.RequireRoot(t)
	p := addPodWithMAC(t, "mynet", macvlanNAD, mac)
	if p.add.MAC.String() != mac {
		t.Fatalf("macvlan plugin reported MAC %s, want the requested %s (CNI_ARGS MAC=)", p.add.MAC, mac)
	}
	res := applyBridge(t, p, BridgeSpec{NetworkName: "mynet", MACAddress: mac})
	if res.GuestMAC.String() != mac {
		t.Errorf("guest MAC %s, want spec macAddress %s", res.GuestMAC, mac)
	}
	if res.DHCP == nil || res.DHCP.ClientMAC.String() != mac {
		t.Errorf("DHCP client MAC %v, want %s", res.DHCP, mac)
	}
	table := snapshot(t, p)
	if ph, _ := table.Link(res.Placeholder); ph.MAC.String() != mac {
		t.Errorf("placeholder MAC %s, want %s", ph.MAC, mac)
	}
}

// TestMacvlanDropsUnicastToGuest wires a namespace standing in for the guest
// behind the in-pod bridge and probes it from the external namespace. The
// kernel's macvlan driver hands unicast for a MAC that belongs to no macvlan
// of the parent to the parent's own stack, so ARP (broadcast) resolves to the
// guest MAC while echo requests die on the parent bridge as PACKET_OTHERHOST.
//
// The stand-in is a veth port where the guest would have the tap. Everything
// that decides the outcome happens before the in-pod bridge (macvlan receive
// on the parent in the node namespace); from the in-pod bridge on, a veth port
// and a tap port opened by qemu both deliver the frame to an endpoint with the
// guest MAC and send its replies back through the bridge, with learning on
// (KubeVirt switches learning off only on <hash>-nic).
func TestMacvlanDropsUnicastToGuest(t *testing.T) {
	p := addPod(t, "mynet", macvlanNAD)
	res := applyBridge(t, p, BridgeSpec{NetworkName: "mynet"})
	guest := p.topo.AddGuestStandIn(t, res.Bridge, "gst0", res.GuestMAC, guestAddr)
	ctx := linktest.Context(t)

	arp, err := probe.ARP(ctx, p.topo.External, p.topo.ExternalLink, guestAddr.Addr(), probe.ARPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ARP %s: %v in %v", guestAddr.Addr(), arp.MACs, arp.Duration)
	if !bytes.Equal(arp.MAC, res.GuestMAC) {
		t.Errorf("ARP for %s answered by %v, want the guest MAC %s", guestAddr.Addr(), arp.MACs, res.GuestMAC)
	}

	refs := counterRefs(p, res, guest)
	before, err := probe.SnapshotCounters(refs)
	if err != nil {
		t.Fatal(err)
	}
	const count = 5
	ping, err := probe.Ping(ctx, p.topo.External, guestAddr.Addr(), probe.PingOptions{Count: count})
	if err != nil {
		t.Fatal(err)
	}
	after, err := probe.SnapshotCounters(refs)
	if err != nil {
		t.Fatal(err)
	}
	deltas := after.Delta(before)
	t.Logf("ping: %d sent, %d received in %v\n%s", ping.Sent, ping.Received, ping.Duration, probe.FormatDeltas(deltas))

	if ping.Sent != count {
		t.Errorf("ping sent %d echo requests, want %d", ping.Sent, count)
	}
	if ping.Received != 0 {
		t.Errorf("ping received %d replies through macvlan + bridge binding, want 0", ping.Received)
	}
	parent, _ := probe.Lookup(deltas, p.topo.Node, p.topo.Parent)
	if !parent.HasOtherhost {
		t.Fatalf("kernel reports no rx_otherhost_dropped on %s", p.topo.Parent)
	}
	if parent.RxOtherhostDropped < count || parent.RxOtherhostDropped > count+2 {
		t.Errorf("%s rx_otherhost_dropped rose by %d, want about %d (one per echo request)", p.topo.Parent, parent.RxOtherhostDropped, count)
	}
}

// TestLinuxBridgeDeliversEcho is the same wiring with the bridge CNI plugin:
// the node bridge learns the guest MAC on the pod's veth, so echoes return.
func TestLinuxBridgeDeliversEcho(t *testing.T) {
	p := addPod(t, "mynet", linuxBridgeNAD)
	res := applyBridge(t, p, BridgeSpec{NetworkName: "mynet"})
	guest := p.topo.AddGuestStandIn(t, res.Bridge, "gst0", res.GuestMAC, guestAddr)
	ctx := linktest.Context(t)

	arp, err := probe.ARP(ctx, p.topo.External, p.topo.ExternalLink, guestAddr.Addr(), probe.ARPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(arp.MAC, res.GuestMAC) {
		t.Errorf("ARP for %s answered by %v, want the guest MAC %s", guestAddr.Addr(), arp.MACs, res.GuestMAC)
	}

	refs := counterRefs(p, res, guest)
	before, err := probe.SnapshotCounters(refs)
	if err != nil {
		t.Fatal(err)
	}
	const count = 5
	ping, err := probe.Ping(ctx, p.topo.External, guestAddr.Addr(), probe.PingOptions{Count: count})
	if err != nil {
		t.Fatal(err)
	}
	after, err := probe.SnapshotCounters(refs)
	if err != nil {
		t.Fatal(err)
	}
	deltas := after.Delta(before)
	t.Logf("ping: %d sent, %d received, RTTs %v\n%s", ping.Sent, ping.Received, ping.RTTs, probe.FormatDeltas(deltas))
	if ping.Received != count {
		t.Errorf("ping received %d of %d replies through the bridge CNI, want all", ping.Received, count)
	}
	if g, _ := probe.Lookup(deltas, guest, "eth0"); g.RxPackets < count {
		t.Errorf("guest stand-in received %d packets, want at least %d", g.RxPackets, count)
	}
}

// checkBridgeBindingLinks asserts the link set KubeVirt leaves in the pod.
func checkBridgeBindingLinks(t *testing.T, p *pod, res *BridgeResult, nicKind string) {
	t.Helper()
	table := snapshot(t, p)
	t.Logf("pod links after the bridge binding:\n%s", table)

	if !bytes.Equal(res.OriginalMAC, p.add.MAC) {
		t.Errorf("binding saw original MAC %s, CNI reported %s", res.OriginalMAC, p.add.MAC)
	}
	if !bytes.Equal(res.GuestMAC, p.add.MAC) {
		t.Errorf("guest MAC %s, want the CNI link's original MAC %s", res.GuestMAC, p.add.MAC)
	}

	ph, ok := table.Link(res.Placeholder)
	switch {
	case !ok:
		t.Errorf("placeholder %s missing", res.Placeholder)
	default:
		if ph.AdminUp || ph.OperState != "DOWN" {
			t.Errorf("placeholder %s is admin up=%v oper %s, want DOWN", ph.Name, ph.AdminUp, ph.OperState)
		}
		if !bytes.Equal(ph.MAC, p.add.MAC) {
			t.Errorf("placeholder MAC %s, want the original %s", ph.MAC, p.add.MAC)
		}
		if !hasAddr(ph.Addrs, guestAddr) {
			t.Errorf("placeholder addresses %v, want %s", ph.Addrs, guestAddr)
		}
		if ph.Kind != res.PlaceholderKind {
			t.Errorf("placeholder kind %s, binding reported %s", ph.Kind, res.PlaceholderKind)
		}
		if ph.MTU != res.MTU {
			t.Errorf("placeholder MTU %d, want the pod link's %d", ph.MTU, res.MTU)
		}
	}

	br, ok := table.Link(res.Bridge)
	if !ok {
		t.Fatalf("bridge %s missing", res.Bridge)
	}
	if br.Kind != "bridge" || !br.AdminUp {
		t.Errorf("%s kind %s admin up %v, want an UP bridge", br.Name, br.Kind, br.AdminUp)
	}
	if !hasAddr(br.Addrs, res.BridgeAddress) || !res.BridgeAddress.Addr().Is4() {
		t.Errorf("%s addresses %v, want %s", br.Name, br.Addrs, res.BridgeAddress)
	}
	for _, a := range br.Addrs {
		if a.Addr().Is4() && a != res.BridgeAddress {
			t.Errorf("%s holds extra IPv4 address %s", br.Name, a)
		}
	}

	nic, ok := table.Link(res.BridgedNIC)
	if !ok {
		t.Fatalf("%s missing", res.BridgedNIC)
	}
	if nic.Kind != nicKind {
		t.Errorf("%s kind %s, want %s", nic.Name, nic.Kind, nicKind)
	}
	if nic.Master != res.Bridge {
		t.Errorf("%s master %q, want %s", nic.Name, nic.Master, res.Bridge)
	}
	if !bytes.Equal(nic.MAC, res.NICMAC) {
		t.Errorf("%s MAC %s, want the MAC copied from %s (%s)", nic.Name, nic.MAC, res.Bridge, res.NICMAC)
	}
	if bytes.Equal(nic.MAC, p.add.MAC) {
		t.Errorf("%s kept the original MAC %s", nic.Name, nic.MAC)
	}
	for _, a := range nic.Addrs {
		if a.Addr().Is4() {
			t.Errorf("%s holds IPv4 address %s, want none", nic.Name, a)
		}
	}
	if !nic.AdminUp {
		t.Errorf("%s is not UP", nic.Name)
	}
	if nic.Learning == nil || *nic.Learning {
		t.Errorf("%s learning %v, want off", nic.Name, nic.Learning)
	}

	tap, ok := table.Link(res.Tap)
	if !ok {
		t.Fatalf("tap %s missing", res.Tap)
	}
	if tap.Kind != "tap" || tap.Master != res.Bridge || !tap.AdminUp {
		t.Errorf("%s kind %s master %q up %v, want an UP tap on %s", tap.Name, tap.Kind, tap.Master, tap.AdminUp, res.Bridge)
	}
	if tap.MTU != res.MTU {
		t.Errorf("%s MTU %d, want the pod link's %d", tap.Name, tap.MTU, res.MTU)
	}

	h := linktest.Handle(t, p.topo.Pod)
	v, err := link.ReadSysctl(h, "net.ipv4.conf.all.arp_ignore")
	if err != nil {
		t.Fatal(err)
	}
	if v != "1" || !res.ArpIgnore {
		t.Errorf("net.ipv4.conf.all.arp_ignore = %s (reported %v), want 1", v, res.ArpIgnore)
	}

	if res.DHCP == nil {
		t.Fatal("no DHCP offer for a pod link with a global IPv4 address")
	}
	if res.DHCP.Address != guestAddr || !bytes.Equal(res.DHCP.ClientMAC, p.add.MAC) {
		t.Errorf("DHCP offer %s to %s, want %s to %s", res.DHCP.Address, res.DHCP.ClientMAC, guestAddr, p.add.MAC)
	}
	if res.DHCP.ServerID != res.BridgeAddress.Addr() {
		t.Errorf("DHCP server id %s, want the bridge address %s", res.DHCP.ServerID, res.BridgeAddress.Addr())
	}
	if res.DHCP.Router.IsValid() || len(res.DHCP.Routes) != 0 {
		t.Errorf("DHCP router %s routes %v, want none (static IPAM without routes leaves only the connected route)", res.DHCP.Router, res.DHCP.Routes)
	}
	if int(res.DHCP.MTU) != res.MTU {
		t.Errorf("DHCP MTU %d, want %d", res.DHCP.MTU, res.MTU)
	}
	for _, s := range res.Steps {
		t.Logf("step %-50s %v", s.Name, s.Duration)
	}
	t.Logf("bridge binding took %v", res.Duration)
}

func applyBridge(t *testing.T, p *pod, spec BridgeSpec) *BridgeResult {
	t.Helper()
	res, err := ApplyBridge(p.topo.Pod, spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func addPodWithMAC(t *testing.T, networkName string, nad func(name, parent string) []byte, mac string) *pod {
	t.Helper()
	topo := linktest.NewTopology(t)
	p := newPod(t, topo, networkName, nad)
	p.att.MAC = mac
	var err error
	p.add, err = p.runner.Add(linktest.Context(t), p.pod, p.att)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func snapshot(t *testing.T, p *pod) link.Table {
	t.Helper()
	table, err := link.Snapshot(linktest.Handle(t, p.topo.Pod))
	if err != nil {
		t.Fatal(err)
	}
	return table
}

// counterRefs lists the links along the path from the external namespace to
// the guest stand-in.
func counterRefs(p *pod, res *BridgeResult, guest *netns.Namespace) []probe.CounterRef {
	return []probe.CounterRef{
		{Role: "external peer", Namespace: p.topo.External, Link: p.topo.ExternalLink},
		{Role: "parent bridge", Namespace: p.topo.Node, Link: p.topo.Parent},
		{Role: "pod nic", Namespace: p.topo.Pod, Link: res.BridgedNIC},
		{Role: "in-pod bridge", Namespace: p.topo.Pod, Link: res.Bridge},
		{Role: "tap", Namespace: p.topo.Pod, Link: res.Tap},
		{Role: "guest stand-in", Namespace: guest, Link: "eth0"},
	}
}

func hasAddr(addrs []netip.Prefix, want netip.Prefix) bool {
	for _, a := range addrs {
		if a == want {
			return true
		}
	}
	return false
}

func TestBridgeBindingRejectsBadInput(t *testing.T) {
	p := addPod(t, "mynet", macvlanNAD)
	before := snapshot(t, p).Brief()

	_, err := ApplyBridge(p.topo.Pod, BridgeSpec{NetworkName: "mynet", MACAddress: "02:00:00:00:00"}, nil)
	if err == nil || !strings.Contains(err.Error(), `"02:00:00:00:00"`) {
		t.Errorf("invalid spec MAC: error %v, want one naming the value", err)
	}
	_, err = ApplyBridge(p.topo.Pod, BridgeSpec{NetworkName: "othernet"}, nil)
	if err == nil || !strings.Contains(err.Error(), "pod link (pod") {
		t.Errorf("network without a pod link: error %v, want \"pod link (...) is missing\"", err)
	}
	if after := snapshot(t, p).Brief(); after != before {
		t.Errorf("pod links changed by rejected bindings:\n%s\nwant:\n%s", after, before)
	}
}

package kind

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/vmnet-e2e/vmnet-e2e/framework/cleanup"
	"github.com/vmnet-e2e/vmnet-e2e/framework/netns"
)

func TestPlanWiringNames(t *testing.T) {
	w, err := PlanWiring("r1", []Parent{{Name: "br-a"}, {Name: "br-b"}}, []string{"c-control-plane", "c-worker"})
	if err != nil {
		t.Fatal(err)
	}
	if w.Hub != "vmnet-kind-r1-hub" || len(w.Segments) != 2 {
		t.Fatalf("wiring = %+v", w)
	}
	seg := w.Segments[1]
	if seg.Parent != "br-b" || seg.HubBridge != "hub1" || len(seg.Links) != 2 {
		t.Errorf("segment = %+v", seg)
	}
	if l := seg.Links[1]; l.Node != "c-worker" || l.HubVeth != "p1n1" || l.NodeVeth != "vmnet-up1" {
		t.Errorf("link = %+v, want c-worker p1n1 vmnet-up1", l)
	}
}

func ledgerForTest(t *testing.T) *cleanup.Ledger {
	t.Helper()
	l, err := cleanup.NewLedger(fmt.Sprintf("kindtest-%d", os.Getpid()), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(context.Background()); err != nil {
			t.Errorf("close ledger: %v", err)
		}
	})
	return l
}

// addMacvlan puts a macvlan with addr on parent inside ns, as the macvlan
// CNI plugin's link would carry it in a pod on that node.
func addMacvlan(t *testing.T, ns *netns.Namespace, parent, addr string) {
	t.Helper()
	h := handleIn(t, ns)
	p, err := h.LinkByName(parent)
	must(t, err)
	mv := &netlink.Macvlan{LinkAttrs: netlink.LinkAttrs{Name: "mvl", ParentIndex: p.Attrs().Index}, Mode: netlink.MACVLAN_MODE_BRIDGE}
	must(t, h.LinkAdd(mv))
	a, _ := netlink.ParseAddr(addr)
	must(t, h.AddrAdd(mv, a))
	must(t, h.LinkSetUp(mv))
}

func ping(ns *netns.Namespace, target string) error {
	out, err := exec.Command("ip", "netns", "exec", ns.Name, "ping", "-c", "1", "-W", "2", target).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ping %s from %s: %w: %s", target, ns.Name, err, out)
	}
	return nil
}

// TestWiringCarriesMacvlanTraffic wires two namespaces standing in for kind
// nodes (the provider would find them at /proc/<pid>/ns/net), puts a macvlan
// on each node's parent bridge, and pings both from the external endpoint
// through the hub: the L2 path a kind run gives its scenarios.
func TestWiringCarriesMacvlanTraffic(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	nodes := []*netns.Namespace{testNamespace(t, "n0"), testNamespace(t, "n1")}
	paths := map[string]string{nodes[0].Name: nodes[0].Path, nodes[1].Name: nodes[1].Path}
	resolve := func(_ context.Context, node string) (string, error) { return paths[node], nil }
	ledger := ledgerForTest(t)
	runID := fmt.Sprintf("t%d", os.Getpid())

	w, err := PlanWiring(runID, []Parent{{Name: "br-vmnet"}}, []string{nodes[0].Name, nodes[1].Name})
	must(t, err)
	built, err := w.Build(ctx, ledger, resolve, nil)
	if built != nil {
		t.Cleanup(func() { _ = built.Teardown(ctx, true) })
	}
	must(t, err)

	// each node has the parent bridge with the uplink enslaved
	for _, node := range nodes {
		h := handleIn(t, node)
		br, err := h.LinkByName("br-vmnet")
		must(t, err)
		if _, ok := br.(*netlink.Bridge); !ok || br.Attrs().Flags&net.FlagUp == 0 {
			t.Errorf("%s: br-vmnet = %s, up=%v; want an up bridge", node.Name, br.Type(), br.Attrs().Flags&net.FlagUp != 0)
		}
		up, err := h.LinkByName("vmnet-up0")
		must(t, err)
		if up.Attrs().MasterIndex != br.Attrs().Index {
			t.Errorf("%s: vmnet-up0 is not a port of br-vmnet", node.Name)
		}
	}

	// traffic from the endpoint reaches macvlans on both nodes
	addMacvlan(t, nodes[0], "br-vmnet", "192.0.2.10/24")
	addMacvlan(t, nodes[1], "br-vmnet", "192.0.2.11/24")
	ep, err := w.ConnectEndpoint(ctx, ledger, runID, "br-vmnet", netip.MustParsePrefix("192.0.2.254/24"))
	must(t, err)
	for _, target := range []string{"192.0.2.10", "192.0.2.11"} {
		if err := ping(ep.Namespace, target); err != nil {
			t.Error(err)
		}
	}

	// a second run cannot wire the same nodes while this one holds them
	second, err := PlanWiring(runID+"b", []Parent{{Name: "br-vmnet"}}, []string{nodes[0].Name})
	must(t, err)
	built2, err := second.Build(ctx, ledger, resolve, nil)
	if built2 != nil {
		_ = built2.Teardown(ctx, false)
	}
	if err == nil || !strings.Contains(err.Error(), "already has a link vmnet-up0") {
		t.Errorf("second Build error = %v, want one about vmnet-up0", err)
	}

	// closing the endpoint and tearing down remove everything
	must(t, ep.Close(ctx))
	if ep.Namespace.Exists() {
		t.Errorf("endpoint namespace %s still exists", ep.Namespace.Name)
	}
	must(t, built.Teardown(ctx, true))
	if _, err := netns.Open(w.Hub); err == nil {
		t.Errorf("hub namespace %s still exists", w.Hub)
	}
	for _, node := range nodes {
		h := handleIn(t, node)
		if _, err := h.LinkByName("br-vmnet"); err == nil {
			t.Errorf("%s: br-vmnet survived the teardown", node.Name)
		}
		// The uplink dies with its hub end, which the kernel removes
		// shortly after the hub namespace goes.
		deadline := time.Now().Add(5 * time.Second)
		for {
			_, err := h.LinkByName("vmnet-up0")
			if err != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s: vmnet-up0 survived the hub namespace", node.Name)
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func TestEnsureBridgeRefusesOtherLink(t *testing.T) {
	needRoot(t)
	ns := testNamespace(t, "adopt")
	h := handleIn(t, ns)
	must(t, h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "br-bad"}, PeerName: "br-bad-peer"}))

	if _, err := ensureBridge(h, "br-bad"); err == nil || !strings.Contains(err.Error(), "not a bridge") {
		t.Errorf("ensureBridge on a veth: %v, want a not-a-bridge error", err)
	}

	must(t, h.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br-old"}}))
	got, err := ensureBridge(h, "br-old")
	must(t, err)
	if got.created {
		t.Error("an existing bridge was reported as created, so teardown would delete it")
	}
}

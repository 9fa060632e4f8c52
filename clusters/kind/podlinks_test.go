package kind

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/vmnet-e2e/vmnet-e2e/framework/netns"
	"github.com/vmnet-e2e/vmnet-e2e/framework/verdict"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("creating network namespaces needs root")
	}
}

// testNamespace creates a named namespace that t removes at the end.
func testNamespace(t *testing.T, role string) *netns.Namespace {
	t.Helper()
	ns, err := netns.Create(fmt.Sprintf("vmnet-kindtest-%s-%d", role, os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ns.Delete(); err != nil {
			t.Errorf("delete namespace %s: %v", ns.Name, err)
		}
	})
	return ns
}

func handleIn(t *testing.T, ns *netns.Namespace) *netlink.Handle {
	t.Helper()
	h, err := ns.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func ipJSON(t *testing.T, ns *netns.Namespace, args ...string) []byte {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"-n", ns.Name}, args...)...).Output()
	if err != nil {
		t.Fatalf("ip -n %s %s: %v", ns.Name, strings.Join(args, " "), err)
	}
	return out
}

func rowNamed(t *testing.T, rows []verdict.Link, name string) verdict.Link {
	t.Helper()
	for _, r := range rows {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no link %s in %+v", name, rows)
	return verdict.Link{}
}

// TestParsePodLinksFromIproute builds, in two namespaces, the links a kind
// node and a virt-launcher pod contain for a macvlan network with bridge
// binding. The macvlan's parent stays in the node, and the pod has a bridge
// with a tap and a link-local address. The test then parses this machine's
// `ip -d -j link` and `ip -j addr` output for the pod.
func TestParsePodLinksFromIproute(t *testing.T) {
	needRoot(t)
	node, pod := testNamespace(t, "node"), testNamespace(t, "pod")
	nodeH, podH := handleIn(t, node), handleIn(t, pod)

	// the node: parent bridge and a macvlan on it, moved into the pod
	parent := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br-p"}}
	must(t, nodeH.LinkAdd(parent))
	must(t, nodeH.LinkSetUp(parent))
	mac, _ := net.ParseMAC("02:00:00:00:00:aa")
	mv := &netlink.Macvlan{LinkAttrs: netlink.LinkAttrs{Name: "mv0", ParentIndex: parent.Index, HardwareAddr: mac}, Mode: netlink.MACVLAN_MODE_BRIDGE}
	must(t, nodeH.LinkAdd(mv))
	podFD, err := pod.Handle()
	must(t, err)
	defer podFD.Close()
	must(t, nodeH.LinkSetNsFd(mv, int(podFD)))

	// the pod: bridge with a /32, tap enslaved, a veth pair
	k6t := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "k6t-x"}}
	must(t, podH.LinkAdd(k6t))
	addr, _ := netlink.ParseAddr("169.254.75.10/32")
	must(t, podH.AddrAdd(k6t, addr))
	must(t, podH.LinkSetUp(k6t))
	tap := &netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: "tapx", MasterIndex: k6t.Index}, Mode: netlink.TUNTAP_MODE_TAP, Flags: netlink.TUNTAP_DEFAULTS}
	must(t, pod.Do(func() error { return netlink.LinkAdd(tap) }))
	must(t, podH.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "va"}, PeerName: "vb"}))
	podMV, err := podH.LinkByName("mv0")
	must(t, err)
	mvAddr, _ := netlink.ParseAddr("192.0.2.10/24")
	must(t, podH.AddrAdd(podMV, mvAddr))
	must(t, podH.LinkSetUp(podMV))

	rows, err := ParsePodLinks(ipJSON(t, pod, "-d", "-j", "link", "show"), ipJSON(t, pod, "-j", "addr", "show"))
	must(t, err)

	lo := rowNamed(t, rows, "lo")
	if lo.Kind != "device" || lo.State != "UNKNOWN" || !slices.Contains(lo.Addresses, "127.0.0.1/8") {
		t.Errorf("lo = %+v, want kind device, state UNKNOWN, 127.0.0.1/8", lo)
	}
	macvlan := rowNamed(t, rows, "mv0")
	wantLower := fmt.Sprintf("if%d(nsid ", parent.Index)
	if macvlan.Kind != "macvlan" || macvlan.Mode != "bridge" || macvlan.MAC != "02:00:00:00:00:aa" || !strings.HasPrefix(macvlan.Lower, wantLower) {
		t.Errorf("mv0 = %+v, want macvlan, mode bridge, 02:00:00:00:00:aa, lower %s...", macvlan, wantLower)
	}
	if !slices.Equal(macvlan.Addresses, []string{"192.0.2.10/24"}) && !slices.Contains(macvlan.Addresses, "192.0.2.10/24") {
		t.Errorf("mv0 addresses = %v, want 192.0.2.10/24", macvlan.Addresses)
	}
	bridge := rowNamed(t, rows, "k6t-x")
	if bridge.Kind != "bridge" || !slices.Contains(bridge.Addresses, "169.254.75.10/32") {
		t.Errorf("k6t-x = %+v, want a bridge with 169.254.75.10/32", bridge)
	}
	if tapRow := rowNamed(t, rows, "tapx"); tapRow.Kind != "tap" || tapRow.Master != "k6t-x" || tapRow.MTU != 1500 {
		t.Errorf("tapx = %+v, want a tap enslaved to k6t-x, MTU 1500", tapRow)
	}
	if va := rowNamed(t, rows, "va"); va.Kind != "veth" || va.Lower != "vb" || va.State != "DOWN" {
		t.Errorf("va = %+v, want a DOWN veth whose peer is vb", va)
	}

	// the parent's MACs as the provider gathers them from the pod's view
	if got := macsOnParent(rows, "br-p", parent.Index, false); !slices.Equal(got, []string{"02:00:00:00:00:aa"}) {
		t.Errorf("macsOnParent = %v, want [02:00:00:00:00:aa]", got)
	}
	if got := macsOnParent(rows, "br-p", parent.Index+100, false); len(got) != 0 {
		t.Errorf("macsOnParent for another parent index = %v, want none", got)
	}
}

func TestParseLinkPacketsFromIproute(t *testing.T) {
	needRoot(t)
	ns := testNamespace(t, "stats")
	if out, err := exec.Command("ip", "netns", "exec", ns.Name, "ping", "-c", "3", "-i", "0.2", "-W", "1", "127.0.0.1").CombinedOutput(); err != nil {
		t.Fatalf("ping on lo: %v: %s", err, out)
	}
	rx, tx, err := parseLinkPackets(ipJSON(t, ns, "-s", "-j", "link", "show", "dev", "lo"))
	must(t, err)
	// Each echo request and reply crosses lo once each way.
	if rx < 6 || tx < 6 {
		t.Errorf("lo counters rx %d tx %d after 3 pings, want at least 6 each", rx, tx)
	}
}

func TestParsePodLinksRejectsGarbage(t *testing.T) {
	if _, err := ParsePodLinks([]byte("1: lo: <LOOPBACK,UP>"), nil); err == nil {
		t.Error("ParsePodLinks accepted text output")
	}
	if _, _, err := parseLinkPackets([]byte("[]")); err == nil {
		t.Error("parseLinkPackets accepted an empty list")
	}
}

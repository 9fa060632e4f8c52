package cni

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmnet-e2e/vmnet-e2e/framework/link"
	"github.com/vmnet-e2e/vmnet-e2e/framework/link/linktest"
	"github.com/vmnet-e2e/vmnet-e2e/framework/netns"
)

func TestMain(m *testing.M) { linktest.Main(m) }

const podIface = "pod11c844f95e2" // KubeVirt's name for network "mynet"

func newTestPod(t *testing.T) (*linktest.Topology, *Runner, Pod) {
	t.Helper()
	linktest.RequireRoot(t)
	topo := linktest.NewTopology(t)
	r, err := NewRunner(topo.Node, topo.Ledger.Dir())
	if err != nil {
		t.Fatal(err)
	}
	pod := Pod{Namespace: "default", Name: "virt-launcher-vm1-x7k2p", UID: "uid-1", ContainerID: "sandbox-" + linktest.Suffix(), NetNS: topo.Pod}
	return topo, r, pod
}

func TestMacvlanStaticAddDel(t *testing.T) {
	topo, r, pod := newTestPod(t)
	att := Attachment{
		NADNamespace: "default", NADName: "mynet",
		Config: fmt.Appendf(nil, `{"cniVersion":"0.4.0","name":"mynet","type":"macvlan","master":%q,"mode":"bridge",
			"ipam":{"type":"static","addresses":[{"address":"192.0.2.10/24"}]}}`, topo.Parent),
		Interface: podIface,
	}
	ctx := linktest.Context(t)

	res, err := r.Add(ctx, pod, att)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ADD took %v", res.Duration)
	if len(res.IPs) != 1 || res.IPs[0] != netip.MustParsePrefix("192.0.2.10/24") {
		t.Errorf("ADD result IPs %v, want [192.0.2.10/24]", res.IPs)
	}
	if res.Interface == nil || res.Interface.Sandbox != topo.Pod.Path {
		t.Errorf("ADD result interface %+v, want %s in sandbox %s", res.Interface, podIface, topo.Pod.Path)
	}

	h := linktest.Handle(t, topo.Pod)
	table, err := link.Snapshot(h)
	if err != nil {
		t.Fatal(err)
	}
	l, ok := table.Link(podIface)
	if !ok {
		t.Fatalf("%s not in pod after ADD:\n%s", podIface, table.Brief())
	}
	if l.Kind != "macvlan" || l.MacvlanMode != "bridge" || l.MAC.String() != res.MAC.String() {
		t.Errorf("%s is %s mode %s MAC %s, want macvlan mode bridge MAC %s", podIface, l.Kind, l.MacvlanMode, l.MAC, res.MAC)
	}
	if len(l.Addrs) == 0 || l.Addrs[0] != netip.MustParsePrefix("192.0.2.10/24") {
		t.Errorf("%s addresses %v, want 192.0.2.10/24 first", podIface, l.Addrs)
	}
	cached, _ := filepath.Glob(filepath.Join(r.CacheDir(), "results", "mynet-*"))
	if len(cached) != 1 {
		t.Errorf("libcni cache holds %v, want one result for mynet", cached)
	}

	if err := r.Del(ctx, pod, att); err != nil {
		t.Fatal(err)
	}
	if ok, err := link.Exists(h, podIface); err != nil || ok {
		t.Errorf("%s still exists after DEL (err %v)", podIface, err)
	}
	if cached, _ := filepath.Glob(filepath.Join(r.CacheDir(), "results", "mynet-*")); len(cached) != 0 {
		t.Errorf("libcni cache still holds %v after DEL", cached)
	}
}

func TestBridgeHostLocalAddDel(t *testing.T) {
	topo, r, pod := newTestPod(t)
	att := Attachment{
		Config: fmt.Appendf(nil, `{"cniVersion":"1.0.0","name":"br-net","plugins":[{"type":"bridge","bridge":%q,
			"ipam":{"type":"host-local","ranges":[[{"subnet":"192.0.2.0/24","rangeStart":"192.0.2.50","rangeEnd":"192.0.2.60"}]]}}]}`, topo.Parent),
		Interface: podIface,
	}
	ctx := linktest.Context(t)

	res, err := r.Add(ctx, pod, att)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.IPs) != 1 || res.IPs[0] != netip.MustParsePrefix("192.0.2.50/24") {
		t.Errorf("ADD result IPs %v, want [192.0.2.50/24]", res.IPs)
	}
	lease := filepath.Join(r.DataDir(), "networks", "br-net", "192.0.2.50")
	if _, err := os.Stat(lease); err != nil {
		t.Errorf("host-local allocation %s missing under the run's state dir: %v", lease, err)
	}
	if _, err := os.Stat("/var/lib/cni/networks/br-net"); err == nil {
		t.Errorf("host-local wrote /var/lib/cni/networks/br-net, want the run's state dir")
	}

	// The bridge plugin's host end is a port of the node bridge.
	node := linktest.Handle(t, topo.Node)
	table, err := link.Snapshot(node)
	if err != nil {
		t.Fatal(err)
	}
	ports := 0
	for _, l := range table.Links {
		if l.Master == topo.Parent {
			ports++
		}
	}
	if ports != 2 {
		t.Errorf("%s has %d ports after ADD, want 2 (external peer and pod veth):\n%s", topo.Parent, ports, table.Brief())
	}

	if err := r.Del(ctx, pod, att); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(lease); !os.IsNotExist(err) {
		t.Errorf("host-local allocation %s still exists after DEL", lease)
	}
	if ok, _ := link.Exists(linktest.Handle(t, topo.Pod), podIface); ok {
		t.Errorf("%s still exists after DEL", podIface)
	}
}

func TestMACRequestReachesPlugin(t *testing.T) {
	const mac = "02:00:c0:00:02:0b"
	for _, tc := range []struct {
		name   string
		config string
	}{
		{"cni args", `{"cniVersion":"0.3.1","name":"mynet","type":"macvlan","master":"parent0"}`},
		{"mac capability", `{"cniVersion":"0.3.1","name":"mynet","type":"macvlan","master":"parent0","capabilities":{"mac":true}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, r, pod := newTestPod(t)
			res, err := r.Add(linktest.Context(t), pod, Attachment{Config: []byte(tc.config), Interface: podIface, MAC: mac})
			if err != nil {
				t.Fatal(err)
			}
			if res.MAC.String() != mac {
				t.Errorf("pod link MAC %s, want requested %s", res.MAC, mac)
			}
		})
	}
}

func TestAddRejectsBadInput(t *testing.T) {
	topo, r, pod := newTestPod(t)
	macvlan := fmt.Sprintf(`{"cniVersion":"0.3.1","name":"mynet","type":"macvlan","master":%q,"ipam":{"type":"static","addresses":[{"address":"192.0.2.10/24"}]}}`, topo.Parent)

	for _, tc := range []struct {
		name  string
		att   Attachment
		wants []string
	}{
		{
			name:  "invalid MAC",
			att:   Attachment{Config: []byte(macvlan), Interface: podIface, MAC: "02:00:00:00:00:zz"},
			wants: []string{`"02:00:00:00:00:zz"`, "macAddress"},
		},
		{
			name:  "long interface name",
			att:   Attachment{Config: []byte(macvlan), Interface: "pod11c844f95e2xyz"},
			wants: []string{`"pod11c844f95e2xyz"`, "17 bytes", "limit of 15"},
		},
		{
			name: "missing master",
			att: Attachment{NADNamespace: "default", NADName: "mynet", Interface: podIface,
				Config: []byte(`{"cniVersion":"0.3.1","name":"mynet","type":"macvlan","master":"eth9","ipam":{"type":"static","addresses":[{"address":"192.0.2.10/24"}]}}`)},
			wants: []string{`master "eth9"`, "does not exist", topo.Node.Name, "plugin macvlan ADD failed"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nodeBefore := brief(t, topo.Node)
			_, err := r.Add(linktest.Context(t), pod, tc.att)
			if err == nil {
				t.Fatal("ADD succeeded, want an error")
			}
			t.Logf("error: %v", err)
			for _, w := range tc.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %s", w)
				}
			}
			if tc.name == "missing master" {
				var pe *PluginError
				if !errors.As(err, &pe) || pe.CNI == nil {
					t.Errorf("error %v carries no plugin error", err)
				}
			}
			if after := brief(t, topo.Pod); after != "lo" {
				t.Errorf("pod namespace holds %q after the failed ADD, want only lo", after)
			}
			if after := brief(t, topo.Node); after != nodeBefore {
				t.Errorf("node namespace changed by the failed ADD: %q -> %q", nodeBefore, after)
			}
		})
	}
}

func TestAddRejectsTakenInterfaceName(t *testing.T) {
	topo, r, pod := newTestPod(t)
	h := linktest.Handle(t, topo.Pod)
	if _, err := link.AddBridge(h, podIface); err != nil {
		t.Fatal(err)
	}
	_, err := r.Add(linktest.Context(t), pod, Attachment{Interface: podIface,
		Config: fmt.Appendf(nil, `{"cniVersion":"0.3.1","name":"mynet","type":"macvlan","master":%q}`, topo.Parent)})
	if err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("ADD with a taken interface name returned %v, want an \"already exists\" error", err)
	}
}

// brief lists the namespace's link names, space-separated.
func brief(t *testing.T, ns *netns.Namespace) string {
	t.Helper()
	table, err := link.Snapshot(linktest.Handle(t, ns))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range table.Links {
		names = append(names, l.Name)
	}
	return strings.Join(names, " ")
}

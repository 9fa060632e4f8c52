package binding

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/vmnet-e2e/vmnet-e2e/framework/cni"
	"github.com/vmnet-e2e/vmnet-e2e/framework/kvnames"
	"github.com/vmnet-e2e/vmnet-e2e/framework/link/linktest"
)

func TestMain(m *testing.M) { linktest.Main(m) }

// guestAddr is the NAD's static IPAM address, the address the guest should
// end up with.
var guestAddr = netip.MustParsePrefix("192.0.2.10/24")

// macvlanNAD is a NAD config like a user's: macvlan in bridge mode on the
// node's parent link, static IPAM.
func macvlanNAD(name, master string) []byte {
	return fmt.Appendf(nil, `{"cniVersion":"0.3.1","name":%q,"type":"macvlan","master":%q,"mode":"bridge",
		"ipam":{"type":"static","addresses":[{"address":%q}]}}`, name, master, guestAddr)
}

// linuxBridgeNAD attaches the pod to the existing node bridge with the bridge
// CNI plugin, static IPAM.
func linuxBridgeNAD(name, bridge string) []byte {
	return fmt.Appendf(nil, `{"cniVersion":"1.0.0","name":%q,"type":"bridge","bridge":%q,
		"ipam":{"type":"static","addresses":[{"address":%q}]}}`, name, bridge, guestAddr)
}

// pod is what one test builds: the topology, the CNI runner and the
// attachment that was added.
type pod struct {
	topo   *linktest.Topology
	runner *cni.Runner
	pod    cni.Pod
	att    cni.Attachment
	add    *cni.Result
}

// addPod builds the topology and runs CNI ADD for network networkName with
// the NAD config made by nad(name, parent).
func addPod(t *testing.T, networkName string, nad func(name, parent string) []byte) *pod {
	t.Helper()
	linktest.RequireRoot(t)
	p := newPod(t, linktest.NewTopology(t), networkName, nad)

	start := time.Now()
	var err error
	p.add, err = p.runner.Add(linktest.Context(t), p.pod, p.att)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("CNI ADD took %v", time.Since(start))
	return p
}

// newPod prepares the runner, the pod and the attachment without running ADD.
func newPod(t *testing.T, topo *linktest.Topology, networkName string, nad func(name, parent string) []byte) *pod {
	t.Helper()
	runner, err := cni.NewRunner(topo.Node, topo.Ledger.Dir())
	if err != nil {
		t.Fatal(err)
	}
	return &pod{
		topo:   topo,
		runner: runner,
		pod: cni.Pod{
			Namespace: "default", Name: "virt-launcher-testvm-abcde", UID: "0d9c6f1e-0000-4000-8000-000000000001",
			ContainerID: "c0ffee" + linktest.Suffix(), NetNS: topo.Pod,
		},
		att: cni.Attachment{
			NADNamespace: "default", NADName: networkName + "-nad",
			Config:    nad(networkName, topo.Parent),
			Interface: kvnames.PodInterface(networkName),
		},
	}
}

// Package linktest builds small namespace topologies for tests of the data
// plane packages. A topology has a node namespace with a parent bridge, an
// external namespace joined to it by a veth, a pod namespace, and optionally
// a namespace that replaces the guest behind the pod's bridge. Everything is tracked in a
// cleanup ledger and removed when the test ends or the run is interrupted.
package linktest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/vmnet-e2e/vmnet-e2e/framework/cleanup"
	"github.com/vmnet-e2e/vmnet-e2e/framework/link"
	"github.com/vmnet-e2e/vmnet-e2e/framework/netns"
)

var signalCtx atomic.Pointer[context.Context]

// Main runs the package's tests with a context that SIGINT or SIGTERM
// cancels, so that a test waiting on it returns and its t.Cleanup functions
// remove what it built. Call it from TestMain.
func Main(m *testing.M) {
	ctx, stop := cleanup.NotifyContext(context.Background())
	signalCtx.Store(&ctx)
	code := m.Run()
	stop()
	os.Exit(code)
}

// Context returns the signal-aware context of Main (a background context when
// Main is not used), cancelled when the test ends.
func Context(t testing.TB) context.Context {
	parent := context.Background()
	if p := signalCtx.Load(); p != nil {
		parent = *p
	}
	ctx, cancel := context.WithCancel(parent)
	t.Cleanup(cancel)
	return ctx
}

// RequireRoot skips the test unless it runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("creating network namespaces and links needs root")
	}
}

// Suffix returns a short unique suffix: the process ID and 3 random bytes.
func Suffix() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%d-%s", os.Getpid(), hex.EncodeToString(b))
}

// Ledger starts a cleanup ledger for the test and closes it when the test
// ends.
func Ledger(t testing.TB) *cleanup.Ledger {
	t.Helper()
	name := strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())
	if len(name) > 40 {
		name = name[:40]
	}
	l, err := cleanup.NewLedger("test-"+name+"-"+Suffix(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(context.Background()); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return l
}

// Namespace creates a namespace named vmnet-<role>-<suffix> and tracks it.
func Namespace(t testing.TB, l *cleanup.Ledger, role string) *netns.Namespace {
	t.Helper()
	ns, err := netns.Create("vmnet-" + role + "-" + Suffix())
	if err != nil {
		t.Fatal(err)
	}
	l.Track(cleanup.Resource{Kind: cleanup.KindNetns, Name: ns.Name}, func(context.Context) error {
		return ns.Delete()
	})
	return ns
}

// Handle opens a link handle in ns, closed when the test ends.
func Handle(t testing.TB, ns *netns.Namespace) *link.Handle {
	t.Helper()
	h, err := link.NewHandle(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

// Topology is the wiring outside the pod. The node namespace contains Parent,
// a bridge in place of the kind node's macvlan parent. The external namespace
// contains ExternalLink with ExternalAddr, a veth whose peer is a port of
// Parent.
type Topology struct {
	Ledger       *cleanup.Ledger
	Node         *netns.Namespace
	External     *netns.Namespace
	Pod          *netns.Namespace
	Parent       string
	ExternalLink string
	ExternalAddr netip.Prefix
}

// DefaultExternalAddr is the external peer's address, from TEST-NET-1.
var DefaultExternalAddr = netip.MustParsePrefix("192.0.2.1/24")

// NewTopology builds node, external and pod namespaces and the parent bridge.
func NewTopology(t testing.TB) *Topology {
	t.Helper()
	l := Ledger(t)
	topo := &Topology{
		Ledger:       l,
		Node:         Namespace(t, l, "node"),
		External:     Namespace(t, l, "ext"),
		Pod:          Namespace(t, l, "pod"),
		Parent:       "parent0",
		ExternalLink: "ext0",
		ExternalAddr: DefaultExternalAddr,
	}

	node := Handle(t, topo.Node)
	ext := Handle(t, topo.External)
	must(t, func() error { _, err := link.AddBridge(node, topo.Parent); return err })
	must(t, func() error { return link.SetUp(node, topo.Parent) })
	must(t, func() error {
		_, err := link.AddVeth(ext, topo.ExternalLink, "ext0-br", topo.Node)
		return err
	})
	must(t, func() error { return link.SetMaster(node, "ext0-br", topo.Parent) })
	must(t, func() error { return link.SetUp(node, "ext0-br") })
	must(t, func() error { return link.AddAddr(ext, topo.ExternalLink, topo.ExternalAddr) })
	must(t, func() error { return link.SetUp(ext, topo.ExternalLink) })
	return topo
}

// AddGuestStandIn creates and returns a namespace in place of the guest. A
// veth's end "eth0" in the new namespace carries mac and addr. Its other end,
// port, is enslaved to bridge in the pod namespace, with learning left on as
// on a tap port.
func (topo *Topology) AddGuestStandIn(t testing.TB, bridge, port string, mac net.HardwareAddr, addr netip.Prefix) *netns.Namespace {
	t.Helper()
	guest := Namespace(t, topo.Ledger, "guest")
	pod := Handle(t, topo.Pod)
	g := Handle(t, guest)
	must(t, func() error {
		_, err := link.AddVeth(pod, port, "eth0", guest, link.WithVethPeerMAC(mac))
		return err
	})
	must(t, func() error { return link.SetMaster(pod, port, bridge) })
	must(t, func() error { return link.SetUp(pod, port) })
	if addr.IsValid() {
		must(t, func() error { return link.AddAddr(g, "eth0", addr) })
	}
	must(t, func() error { return link.SetUp(g, "eth0") })
	return guest
}

func must(t testing.TB, fn func() error) {
	t.Helper()
	if err := fn(); err != nil {
		t.Fatal(err)
	}
}

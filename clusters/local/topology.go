package local

import (
	"context"
	"fmt"
	"net/netip"
	"sort"

	"github.com/vmnet-e2e/vmnet-e2e/framework/cleanup"
	"github.com/vmnet-e2e/vmnet-e2e/framework/link"
	"github.com/vmnet-e2e/vmnet-e2e/framework/netns"
)

// Link names inside the run's own namespaces. They need not be unique across
// runs, because every run has its own namespaces.
const (
	// nodePeerLink is the node end of the external peer's veth, a port of
	// the parent bridge.
	nodePeerLink = "veth-ext"
	// externalLink is the external peer's interface.
	externalLink = "eth0"
)

// topology is the part of one scenario run around its pods. The node
// namespace replaces the kind node and holds a bridge per parent link the
// NADs name (the macvlan or macvtap master, the linux-bridge plugin's
// bridge). The external namespace is a host outside every pod, joined to one
// parent bridge by a veth and addressed in the probed subnet.
type topology struct {
	Node     *netns.Namespace
	External *netns.Namespace
	// Parents are the parent bridges in Node, sorted by name.
	Parents []string
	// ProbeParent is the parent the external peer is joined to.
	ProbeParent string
	// Peer is the external peer's address.
	Peer netip.Prefix
}

// buildTopology creates the node and external namespaces, the parent bridges
// and the external peer. Each namespace is tracked in the ledger as soon as it
// exists, so an error or an interrupt at any later step still removes it.
func buildTopology(ctx context.Context, ledger *cleanup.Ledger, prefix string, parents []string, probeParent string, peer netip.Prefix) (*topology, error) {
	t := &topology{Parents: append([]string(nil), parents...), ProbeParent: probeParent, Peer: peer}
	sort.Strings(t.Parents)

	// the node and the external host
	var err error
	if t.Node, err = createNamespace(ledger, prefix+"-node"); err != nil {
		return nil, err
	}
	if t.External, err = createNamespace(ledger, prefix+"-ext"); err != nil {
		return nil, err
	}

	node, err := link.NewHandle(t.Node)
	if err != nil {
		return nil, err
	}
	defer node.Close()

	// the parent bridges, as the kind provider makes them on each node:
	// plain bridges with no address, up
	for _, parent := range t.Parents {
		if _, err := link.AddBridge(node, parent); err != nil {
			return nil, fmt.Errorf("create parent bridge %s: %w", parent, err)
		}
		if err := link.SetUp(node, parent); err != nil {
			return nil, err
		}
	}

	// the external peer, outside every pod, on the probed parent
	if _, err := link.AddVeth(node, nodePeerLink, externalLink, t.External); err != nil {
		return nil, fmt.Errorf("join the external namespace to %s: %w", probeParent, err)
	}
	if err := link.SetMaster(node, nodePeerLink, probeParent); err != nil {
		return nil, err
	}
	if err := link.SetUp(node, nodePeerLink); err != nil {
		return nil, err
	}

	external, err := link.NewHandle(t.External)
	if err != nil {
		return nil, err
	}
	defer external.Close()
	if err := link.AddAddr(external, externalLink, peer); err != nil {
		return nil, fmt.Errorf("address the external peer: %w", err)
	}
	if err := link.SetUp(external, externalLink); err != nil {
		return nil, err
	}
	return t, nil
}

// createNamespace creates a named namespace and tracks it in the ledger.
func createNamespace(ledger *cleanup.Ledger, name string) (*netns.Namespace, error) {
	ns, err := netns.Create(name)
	if err != nil {
		return nil, err
	}
	ledger.Track(cleanup.Resource{Kind: cleanup.KindNetns, Name: name}, func(context.Context) error {
		return ns.Delete()
	})
	return ns, nil
}

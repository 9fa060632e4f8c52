package kind

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"

	"github.com/vmnet-e2e/vmnet-e2e/framework/cleanup"
	"github.com/vmnet-e2e/vmnet-e2e/framework/netns"
)

// The parent wiring joins the kind nodes' parent bridges into one L2
// segment per parent name, without a shell script in the nodes and without
// touching the CI host's root namespace:
//
//	hub netns (on the CI host, made by the run)       node netns (/proc/<pid>/ns/net)
//	  bridge hub<j> ── p<j>n<i> ═══ veth ═══ vmnet-up<j> ── bridge <parent j>
//	          └────── e<id> ═══ veth ═══ peer0 (external endpoint netns, peer address)
//
// From the CI host, as root, the provider enters each node container's
// network namespace through /proc/<pid>/ns/net (the pid from `docker
// inspect`), creates the parent bridge there with netlink, and connects it
// by a veth pair to a hub bridge in a namespace the run creates. Deleting the
// hub namespace destroys every veth pair at once, so the ledger needs to
// track only named namespaces on the host.
//
// Multus's own e2e (e2e/setup_cluster.sh) instead runs koko to put one veth
// pair, eth1, directly between two workers: it needs no hub, but joins
// exactly two nodes and leaves no place for an endpoint outside them. kind
// itself cannot give nodes a second network at creation. Connecting them to
// another Docker network afterwards (`docker network connect`) works, but
// that network is a Docker-managed bridge in the host's root namespace. This
// harness must not touch that namespace or Docker's iptables rules there.
//
// NOTE: if br_netfilter is loaded on the host, bridged IPv4 frames in a node
// pass that node's iptables FORWARD chain. kindnet and kube-proxy leave it
// accepting today, but a CI image with another policy would drop probe
// traffic between bridge ports.

// hubNamespacePrefix starts the names of host namespaces a run creates.
const hubNamespacePrefix = "vmnet-kind-"

// Wiring is the planned layout of the parent segments. It is plain data: the
// plan prints it, Prepare builds it, and Attach passes it to parallel
// processes.
type Wiring struct {
	// Hub is the named network namespace on the CI host holding the hub
	// bridges.
	Hub      string    `json:"hub"`
	Segments []Segment `json:"segments"`
	Nodes    []string  `json:"nodes"`
}

// Segment is one parent name: a hub bridge and one veth pair per node.
type Segment struct {
	Parent    string     `json:"parent"`
	HubBridge string     `json:"hubBridge"`
	Links     []NodeLink `json:"links"`
}

// NodeLink is the veth pair between a hub bridge and one node's parent.
type NodeLink struct {
	Node     string `json:"node"`
	HubVeth  string `json:"hubVeth"`
	NodeVeth string `json:"nodeVeth"`
}

// PlanWiring names the hub, the hub bridges and the veth pairs for parents
// on nodes.
func PlanWiring(runID string, parents []Parent, nodes []string) (Wiring, error) {
	w := Wiring{Hub: hubNamespacePrefix + runID + "-hub", Nodes: nodes}
	if err := netns.ValidateName(w.Hub); err != nil {
		return Wiring{}, fmt.Errorf("kind: run ID %q: %w", runID, err)
	}
	for j, p := range parents {
		seg := Segment{Parent: p.Name, HubBridge: fmt.Sprintf("hub%d", j)}
		for i, node := range nodes {
			seg.Links = append(seg.Links, NodeLink{Node: node, HubVeth: fmt.Sprintf("p%dn%d", j, i), NodeVeth: fmt.Sprintf("vmnet-up%d", j)})
		}
		w.Segments = append(w.Segments, seg)
	}
	return w, nil
}

// segment returns the segment of a parent.
func (w Wiring) segment(parent string) (Segment, bool) {
	for _, s := range w.Segments {
		if s.Parent == parent {
			return s, true
		}
	}
	return Segment{}, false
}

// NodeNamespaceResolver returns the path of a kind node's network namespace.
type NodeNamespaceResolver func(ctx context.Context, node string) (string, error)

// DockerNodeNamespace resolves a node container's network namespace as
// /proc/<pid>/ns/net, with the container's pid from `docker inspect`.
func DockerNodeNamespace(ctx context.Context, node string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "docker", "inspect", "--format", "{{.State.Pid}}", node)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("kind: docker inspect %s: %w: %s", node, err, strings.TrimSpace(stderr.String()))
	}
	pid, err := strconv.Atoi(strings.TrimSpace(stdout.String()))
	if err != nil || pid <= 0 {
		return "", fmt.Errorf("kind: docker inspect %s: node container has no pid (%q): is it running?", node, strings.TrimSpace(stdout.String()))
	}
	path := fmt.Sprintf("/proc/%d/ns/net", pid)
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("kind: node %s: %w (entering a node's namespace needs root on the CI host)", node, err)
	}
	return path, nil
}

// builtWiring records the hub namespace and the bridges Build created, for
// Teardown.
type builtWiring struct {
	hub *cleanup.Handle
	// bridges maps a node to the parent bridges the run created in it
	// (bridges that existed before are adopted and left in place).
	bridges map[string][]string
	// nodePaths maps a node to its namespace path.
	nodePaths map[string]string
}

// Build creates the hub namespace, the parent bridges in every node and the
// veth pairs between them, and records the hub namespace in ledger.
func (w Wiring) Build(ctx context.Context, ledger *cleanup.Ledger, resolve NodeNamespaceResolver, log *slog.Logger) (*builtWiring, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	built := &builtWiring{bridges: map[string][]string{}, nodePaths: map[string]string{}}

	// create the hub namespace and its bridges
	hub, err := netns.Create(w.Hub)
	if err != nil {
		return nil, fmt.Errorf("kind: create hub namespace: %w", err)
	}
	built.hub = ledger.Track(cleanup.Resource{Kind: cleanup.KindNetns, Name: hub.Name}, func(context.Context) error { return hub.Delete() })
	hubHandle, err := hub.Netlink()
	if err != nil {
		return built, err
	}
	defer hubHandle.Close()
	hubBridges := map[string]*netlink.Bridge{}
	for _, seg := range w.Segments {
		br, err := ensureBridge(hubHandle, seg.HubBridge)
		if err != nil {
			return built, fmt.Errorf("kind: hub namespace %s: %w", w.Hub, err)
		}
		hubBridges[seg.Parent] = br.bridge
		log.Info("hub bridge ready", "netns", w.Hub, "bridge", seg.HubBridge, "parent", seg.Parent)
	}

	// wire every node
	for _, node := range w.Nodes {
		path, err := resolve(ctx, node)
		if err != nil {
			return built, err
		}
		built.nodePaths[node] = path
		for _, seg := range w.Segments {
			link, ok := seg.link(node)
			if !ok {
				continue
			}
			created, err := wireNode(hubHandle, hubBridges[seg.Parent], node, path, seg.Parent, link)
			if err != nil {
				return built, err
			}
			if created {
				built.bridges[node] = append(built.bridges[node], seg.Parent)
			}
			log.Info("parent wired", "node", node, "parent", seg.Parent, "created", created, "uplink", link.NodeVeth, "hub port", link.HubVeth)
		}
	}
	return built, nil
}

func (s Segment) link(node string) (NodeLink, bool) {
	for _, l := range s.Links {
		if l.Node == node {
			return l, true
		}
	}
	return NodeLink{}, false
}

type ensuredBridge struct {
	bridge  *netlink.Bridge
	created bool
}

// ensureBridge returns the bridge name in h's namespace, creating it when
// missing (`ip link add NAME type bridge`), and sets it up. A link of that
// name that is not a bridge is an error.
func ensureBridge(h *netlink.Handle, name string) (ensuredBridge, error) {
	link, err := h.LinkByName(name)
	created := false
	switch {
	case err == nil:
		br, ok := link.(*netlink.Bridge)
		if !ok {
			return ensuredBridge{}, fmt.Errorf("link %s exists and is a %s, not a bridge: rename the NAD's parent or remove the link", name, link.Type())
		}
		link = br
	case errors.As(err, new(netlink.LinkNotFoundError)):
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}
		if err := h.LinkAdd(br); err != nil {
			return ensuredBridge{}, fmt.Errorf("create bridge %s: %w", name, err)
		}
		created = true
		if link, err = h.LinkByName(name); err != nil {
			return ensuredBridge{}, fmt.Errorf("find bridge %s after creating it: %w", name, err)
		}
	default:
		return ensuredBridge{}, fmt.Errorf("find link %s: %w", name, err)
	}
	if err := h.LinkSetUp(link); err != nil {
		return ensuredBridge{}, fmt.Errorf("set bridge %s up: %w", name, err)
	}
	return ensuredBridge{bridge: link.(*netlink.Bridge), created: created}, nil
}

// wireNode ensures the parent bridge in the node and connects it to the hub
// bridge: `ip link add HUBVETH master HUBBRIDGE type veth peer NODEVETH
// netns NODE`, then `ip link set NODEVETH master PARENT up` in the node.
func wireNode(hubHandle *netlink.Handle, hubBridge *netlink.Bridge, node, nodePath, parent string, link NodeLink) (bool, error) {
	nodeNS := &netns.Namespace{Name: node, Path: nodePath}
	nodeHandle, err := nodeNS.Netlink()
	if err != nil {
		return false, fmt.Errorf("kind: node %s: %w", node, err)
	}
	defer nodeHandle.Close()

	bridge, err := ensureBridge(nodeHandle, parent)
	if err != nil {
		return false, fmt.Errorf("kind: node %s: parent %w", node, err)
	}
	if _, err := nodeHandle.LinkByName(link.NodeVeth); err == nil {
		return bridge.created, fmt.Errorf("kind: node %s already has a link %s: another run wires this cluster, or a hub namespace of an ended run still exists (`ip netns list`)", node, link.NodeVeth)
	}

	fd, err := vnetns.GetFromPath(nodePath)
	if err != nil {
		return bridge.created, fmt.Errorf("kind: open namespace of node %s: %w", node, err)
	}
	defer fd.Close()
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: link.HubVeth, MasterIndex: hubBridge.Index},
		PeerName:      link.NodeVeth,
		PeerNamespace: netlink.NsFd(int(fd)),
	}
	if err := hubHandle.LinkAdd(veth); err != nil {
		return bridge.created, fmt.Errorf("kind: create veth %s (hub) - %s (node %s): %w", link.HubVeth, link.NodeVeth, node, err)
	}
	if err := setUpByName(hubHandle, link.HubVeth); err != nil {
		return bridge.created, fmt.Errorf("kind: hub: %w", err)
	}

	uplink, err := nodeHandle.LinkByName(link.NodeVeth)
	if err != nil {
		return bridge.created, fmt.Errorf("kind: node %s: find %s: %w", node, link.NodeVeth, err)
	}
	if err := nodeHandle.LinkSetMaster(uplink, bridge.bridge); err != nil {
		return bridge.created, fmt.Errorf("kind: node %s: enslave %s to %s: %w", node, link.NodeVeth, parent, err)
	}
	if err := nodeHandle.LinkSetUp(uplink); err != nil {
		return bridge.created, fmt.Errorf("kind: node %s: set %s up: %w", node, link.NodeVeth, err)
	}
	return bridge.created, nil
}

func setUpByName(h *netlink.Handle, name string) error {
	link, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find %s: %w", name, err)
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	return nil
}

// Teardown deletes the hub namespace, which destroys every veth pair, and,
// when removeBridges is set, the parent bridges the run created in the
// nodes. Bridges vanish with their node when the cluster is deleted, so
// removeBridges matters only for a cluster that is kept.
func (b *builtWiring) Teardown(ctx context.Context, removeBridges bool) error {
	var errs []error
	if b.hub != nil {
		if err := b.hub.Release(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if removeBridges {
		for node, bridges := range b.bridges {
			h, err := (&netns.Namespace{Name: node, Path: b.nodePaths[node]}).Netlink()
			if err != nil {
				errs = append(errs, err)
				continue
			}
			for _, name := range bridges {
				if link, err := h.LinkByName(name); err == nil {
					if err := h.LinkDel(link); err != nil {
						errs = append(errs, fmt.Errorf("kind: node %s: delete bridge %s: %w", node, name, err))
					}
				}
			}
			h.Close()
		}
	}
	return errors.Join(errs...)
}

// Endpoint is the external probe endpoint of one scenario: a namespace on the
// CI host joined to a parent's hub bridge, carrying the peer address.
type Endpoint struct {
	Namespace *netns.Namespace
	// Interface is the endpoint's link, carrying the peer address.
	Interface string
	// HubPort is the veth end on the hub bridge.
	HubPort string
	handle  *cleanup.Handle
}

// endpointInterface is the endpoint's link name inside its namespace.
const endpointInterface = "peer0"

// ConnectEndpoint creates the external endpoint for a scenario probing
// through parent: `ip netns add NAME`, a veth pair with one end on the hub
// bridge and the other, peer0, in the new namespace with addr, all up. The
// namespace is recorded in ledger, and Close removes it.
func (w Wiring) ConnectEndpoint(ctx context.Context, ledger *cleanup.Ledger, runID, parent string, addr netip.Prefix) (*Endpoint, error) {
	seg, ok := w.segment(parent)
	if !ok {
		return nil, fmt.Errorf("kind: no segment for parent %q: Prepare wires only the parents of the scenarios passed with WithScenarios", parent)
	}
	id, err := randomHex(3)
	if err != nil {
		return nil, err
	}

	ns, err := netns.Create(hubNamespacePrefix + runID + "-ep" + id)
	if err != nil {
		return nil, fmt.Errorf("kind: create endpoint namespace: %w", err)
	}
	ep := &Endpoint{Namespace: ns, Interface: endpointInterface, HubPort: "e" + id}
	ep.handle = ledger.Track(cleanup.Resource{Kind: cleanup.KindNetns, Name: ns.Name}, func(context.Context) error { return ns.Delete() })

	if err := ep.wire(w.Hub, seg.HubBridge, addr); err != nil {
		_ = ep.Close(ctx)
		return nil, err
	}
	return ep, nil
}

func (ep *Endpoint) wire(hubName, hubBridge string, addr netip.Prefix) error {
	hub, err := netns.Open(hubName)
	if err != nil {
		return fmt.Errorf("kind: hub namespace: %w", err)
	}
	hubHandle, err := hub.Netlink()
	if err != nil {
		return err
	}
	defer hubHandle.Close()
	bridge, err := hubHandle.LinkByName(hubBridge)
	if err != nil {
		return fmt.Errorf("kind: hub namespace %s: find bridge %s: %w", hubName, hubBridge, err)
	}

	fd, err := ep.Namespace.Handle()
	if err != nil {
		return err
	}
	defer fd.Close()
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: ep.HubPort, MasterIndex: bridge.Attrs().Index},
		PeerName:      ep.Interface,
		PeerNamespace: netlink.NsFd(int(fd)),
	}
	if err := hubHandle.LinkAdd(veth); err != nil {
		return fmt.Errorf("kind: create veth %s (hub) - %s (endpoint): %w", ep.HubPort, ep.Interface, err)
	}
	if err := setUpByName(hubHandle, ep.HubPort); err != nil {
		return fmt.Errorf("kind: hub: %w", err)
	}

	epHandle, err := ep.Namespace.Netlink()
	if err != nil {
		return err
	}
	defer epHandle.Close()
	link, err := epHandle.LinkByName(ep.Interface)
	if err != nil {
		return fmt.Errorf("kind: endpoint %s: find %s: %w", ep.Namespace.Name, ep.Interface, err)
	}
	nlAddr, err := netlink.ParseAddr(addr.String())
	if err != nil {
		return fmt.Errorf("kind: endpoint address %s: %w", addr, err)
	}
	if err := epHandle.AddrAdd(link, nlAddr); err != nil {
		return fmt.Errorf("kind: endpoint %s: add %s to %s: %w", ep.Namespace.Name, addr, ep.Interface, err)
	}
	if err := epHandle.LinkSetUp(link); err != nil {
		return fmt.Errorf("kind: endpoint %s: set %s up: %w", ep.Namespace.Name, ep.Interface, err)
	}
	return nil
}

// Close deletes the endpoint's namespace and with it the veth pair.
func (ep *Endpoint) Close(ctx context.Context) error {
	if ep == nil || ep.handle == nil {
		return nil
	}
	return ep.handle.Release(ctx)
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("kind: random name: %w", err)
	}
	return hex.EncodeToString(b), nil
}

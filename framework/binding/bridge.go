// Package binding redoes with netlink the steps KubeVirt takes inside the
// virt-launcher pod to connect a VMI interface to its pod link. It covers the
// bridge binding (in-pod bridge, renamed CNI link, tap, placeholder, DHCP
// data) and the macvtap network binding plugin (macvtap-cni's ADD, then a tap
// fd for qemu).
package binding

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/vmnet-e2e/vmnet-e2e/framework/dhcp"
	"github.com/vmnet-e2e/vmnet-e2e/framework/kvnames"
	"github.com/vmnet-e2e/vmnet-e2e/framework/link"
	"github.com/vmnet-e2e/vmnet-e2e/framework/netns"
)

// NonRootUID is the uid and gid KubeVirt gives the tap of a non-root VMI, the
// default since the VMI mutating webhook sets status.runtimeUser to 107.
//
// Source: kubevirt/kubevirt v1.9.0, pkg/util/util.go (NonRootUID).
const NonRootUID = 107

// bridgeFakeIPBase is concatenated with the interface index, so index 1 gives
// 169.254.75.11 and index 12 gives 169.254.75.112.
//
// Source: kubevirt/kubevirt v1.9.0, pkg/network/setup/netpod/netpod.go
// (bridgeBindingSpec) and pkg/network/link/address.go (GetFakeBridgeIP).
const bridgeFakeIPBase = "169.254.75.1"

// BridgeSpec is the part of a VMI that decides the bridge binding of one
// interface.
type BridgeSpec struct {
	// NetworkName is spec.networks[].name; it names every link.
	NetworkName string
	// InterfaceIndex is the 0-based position of the interface in
	// spec.domain.devices.interfaces (pod network included); the DHCP server
	// identifier is 169.254.75.1<InterfaceIndex> (pkg/network/setup/launcher/
	// configurator.go passes that list to GetFakeBridgeIP).
	InterfaceIndex int
	// NetworkOrderIndex is the 0-based position of the interface in the list
	// virt-handler builds from spec.networks order (pod network included,
	// pkg/network/vmispec/interface.go FilterInterfacesByNetworks); the
	// bridge address is 169.254.75.1<NetworkOrderIndex>/32. It equals
	// InterfaceIndex when interfaces and networks are listed in the same
	// order; nil means that.
	NetworkOrderIndex *int
	// MACAddress is spec.domain.devices.interfaces[].macAddress; empty when
	// unset.
	MACAddress string
	// RootVMI gives the tap to uid/gid 0 instead of NonRootUID, as for a VMI
	// whose status.runtimeUser is 0.
	RootVMI bool
	// Hostname is the launcher pod's hostname (dhcp.LauncherHostname).
	Hostname string
	// ResolvConf is the launcher pod's DNS configuration; the zero value
	// means an empty resolv.conf, so KubeVirt's defaults apply.
	ResolvConf *dhcp.ResolvConf
	// Subdomain is spec.subdomain.
	Subdomain string
	// DHCPOptions is spec.domain.devices.interfaces[].dhcpOptions.
	DHCPOptions *dhcp.CustomOptions
}

// Step is one timed step of a binding, for reports.
type Step struct {
	Name     string
	Duration time.Duration
}

// BridgeResult is the pod side after the bridge binding.
type BridgeResult struct {
	PodInterface string
	Bridge       string
	BridgedNIC   string
	Tap          string
	// Placeholder is the link that takes the pod interface name and keeps the
	// original MAC and addresses, DOWN; PlaceholderKind is "dummy" or, on a
	// kernel without dummy, "bridge".
	Placeholder     string
	PlaceholderKind string

	// OriginalMAC, MTU and Addresses are the pod link's as the CNI plugin
	// left them.
	OriginalMAC net.HardwareAddr
	MTU         int
	Addresses   []netip.Prefix
	// BridgeAddress is 169.254.75.1<i>/32, invalid when the pod link had no
	// global IPv4 address.
	BridgeAddress netip.Prefix
	// NICMAC is the MAC copied from the in-pod bridge onto <hash>-nic.
	NICMAC net.HardwareAddr
	// GuestMAC is the MAC the domain interface gets: spec macAddress, else
	// the placeholder's (the original pod link's) MAC.
	GuestMAC net.HardwareAddr
	// ArpIgnore reports that net.ipv4.conf.all.arp_ignore was set to 1.
	ArpIgnore bool
	// DHCP is the offer virt-launcher's DHCP server makes; nil when the pod
	// link had no global IPv4 address (no IPAM: plain layer 2).
	DHCP *dhcp.Config

	Steps    []Step
	Duration time.Duration
}

// podLinkStatus is the pod link's state as KubeVirt's nmstate Read reports
// it, before the binding changes it.
type podLinkStatus struct {
	index  int
	mac    net.HardwareAddr
	mtu    int
	v4, v6 []netip.Prefix
	routes []netlink.Route
}

// ApplyBridge applies KubeVirt's bridge binding to the pod link pod<hash> in
// pod, step for step in KubeVirt's order:
//
//  1. discover the pod link (MAC, MTU, addresses, IPv4 routes) and derive the
//     DHCP offer;
//  2. create bridge k6t-<hash>, give it 169.254.75.1<i>/32 when the pod link
//     had a global IPv4 address, set it UP;
//  3. the pod link, found by ifindex: DOWN, renamed <hash>-nic, given the
//     bridge's current MAC, enslaved, every address deleted, UP, learning off;
//  4. tap tap<hash> (persistent, MTU of the pod link, owner 107), enslaved,
//     every address deleted, UP;
//  5. placeholder pod<hash> with the original MAC, MTU and addresses, left
//     DOWN;
//  6. net.ipv4.conf.all.arp_ignore=1 when a global IPv4 address was present.
//
// Source: kubevirt/kubevirt v1.9.0, pkg/network/setup/netpod/netpod.go
// (bridgeBindingSpec, composeDesiredSpec), pkg/network/driver/nmstate/spec.go
// (Apply, setupInterface, setupInterfaceIP, setupLinuxStack),
// pkg/network/setup/netpod/discover.go and discoverbridge.go
// (storeBridgeBindingDHCPInterfaceData).
//
// NOTE: ApplyBridge does not roll back, like KubeVirt, which marks a failed
// setup critical and lets the pod fail. Deleting the pod namespace removes
// what it made.
func ApplyBridge(pod *netns.Namespace, spec BridgeSpec, log *slog.Logger) (*BridgeResult, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	start := time.Now()
	if spec.NetworkName == "" {
		return nil, errors.New("binding: empty network name: set spec.networks[].name")
	}
	if spec.InterfaceIndex < 0 {
		return nil, fmt.Errorf("binding: negative interface index %d", spec.InterfaceIndex)
	}
	var specMAC net.HardwareAddr
	if spec.MACAddress != "" {
		mac, err := link.ParseMAC(spec.MACAddress)
		if err != nil {
			return nil, fmt.Errorf("binding: spec.domain.devices.interfaces[].macAddress: %w", err)
		}
		specMAC = mac
	}

	h, err := link.NewHandle(pod)
	if err != nil {
		return nil, err
	}
	defer h.Close()

	res := &BridgeResult{
		PodInterface: kvnames.PodInterface(spec.NetworkName),
		Bridge:       kvnames.Bridge(spec.NetworkName),
		BridgedNIC:   kvnames.BridgedNIC(spec.NetworkName),
		Tap:          kvnames.Tap(spec.NetworkName),
		Placeholder:  kvnames.PodInterface(spec.NetworkName),
	}
	step := func(name string, fn func() error) error {
		t := time.Now()
		err := fn()
		res.Steps = append(res.Steps, Step{Name: name, Duration: time.Since(t)})
		if err != nil {
			log.Error("bridge binding step failed", "step", name, "netns", pod.Name, "error", err)
			return fmt.Errorf("binding: bridge binding of network %q in netns %s: %s: %w", spec.NetworkName, pod.Name, name, err)
		}
		log.Debug("bridge binding step done", "step", name, "netns", pod.Name, "duration", time.Since(t))
		return nil
	}

	// 1. Discovery: nmstate Read, then storeBridgeBindingDHCPInterfaceData.
	var st podLinkStatus
	if err := step("discover pod link "+res.PodInterface, func() error {
		var err error
		st, err = readPodLink(h, res.PodInterface)
		return err
	}); err != nil {
		return nil, err
	}
	res.OriginalMAC, res.MTU = st.mac, st.mtu
	res.Addresses = append(append([]netip.Prefix(nil), st.v4...), st.v6...)
	globalV4 := firstGlobalUnicast(st.v4)

	if globalV4.IsValid() {
		if err := step("derive DHCP offer", func() error {
			var err error
			res.DHCP, err = dhcpConfig(spec, st, globalV4, specMAC, res.PodInterface)
			return err
		}); err != nil {
			return nil, err
		}
	}

	// 2. In-pod bridge: created with default attributes, no MAC.
	if err := step("create bridge "+res.Bridge, func() error {
		if _, err := link.AddBridge(h, res.Bridge); err != nil {
			return err
		}
		if _, err := link.FlushAddrs(h, res.Bridge, link.FamilyAll); err != nil {
			return err
		}
		if globalV4.IsValid() {
			index := spec.InterfaceIndex
			if spec.NetworkOrderIndex != nil {
				index = *spec.NetworkOrderIndex
			}
			addr, err := netip.ParseAddr(bridgeFakeIPBase + strconv.Itoa(index))
			if err != nil {
				return fmt.Errorf("bridge address for interface index %d: %w", index, err)
			}
			res.BridgeAddress = netip.PrefixFrom(addr, 32)
			if err := link.AddAddr(h, res.Bridge, res.BridgeAddress); err != nil {
				return err
			}
		}
		return link.SetUp(h, res.Bridge)
	}); err != nil {
		return nil, err
	}

	// 3. The CNI link, found by ifindex as nmstate does.
	if err := step("rebind pod link as "+res.BridgedNIC, func() error {
		var err error
		res.NICMAC, err = bridgeNIC(h, st.index, res.PodInterface, res.BridgedNIC, res.Bridge)
		return err
	}); err != nil {
		return nil, err
	}

	// 4. Tap, created as virt-chroot create-tap does, then set up by nmstate.
	owner := uint32(NonRootUID)
	if spec.RootVMI {
		owner = 0
	}
	if err := step("create tap "+res.Tap, func() error {
		if err := link.AddTap(h, res.Tap, link.TapOptions{MTU: st.mtu, Owner: owner, Group: owner}); err != nil {
			return err
		}
		if err := link.SetMaster(h, res.Tap, res.Bridge); err != nil {
			return err
		}
		if _, err := link.FlushAddrs(h, res.Tap, link.FamilyAll); err != nil {
			return err
		}
		return link.SetUp(h, res.Tap)
	}); err != nil {
		return nil, err
	}

	// 5. Placeholder named like the pod interface, never set UP.
	if err := step("create placeholder "+res.Placeholder, func() error {
		var err error
		res.PlaceholderKind, err = addPlaceholder(h, res.Placeholder, log)
		if err != nil {
			return err
		}
		if err := link.SetMAC(h, res.Placeholder, st.mac); err != nil {
			return err
		}
		if st.mtu > 0 {
			if err := link.SetMTU(h, res.Placeholder, st.mtu); err != nil {
				return err
			}
		}
		if _, err := link.FlushAddrs(h, res.Placeholder, link.FamilyAll); err != nil {
			return err
		}
		for _, a := range res.Addresses {
			if err := link.AddAddr(h, res.Placeholder, a); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}

	// 6. Linux stack: arp_ignore=1 for "all" when a global IPv4 was present.
	if globalV4.IsValid() {
		if err := step("set net.ipv4.conf.all.arp_ignore=1", func() error {
			return link.SetArpIgnore(h, "all", 1)
		}); err != nil {
			return nil, err
		}
		res.ArpIgnore = true
	}

	// The domain MAC: spec macAddress, else the MAC of the link named
	// pod<hash>, which is now the placeholder (pkg/network/domainspec/
	// generators.go discoverDomainIfaceSpec).
	res.GuestMAC = specMAC
	if res.GuestMAC == nil {
		ph, err := link.ByName(h, res.Placeholder)
		if err != nil {
			return nil, err
		}
		res.GuestMAC = ph.Attrs().HardwareAddr
	}

	// The DHCP MTU is read from <hash>-nic (pkg/network/dhcp/bridge.go).
	if res.DHCP != nil {
		nic, err := link.ByName(h, res.BridgedNIC)
		if err != nil {
			return nil, err
		}
		res.DHCP.MTU = uint16(nic.Attrs().MTU)
	}

	res.Duration = time.Since(start)
	log.Info("bridge binding applied", "netns", pod.Name, "network", spec.NetworkName,
		"guest-mac", res.GuestMAC.String(), "placeholder", res.PlaceholderKind, "dhcp", res.DHCP != nil, "duration", res.Duration)
	return res, nil
}

// readPodLink reads what nmstate's Read reports for one link.
func readPodLink(h *link.Handle, name string) (podLinkStatus, error) {
	l, err := link.ByName(h, name)
	if err != nil {
		return podLinkStatus{}, fmt.Errorf("pod link (%s) is missing: %w", name, err)
	}
	st := podLinkStatus{index: l.Attrs().Index, mac: l.Attrs().HardwareAddr, mtu: l.Attrs().MTU}
	if st.v4, err = link.AddrList(h, name, link.FamilyV4); err != nil {
		return st, err
	}
	if st.v6, err = link.AddrList(h, name, link.FamilyV6); err != nil {
		return st, err
	}
	// RouteList with a link returns the main table's routes through it, the
	// same set KubeVirt filters from RouteList(nil, ...) by device name.
	if st.routes, err = h.RouteList(l, netlink.FAMILY_V4); err != nil {
		return st, fmt.Errorf("list IPv4 routes of %s in netns %s: %w", name, h.NamespaceName(), err)
	}
	return st, nil
}

// bridgeNIC is nmstate's setupInterface for the pod link: set DOWN if it is
// UP or LOWERLAYERDOWN, rename, copy the bridge's MAC, enslave, delete every
// address, set UP, switch learning off. It returns the MAC copied.
func bridgeNIC(h *link.Handle, index int, podIface, nicName, bridge string) (net.HardwareAddr, error) {
	l, err := h.LinkByIndex(index)
	if err != nil {
		return nil, fmt.Errorf("find pod link %s by ifindex %d in netns %s: %w", podIface, index, h.NamespaceName(), err)
	}
	br, err := link.ByName(h, bridge)
	if err != nil {
		return nil, fmt.Errorf("unable to find mac source link [%s]: %w", nicName, err)
	}
	mac := br.Attrs().HardwareAddr

	name := l.Attrs().Name
	if op := l.Attrs().OperState; op == netlink.OperUp || op == netlink.OperLowerLayerDown {
		if err := link.SetDown(h, name); err != nil {
			return nil, err
		}
	}
	if name != nicName {
		if err := link.Rename(h, name, nicName); err != nil {
			return nil, err
		}
	}
	if l.Attrs().HardwareAddr.String() != mac.String() {
		if err := link.SetMAC(h, nicName, mac); err != nil {
			return nil, err
		}
	}
	if err := link.SetMaster(h, nicName, bridge); err != nil {
		return nil, err
	}
	if _, err := link.FlushAddrs(h, nicName, link.FamilyAll); err != nil {
		return nil, err
	}
	if err := link.SetUp(h, nicName); err != nil {
		return nil, err
	}
	if err := link.SetLearning(h, nicName, false); err != nil {
		return nil, err
	}
	return mac, nil
}

// addPlaceholder creates the link that keeps the pod interface's name, MAC and
// addresses. KubeVirt creates a dummy. Where the kernel has no dummy type it
// creates a bridge with no ports instead. Like a dummy, that bridge is a pure
// software link with no lower device and no peer, made by one rtnetlink
// request. It can carry a MAC, an MTU and addresses, and while DOWN it sends
// and receives nothing. A tap would also fit but needs /dev/net/tun and an
// owner, and a veth would leave a peer behind.
func addPlaceholder(h *link.Handle, name string, log *slog.Logger) (string, error) {
	_, err := link.AddDummy(h, name)
	if err == nil {
		return "dummy", nil
	}
	if !errors.Is(err, link.ErrDummyUnsupported) {
		return "", err
	}
	log.Info("kernel lacks the dummy link type: using a port-less bridge as the placeholder", "link", name, "kernel", err)
	if _, err := link.AddBridge(h, name); err != nil {
		return "", err
	}
	return "bridge", nil
}

// dhcpConfig derives the offer as storeBridgeBindingDHCPInterfaceData does:
// the first global IPv4 address, the MAC from the spec or the pod link, the
// router from the first IPv4 route through the pod link, and the other routes
// except the connected one.
func dhcpConfig(spec BridgeSpec, st podLinkStatus, addr netip.Prefix, specMAC net.HardwareAddr, podIface string) (*dhcp.Config, error) {
	cfg := &dhcp.Config{
		ClientMAC: st.mac,
		Address:   addr,
		Hostname:  spec.Hostname,
		Custom:    spec.DHCPOptions,
	}
	if specMAC != nil {
		cfg.ClientMAC = specMAC
	}
	sid, err := netip.ParseAddr(bridgeFakeIPBase + strconv.Itoa(spec.InterfaceIndex))
	if err != nil {
		return nil, err
	}
	cfg.ServerID = sid

	var routes []netlink.Route
	for _, r := range st.routes {
		if r.Gw != nil && r.Gw.To4() == nil {
			continue
		}
		routes = append(routes, r)
	}
	if len(routes) == 0 {
		return nil, fmt.Errorf("no gateway address found in routes for %s", podIface)
	}
	if gw, ok := netip.AddrFromSlice(routes[0].Gw); ok {
		cfg.Router = gw.Unmap()
	}
	local := addr.Masked()
	for _, r := range routes {
		dst := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		if r.Dst != nil {
			p, err := link.PrefixFromIPNet(r.Dst)
			if err != nil {
				return nil, err
			}
			dst = p.Masked()
		}
		if dst.Bits() != 0 && dst == local {
			continue
		}
		route := dhcp.Route{Destination: dst}
		if gw, ok := netip.AddrFromSlice(r.Gw); ok {
			route.Gateway = gw.Unmap()
		}
		cfg.Routes = append(cfg.Routes, route)
	}

	rc := dhcp.ParseResolvConf("")
	if spec.ResolvConf != nil {
		rc = *spec.ResolvConf
	}
	cfg.DNS = rc.IPv4Nameservers()
	cfg.SearchDomains = dhcp.SearchDomainsWithSubdomain(rc.SearchDomains, spec.Subdomain)
	return cfg, nil
}

// firstGlobalUnicast returns the first address that Go's IsGlobalUnicast
// accepts, as KubeVirt's firstIPGlobalUnicast does (169.254/16 is not).
func firstGlobalUnicast(addrs []netip.Prefix) netip.Prefix {
	for _, a := range addrs {
		if a.Addr().IsGlobalUnicast() {
			return a
		}
	}
	return netip.Prefix{}
}

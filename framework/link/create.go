package link

import (
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vmnet-e2e/vmnet-e2e/framework/netns"
)

// BridgeOption configures AddBridge.
type BridgeOption func(*netlink.Bridge)

// WithBridgeMAC gives the bridge a fixed MAC. Without it the kernel picks a
// random one and then follows the lowest port MAC as ports join and leave.
func WithBridgeMAC(mac net.HardwareAddr) BridgeOption {
	return func(b *netlink.Bridge) { b.HardwareAddr = mac }
}

// WithBridgeMTU sets the bridge MTU at creation.
func WithBridgeMTU(mtu int) BridgeOption {
	return func(b *netlink.Bridge) { b.MTU = mtu }
}

// AddBridge creates a Linux bridge, like `ip link add NAME [address MAC] type
// bridge`. It stays DOWN until SetUp.
func AddBridge(h *Handle, name string, opts ...BridgeOption) (*netlink.Bridge, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	br := &netlink.Bridge{LinkAttrs: netlink.NewLinkAttrs()}
	br.Name = name
	for _, opt := range opts {
		opt(br)
	}
	if err := h.LinkAdd(br); err != nil {
		return nil, h.wrap("create bridge", name, err)
	}
	return br, nil
}

// VethOption configures AddVeth.
type VethOption func(*netlink.Veth)

// WithVethMAC sets the MAC of the end created in the handle's namespace.
func WithVethMAC(mac net.HardwareAddr) VethOption {
	return func(v *netlink.Veth) { v.HardwareAddr = mac }
}

// WithVethPeerMAC sets the MAC of the peer end.
func WithVethPeerMAC(mac net.HardwareAddr) VethOption {
	return func(v *netlink.Veth) { v.PeerHardwareAddr = mac }
}

// WithVethMTU sets the MTU of both ends.
func WithVethMTU(mtu int) VethOption {
	return func(v *netlink.Veth) { v.MTU = mtu }
}

// AddVeth creates a veth pair with one end, name, in the handle's namespace
// and the other, peer, in peerNS (the same namespace when peerNS is nil), like
// `ip link add NAME type veth peer name PEER netns PEERNS`. Both ends start
// DOWN.
func AddVeth(h *Handle, name, peer string, peerNS *netns.Namespace, opts ...VethOption) (*netlink.Veth, error) {
	for _, n := range []string{name, peer} {
		if err := ValidateName(n); err != nil {
			return nil, err
		}
	}
	veth := &netlink.Veth{LinkAttrs: netlink.NewLinkAttrs(), PeerName: peer}
	veth.Name = name
	for _, opt := range opts {
		opt(veth)
	}

	if peerNS != nil {
		fd, err := peerNS.Handle()
		if err != nil {
			return nil, err
		}
		defer fd.Close()
		veth.PeerNamespace = netlink.NsFd(int(fd))
	}

	if err := h.LinkAdd(veth); err != nil {
		target := h.NamespaceName()
		if peerNS != nil {
			target = peerNS.Name
		}
		return nil, h.wrap("create veth pair", fmt.Sprintf("%s (peer %s in netns %s)", name, peer, target), err)
	}
	return veth, nil
}

// TapOptions describes a persistent tap device.
type TapOptions struct {
	// MTU of the tap; 0 keeps the kernel default (1500).
	MTU int
	// Owner and Group may open the tap without CAP_NET_ADMIN (TUNSETOWNER,
	// TUNSETGROUP). KubeVirt v1.9.0 uses 107 (pkg/util/util.go NonRootUID)
	// for non-root VMIs, its default.
	Owner, Group uint32
	// MultiQueue creates the tap with IFF_MULTI_QUEUE|IFF_NO_PI, as
	// virt-chroot does when more than one queue is requested; otherwise the
	// flags are IFF_TUN_EXCL|IFF_ONE_QUEUE.
	MultiQueue bool
}

// AddTap creates a persistent tap device and then sets its MTU, like
// `ip tuntap add dev NAME mode tap user OWNER group GROUP` followed by
// `ip link set NAME mtu MTU`.
//
// Source: kubevirt/kubevirt v1.9.0, cmd/virt-chroot/tap-device-maker.go
// (createTapDevice), which virt-handler runs as `virt-chroot create-tap`.
//
// NOTE: the TUNSETIFF ioctl creates the device in the namespace of the calling
// thread, so this runs inside h.Namespace.Do.
func AddTap(h *Handle, name string, opts TapOptions) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	tap := &netlink.Tuntap{
		LinkAttrs:  netlink.LinkAttrs{Name: name},
		Mode:       netlink.TUNTAP_MODE_TAP,
		NonPersist: false,
		Owner:      opts.Owner,
		Group:      opts.Group,
		Flags:      netlink.TUNTAP_DEFAULTS,
	}
	if opts.MultiQueue {
		tap.Flags = netlink.TUNTAP_MULTI_QUEUE_DEFAULTS
	}

	err := h.Namespace.Do(func() error {
		if err := netlink.LinkAdd(tap); err != nil {
			return err
		}
		if opts.MTU > 0 {
			return netlink.LinkSetMTU(tap, opts.MTU)
		}
		return nil
	})
	if err != nil {
		return h.wrap("create tap", name, err)
	}
	return nil
}

// AddMacvtap creates a macvtap link on parent, like `ip link add NAME link
// PARENT type macvtap mode MODE`, with the parent's txqueuelen, and sets it
// UP.
//
// Source: kubevirt/macvtap-cni v0.13.1, pkg/util/netlink.go (CreateMacvtap),
// which the macvtap device plugin runs on Allocate (pkg/deviceplugin/plugin.go).
func AddMacvtap(h *Handle, name, parent string, mode netlink.MacvlanMode) (*netlink.Macvtap, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	lower, err := ByName(h, parent)
	if err != nil {
		return nil, fmt.Errorf("link: lower device of macvtap %s: %w", name, err)
	}

	mv := &netlink.Macvtap{Macvlan: netlink.Macvlan{
		LinkAttrs: netlink.LinkAttrs{
			Name:        name,
			ParentIndex: lower.Attrs().Index,
			TxQLen:      lower.Attrs().TxQLen,
		},
		Mode: mode,
	}}
	if err := h.LinkAdd(mv); err != nil {
		return nil, h.wrap("create macvtap on "+parent, name, err)
	}
	if err := h.LinkSetUp(mv); err != nil {
		_ = h.LinkDel(mv)
		return nil, h.wrap("set up", name, err)
	}
	return mv, nil
}

// ErrDummyUnsupported is returned by AddDummy when the kernel has no dummy link
// type (CONFIG_DUMMY off and no module to load).
var ErrDummyUnsupported = errors.New("link: the kernel has no dummy link type")

// AddDummy creates a dummy link, like `ip link add NAME type dummy`. It returns
// an error wrapping ErrDummyUnsupported, together with the kernel's error,
// when the kernel lacks the dummy type.
func AddDummy(h *Handle, name string) (*netlink.Dummy, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	d := &netlink.Dummy{LinkAttrs: netlink.NewLinkAttrs()}
	d.Name = name
	if err := h.LinkAdd(d); err != nil {
		// rtnl_newlink returns EOPNOTSUPP for an unknown kind after trying
		// to load the rtnl-link-dummy module; `ip` prints it as "Unknown
		// device type".
		if errors.Is(err, unix.EOPNOTSUPP) {
			return nil, fmt.Errorf("%w (kernel: %v)", ErrDummyUnsupported, err)
		}
		return nil, h.wrap("create dummy", name, err)
	}
	return d, nil
}

// Delete removes a link, like `ip link del NAME`. A link that is already gone
// is not an error.
func Delete(h *Handle, name string) error {
	l, err := ByName(h, name)
	var notFound *NotFoundError
	if errors.As(err, &notFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := h.LinkDel(l); err != nil {
		return h.wrap("delete", name, err)
	}
	return nil
}

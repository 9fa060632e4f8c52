package link

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// Family selects the address family of AddrList and FlushAddrs.
type Family int

// Address families, as netlink numbers them.
const (
	FamilyAll Family = netlink.FAMILY_ALL
	FamilyV4  Family = netlink.FAMILY_V4
	FamilyV6  Family = netlink.FAMILY_V6
)

// AddAddr adds an address with its prefix length to a link, like `ip addr add
// PREFIX dev NAME`.
func AddAddr(h *Handle, name string, prefix netip.Prefix) error {
	l, err := ByName(h, name)
	if err != nil {
		return err
	}
	addr := &netlink.Addr{IPNet: prefixToIPNet(prefix)}
	if err := h.AddrAdd(l, addr); err != nil {
		return h.wrap("add address "+prefix.String()+" to", name, err)
	}
	return nil
}

// AddrList returns the link's addresses of a family, like `ip addr show dev
// NAME`.
func AddrList(h *Handle, name string, family Family) ([]netip.Prefix, error) {
	l, err := ByName(h, name)
	if err != nil {
		return nil, err
	}
	addrs, err := h.Handle.AddrList(l, int(family))
	if err != nil {
		return nil, h.wrap("list addresses of", name, err)
	}
	out := make([]netip.Prefix, 0, len(addrs))
	for _, a := range addrs {
		if p, ok := ipNetToPrefix(a.IPNet); ok {
			out = append(out, p)
		}
	}
	return out, nil
}

// FlushAddrs deletes every address of a family from a link, one by one, like
// `ip addr flush dev NAME`. It returns the deleted addresses.
func FlushAddrs(h *Handle, name string, family Family) ([]netip.Prefix, error) {
	l, err := ByName(h, name)
	if err != nil {
		return nil, err
	}
	addrs, err := h.Handle.AddrList(l, int(family))
	if err != nil {
		return nil, h.wrap("list addresses of", name, err)
	}
	var deleted []netip.Prefix
	for i := range addrs {
		if err := h.AddrDel(l, &addrs[i]); err != nil {
			return deleted, h.wrap("delete address "+addrs[i].IPNet.String()+" from", name, err)
		}
		if p, ok := ipNetToPrefix(addrs[i].IPNet); ok {
			deleted = append(deleted, p)
		}
	}
	return deleted, nil
}

func prefixToIPNet(p netip.Prefix) *net.IPNet {
	bits := 32
	if p.Addr().Is6() && !p.Addr().Is4In6() {
		bits = 128
	}
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), bits)}
}

func ipNetToPrefix(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	addr, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(addr.Unmap(), ones), true
}

// PrefixFromIPNet converts a net.IPNet to a netip.Prefix, keeping the host
// bits (192.0.2.10/24 stays 192.0.2.10/24).
func PrefixFromIPNet(n *net.IPNet) (netip.Prefix, error) {
	p, ok := ipNetToPrefix(n)
	if !ok {
		return netip.Prefix{}, fmt.Errorf("link: invalid IP network %v", n)
	}
	return p, nil
}

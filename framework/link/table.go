package link

import (
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"

	"github.com/vishvananda/netlink"
)

// Info describes one link of a namespace, as `ip -d link` and `ip addr` show it.
type Info struct {
	Index int
	Name  string
	// Kind is the rtnetlink kind: bridge, veth, macvlan, macvtap, tap, tun,
	// dummy, or device for links without one (lo).
	Kind      string
	MAC       net.HardwareAddr
	MTU       int
	AdminUp   bool
	OperState string
	// Master is the name of the bridge the link is a port of, if any.
	Master string
	Addrs  []netip.Prefix
	// MacvlanMode is the macvlan or macvtap mode (bridge, private, vepa,
	// passthru, source).
	MacvlanMode string
	// Lower is the parent link of a macvlan, macvtap or the peer of a veth:
	// its name, or "ifN" with the namespace id when it lives in another
	// namespace (as `ip` prints "@ifN").
	Lower string
	// Learning is the bridge port's learning flag; nil when not a port.
	Learning *bool
}

// Table is a snapshot of the links of one namespace.
type Table struct {
	Namespace string
	Links     []Info
}

// Snapshot lists every link of the handle's namespace with its addresses,
// like `ip -d addr show`.
func Snapshot(h *Handle) (Table, error) {
	links, err := h.LinkList()
	if err != nil {
		return Table{}, fmt.Errorf("link: list links in netns %s: %w", h.NamespaceName(), err)
	}
	byIndex := map[int]string{}
	for _, l := range links {
		byIndex[l.Attrs().Index] = l.Attrs().Name
	}

	t := Table{Namespace: h.NamespaceName()}
	for _, l := range links {
		a := l.Attrs()
		info := Info{
			Index:     a.Index,
			Name:      a.Name,
			Kind:      kindOf(l),
			MAC:       a.HardwareAddr,
			MTU:       a.MTU,
			AdminUp:   a.Flags&net.FlagUp != 0,
			OperState: strings.ToUpper(a.OperState.String()),
			Master:    byIndex[a.MasterIndex],
		}

		switch v := l.(type) {
		case *netlink.Macvlan:
			info.MacvlanMode = macvlanModeName(v.Mode)
		case *netlink.Macvtap:
			info.MacvlanMode = macvlanModeName(v.Mode)
		}
		if a.ParentIndex > 0 {
			info.Lower = lowerName(a, byIndex)
		}

		if a.MasterIndex > 0 {
			if p, err := h.LinkGetProtinfo(l); err == nil {
				learning := p.Learning
				info.Learning = &learning
			}
		}

		addrs, err := h.Handle.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			return Table{}, h.wrap("list addresses of", a.Name, err)
		}
		for _, ad := range addrs {
			if p, ok := ipNetToPrefix(ad.IPNet); ok {
				info.Addrs = append(info.Addrs, p)
			}
		}
		t.Links = append(t.Links, info)
	}
	sort.Slice(t.Links, func(i, j int) bool { return t.Links[i].Index < t.Links[j].Index })
	return t, nil
}

// Link returns the named link of the table.
func (t Table) Link(name string) (Info, bool) {
	for _, l := range t.Links {
		if l.Name == name {
			return l, true
		}
	}
	return Info{}, false
}

// Brief formats the table like `ip -br link` with the master, kind and
// addresses appended, one line per link.
func (t Table) Brief() string {
	var b strings.Builder
	for _, l := range t.Links {
		name := l.Name
		if l.Lower != "" {
			name += "@" + l.Lower
		}
		fmt.Fprintf(&b, "%-24s %-8s %-17s %-8s", name, l.OperState, l.MAC, l.Kind)
		if l.MacvlanMode != "" {
			fmt.Fprintf(&b, " mode %s", l.MacvlanMode)
		}
		if l.Master != "" {
			fmt.Fprintf(&b, " master %s", l.Master)
		}
		for _, a := range l.Addrs {
			fmt.Fprintf(&b, " %s", a)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// String formats the table like `ip -d addr`.
func (t Table) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "netns %s:\n", t.Namespace)
	for _, l := range t.Links {
		name := l.Name
		if l.Lower != "" {
			name += "@" + l.Lower
		}
		admin := "DOWN"
		if l.AdminUp {
			admin = "UP"
		}
		fmt.Fprintf(&b, "%d: %s: <%s> mtu %d", l.Index, name, admin, l.MTU)
		if l.Master != "" {
			fmt.Fprintf(&b, " master %s", l.Master)
		}
		fmt.Fprintf(&b, " state %s\n    link/ether %s %s", l.OperState, l.MAC, l.Kind)
		if l.MacvlanMode != "" {
			fmt.Fprintf(&b, " mode %s", l.MacvlanMode)
		}
		if l.Learning != nil {
			fmt.Fprintf(&b, " learning %s", onOff(*l.Learning))
		}
		b.WriteByte('\n')
		for _, a := range l.Addrs {
			family := "inet"
			if a.Addr().Is6() {
				family = "inet6"
			}
			fmt.Fprintf(&b, "    %s %s\n", family, a)
		}
	}
	return b.String()
}

func kindOf(l netlink.Link) string {
	if tt, ok := l.(*netlink.Tuntap); ok {
		if tt.Mode == netlink.TUNTAP_MODE_TUN {
			return "tun"
		}
		return "tap"
	}
	return l.Type()
}

func lowerName(a *netlink.LinkAttrs, byIndex map[int]string) string {
	// IFLA_LINK_NETNSID present: the lower link lives in another namespace
	// and its index means nothing here.
	if a.NetNsID >= 0 {
		return fmt.Sprintf("if%d(nsid %d)", a.ParentIndex, a.NetNsID)
	}
	if n, ok := byIndex[a.ParentIndex]; ok {
		return n
	}
	return fmt.Sprintf("if%d", a.ParentIndex)
}

func macvlanModeName(m netlink.MacvlanMode) string {
	switch m {
	case netlink.MACVLAN_MODE_PRIVATE:
		return "private"
	case netlink.MACVLAN_MODE_VEPA:
		return "vepa"
	case netlink.MACVLAN_MODE_BRIDGE:
		return "bridge"
	case netlink.MACVLAN_MODE_PASSTHRU:
		return "passthru"
	case netlink.MACVLAN_MODE_SOURCE:
		return "source"
	}
	return fmt.Sprintf("mode(%d)", m)
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

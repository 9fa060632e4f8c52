package link

import (
	"fmt"
	"net"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// FDBEntry is one forwarding database entry of a bridge.
type FDBEntry struct {
	MAC  net.HardwareAddr
	Port string
	VLAN int
	// Local is a permanent entry for the bridge's or a port's own MAC: frames
	// to it go up the bridge's own stack instead of out a port.
	Local bool
	// Static is a permanent entry that is not local (NUD_NOARP).
	Static bool
}

func (e FDBEntry) String() string {
	var flags []string
	if e.Local {
		flags = append(flags, "permanent")
	}
	if e.Static {
		flags = append(flags, "static")
	}
	s := fmt.Sprintf("%s dev %s", e.MAC, e.Port)
	if e.VLAN > 0 {
		s += fmt.Sprintf(" vlan %d", e.VLAN)
	}
	if len(flags) > 0 {
		s += " " + strings.Join(flags, " ")
	}
	return s
}

// FDB lists the forwarding database entries that bridge holds for its ports,
// like `bridge fdb show br BRIDGE`, without the entries a port keeps for
// itself (the "self" entries of non-bridge drivers).
func FDB(h *Handle, bridge string) ([]FDBEntry, error) {
	br, err := ByName(h, bridge)
	if err != nil {
		return nil, err
	}
	neighs, err := h.NeighList(0, unix.AF_BRIDGE)
	if err != nil {
		return nil, h.wrap("list fdb of", bridge, err)
	}

	names := map[int]string{}
	var entries []FDBEntry
	for _, n := range neighs {
		if n.MasterIndex != br.Attrs().Index && n.LinkIndex != br.Attrs().Index {
			continue
		}
		if n.Flags&netlink.NTF_SELF != 0 && n.LinkIndex != br.Attrs().Index {
			continue
		}
		port, ok := names[n.LinkIndex]
		if !ok {
			port = fmt.Sprintf("if%d", n.LinkIndex)
			if l, err := h.LinkByIndex(n.LinkIndex); err == nil {
				port = l.Attrs().Name
			}
			names[n.LinkIndex] = port
		}
		entries = append(entries, FDBEntry{
			MAC:    n.HardwareAddr,
			Port:   port,
			VLAN:   n.Vlan,
			Local:  n.State&netlink.NUD_PERMANENT != 0,
			Static: n.State&netlink.NUD_NOARP != 0,
		})
	}
	return entries, nil
}

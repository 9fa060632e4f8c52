package kind

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/vmnet-e2e/vmnet-e2e/framework/verdict"
)

// Commands run in the virt-launcher pod's compute container, whose image
// ships iproute (kubevirt v1.9.0, hack/rpm-deps.sh, launcherbase). JSON
// output keeps the parsing independent of iproute2's text layout.
var (
	ipLinkJSON = []string{"ip", "-d", "-j", "link", "show"}
	ipAddrJSON = []string{"ip", "-j", "addr", "show"}
)

// ipLink is one entry of `ip -d -j link show`.
type ipLink struct {
	Index     int    `json:"ifindex"`
	Name      string `json:"ifname"`
	MTU       int    `json:"mtu"`
	OperState string `json:"operstate"`
	Address   string `json:"address"`
	Master    string `json:"master"`
	// Link is the lower link's name when it is in the same namespace.
	// Otherwise LinkIndex and LinkNetnsID locate it.
	Link        string `json:"link"`
	LinkIndex   int    `json:"link_index"`
	LinkNetnsID *int   `json:"link_netnsid"`
	LinkInfo    struct {
		Kind string `json:"info_kind"`
		Data struct {
			Mode string `json:"mode"`
			// Type is "tap" or "tun" for info_kind tun.
			Type string `json:"type"`
		} `json:"info_data"`
	} `json:"linkinfo"`
	Stats64 struct {
		RX struct {
			Packets uint64 `json:"packets"`
			Dropped uint64 `json:"dropped"`
		} `json:"rx"`
		TX struct {
			Packets uint64 `json:"packets"`
			Dropped uint64 `json:"dropped"`
		} `json:"tx"`
	} `json:"stats64"`
}

// ipAddr is one entry of `ip -j addr show`.
type ipAddr struct {
	Name     string `json:"ifname"`
	AddrInfo []struct {
		Local     string `json:"local"`
		PrefixLen int    `json:"prefixlen"`
	} `json:"addr_info"`
}

// ParsePodLinks turns the JSON of `ip -d -j link show` and `ip -j addr show`
// into link rows, sorted by interface index. The rows follow
// framework/link's conventions so that both providers' tables read alike:
// kind "tap" or "tun" for tun devices, "device" for links without a kind,
// the operational state in capitals, and a lower link in another namespace
// written "ifN(nsid M)".
func ParsePodLinks(linkJSON, addrJSON []byte) ([]verdict.Link, error) {
	var links []ipLink
	if err := json.Unmarshal(linkJSON, &links); err != nil {
		return nil, fmt.Errorf("kind: parse `ip -d -j link` output: %w", err)
	}
	var addrs []ipAddr
	if len(strings.TrimSpace(string(addrJSON))) > 0 {
		if err := json.Unmarshal(addrJSON, &addrs); err != nil {
			return nil, fmt.Errorf("kind: parse `ip -j addr` output: %w", err)
		}
	}

	byIndex := map[int]string{}
	for _, l := range links {
		byIndex[l.Index] = l.Name
	}
	addrsByName := map[string][]string{}
	for _, a := range addrs {
		for _, info := range a.AddrInfo {
			addr, err := netip.ParseAddr(info.Local)
			if err != nil {
				continue
			}
			addrsByName[a.Name] = append(addrsByName[a.Name], netip.PrefixFrom(addr, info.PrefixLen).String())
		}
	}

	sort.Slice(links, func(i, j int) bool { return links[i].Index < links[j].Index })
	out := make([]verdict.Link, 0, len(links))
	for _, l := range links {
		row := verdict.Link{
			Name:      l.Name,
			Kind:      linkKind(l),
			MAC:       l.Address,
			State:     strings.ToUpper(l.OperState),
			Master:    l.Master,
			Lower:     lowerOf(l, byIndex),
			MTU:       l.MTU,
			Addresses: addrsByName[l.Name],
		}
		if row.Kind == "macvlan" || row.Kind == "macvtap" {
			row.Mode = l.LinkInfo.Data.Mode
		}
		out = append(out, row)
	}
	return out, nil
}

func linkKind(l ipLink) string {
	switch l.LinkInfo.Kind {
	case "":
		return "device"
	case "tun":
		if l.LinkInfo.Data.Type == "tun" {
			return "tun"
		}
		return "tap"
	}
	return l.LinkInfo.Kind
}

func lowerOf(l ipLink, byIndex map[int]string) string {
	switch {
	case l.Link != "":
		return l.Link
	case l.LinkIndex == 0:
		return ""
	case l.LinkNetnsID != nil:
		return fmt.Sprintf("if%d(nsid %d)", l.LinkIndex, *l.LinkNetnsID)
	case byIndex[l.LinkIndex] != "":
		return byIndex[l.LinkIndex]
	}
	return fmt.Sprintf("if%d", l.LinkIndex)
}

// macsOnParent returns the MACs of the macvlan and macvtap links in rows
// whose lower link is the parent. In the parent's own namespace the lower
// link is matched by name. In a pod's namespace the parent lives in another
// namespace and appears as "ifN(nsid M)", so it is matched by index.
func macsOnParent(rows []verdict.Link, parent string, parentIndex int, sameNamespace bool) []string {
	var macs []string
	for _, r := range rows {
		if r.Kind != "macvlan" && r.Kind != "macvtap" {
			continue
		}
		if sameNamespace && r.Lower == parent ||
			!sameNamespace && strings.HasPrefix(r.Lower, fmt.Sprintf("if%d(nsid ", parentIndex)) {
			macs = append(macs, r.MAC)
		}
	}
	return macs
}

// parseLinkPackets reads, from `ip -s -j link show dev X`, the frames the
// link received and the frames it transmitted, each counting the ones it
// then dropped. clusters/local counts delivery toward the guest the same
// way: transmitted for a tap, received for a macvtap link.
func parseLinkPackets(out []byte) (rx, tx uint64, err error) {
	var links []ipLink
	if err := json.Unmarshal(out, &links); err != nil {
		return 0, 0, fmt.Errorf("kind: parse `ip -s -j link` output: %w", err)
	}
	if len(links) != 1 {
		return 0, 0, fmt.Errorf("kind: `ip -s -j link show dev` listed %d links, want 1", len(links))
	}
	st := links[0].Stats64
	return st.RX.Packets + st.RX.Dropped, st.TX.Packets + st.TX.Dropped, nil
}

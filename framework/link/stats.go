package link

import (
	"encoding/binary"
	"fmt"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Statistics are the counters of struct rtnl_link_stats64 the harness uses to
// show where frames die.
type Statistics struct {
	RxPackets, TxPackets uint64
	RxBytes, TxBytes     uint64
	RxErrors, TxErrors   uint64
	RxDropped, TxDropped uint64
	RxNoHandler          uint64
	// RxOtherhostDropped counts frames the IP layer dropped because their
	// destination MAC was not the device's (ip_rcv_core, PACKET_OTHERHOST).
	RxOtherhostDropped uint64
	// HasOtherhost is false when the kernel's IFLA_STATS64 is too short to
	// hold rx_otherhost_dropped (kernels before 5.19).
	HasOtherhost bool
}

// Byte offsets in struct rtnl_link_stats64 (include/uapi/linux/if_link.h):
// 23 counters up to tx_compressed, then rx_nohandler (index 23) and
// rx_otherhost_dropped (index 24, the 25th __u64).
const (
	statsIndexRxNoHandler        = 23
	statsIndexRxOtherhostDropped = 24
)

// ReadStatistics returns a link's counters from the kernel's IFLA_STATS64
// attribute, like `ip -s -s link show NAME`. The attribute is parsed here
// because iproute2 6.1 prints no rx_otherhost_dropped and netlink v1.3.1's
// LinkStatistics64 stops at tx_compressed.
func ReadStatistics(h *Handle, name string) (Statistics, error) {
	if err := ValidateName(name); err != nil {
		return Statistics{}, err
	}

	var raw []byte
	err := h.Namespace.Do(func() error {
		req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_ACK)
		req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
		req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(name)))
		msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
		if err != nil {
			return err
		}
		if len(msgs) == 0 {
			return fmt.Errorf("the kernel returned no RTM_NEWLINK message")
		}
		attrs, err := nl.ParseRouteAttr(msgs[0][unix.SizeofIfInfomsg:])
		if err != nil {
			return err
		}
		for _, a := range attrs {
			if a.Attr.Type == unix.IFLA_STATS64 {
				raw = a.Value
			}
		}
		return nil
	})
	if err != nil {
		return Statistics{}, h.wrap("read statistics of", name, err)
	}
	if len(raw) < 23*8 {
		return Statistics{}, h.wrap("read statistics of", name, fmt.Errorf("IFLA_STATS64 contains %d bytes, want at least %d", len(raw), 23*8))
	}

	u := func(i int) uint64 { return binary.NativeEndian.Uint64(raw[i*8:]) }
	s := Statistics{
		RxPackets: u(0), TxPackets: u(1),
		RxBytes: u(2), TxBytes: u(3),
		RxErrors: u(4), TxErrors: u(5),
		RxDropped: u(6), TxDropped: u(7),
	}
	if len(raw) >= (statsIndexRxNoHandler+1)*8 {
		s.RxNoHandler = u(statsIndexRxNoHandler)
	}
	if len(raw) >= (statsIndexRxOtherhostDropped+1)*8 {
		s.RxOtherhostDropped = u(statsIndexRxOtherhostDropped)
		s.HasOtherhost = true
	}
	return s, nil
}

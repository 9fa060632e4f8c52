package probe

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmnet-e2e/vmnet-e2e/framework/netns"
)

// discardPort is the UDP port of the probe's datagrams: the discard service
// (RFC 863), which nothing on the path or in the guest serves.
const discardPort = 9

// unicastPayload makes the datagram long enough that no padding is needed.
var unicastPayload = []byte("vmnet-e2e unicast probe")

// UnicastOptions bounds a unicast probe.
type UnicastOptions struct {
	// Source and Destination are the IPv4 addresses of the datagrams: the
	// external peer's and the probed address. Required.
	Source, Destination netip.Addr
	// Frames is the number of frames sent; default 20.
	Frames int
	// Interval separates frames; default 10 ms.
	Interval time.Duration
	// Settle is the wait after the last frame, so counters read afterwards
	// include every frame still in flight; default 200 ms.
	Settle time.Duration
}

// SendUnicast sends Ethernet frames addressed to the MAC dst from iface
// inside ns, through a packet socket created inside ns, without ARP. Each
// frame carries an IPv4 UDP datagram to the discard port. A stack that
// receives such a frame for a MAC that is not its own drops it in ip_rcv_core
// and counts it in rx_otherhost_dropped, as it does for ICMP echo. It tests the
// link layer alone: whether a frame for dst reaches the port behind which dst
// lives, whatever the IP configuration of the host that owns dst. Compare link
// counters (SnapshotCounters) before and after the call to see where the
// frames went. It returns the number of frames sent.
func SendUnicast(ctx context.Context, ns *netns.Namespace, iface string, dst net.HardwareAddr, opts UnicastOptions) (int, error) {
	if opts.Frames <= 0 {
		opts.Frames = 20
	}
	if opts.Interval <= 0 {
		opts.Interval = 10 * time.Millisecond
	}
	if opts.Settle <= 0 {
		opts.Settle = 200 * time.Millisecond
	}
	if len(dst) != 6 {
		return 0, fmt.Errorf("probe: unicast destination %q is not an Ethernet MAC", dst)
	}
	if !opts.Source.Is4() || !opts.Destination.Is4() {
		return 0, fmt.Errorf("probe: unicast probe needs IPv4 source and destination addresses, got %s and %s", opts.Source, opts.Destination)
	}

	// the socket belongs to ns from its creation on
	var fd int
	var ifindex int
	var src net.HardwareAddr
	if err := ns.Do(func() error {
		ifc, err := net.InterfaceByName(iface)
		if err != nil {
			return fmt.Errorf("find %s: %w", iface, err)
		}
		ifindex, src = ifc.Index, ifc.HardwareAddr
		// Protocol 0: the socket only sends, it receives nothing.
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open packet socket: %w", err)
		}
		return nil
	}); err != nil {
		return 0, fmt.Errorf("probe: unicast from %s: %w", iface, err)
	}
	defer unix.Close(fd)

	frame := udpFrame(dst, src, opts.Source, opts.Destination)
	addr := &unix.SockaddrLinklayer{Ifindex: ifindex, Halen: 6, Protocol: htons(unix.ETH_P_IP)}
	copy(addr.Addr[:], dst)

	sent := 0
	ticker := time.NewTicker(opts.Interval)
	defer ticker.Stop()
	for sent < opts.Frames {
		if err := unix.Sendto(fd, frame, 0, addr); err != nil {
			return sent, fmt.Errorf("probe: send unicast frame %d to %s from %s in netns %s: %w", sent+1, dst, iface, ns.Name, err)
		}
		sent++
		select {
		case <-ctx.Done():
			return sent, ctx.Err()
		case <-ticker.C:
		}
	}

	select {
	case <-ctx.Done():
		return sent, ctx.Err()
	case <-time.After(opts.Settle):
	}
	return sent, nil
}

// udpFrame builds an Ethernet frame holding an IPv4 UDP datagram to the
// discard port, with the UDP checksum left 0 (allowed for IPv4, RFC 768).
func udpFrame(dstMAC, srcMAC net.HardwareAddr, srcIP, dstIP netip.Addr) []byte {
	udpLength := 8 + len(unicastPayload)
	ipLength := 20 + udpLength

	frame := make([]byte, 0, 14+ipLength)
	frame = append(frame, dstMAC...)
	frame = append(frame, srcMAC...)
	frame = binary.BigEndian.AppendUint16(frame, unix.ETH_P_IP)

	header := make([]byte, 20)
	header[0] = 0x45 // version 4, 5 words of header
	binary.BigEndian.PutUint16(header[2:], uint16(ipLength))
	header[8] = 64 // TTL
	header[9] = unix.IPPROTO_UDP
	src4, dst4 := srcIP.As4(), dstIP.As4()
	copy(header[12:16], src4[:])
	copy(header[16:20], dst4[:])
	binary.BigEndian.PutUint16(header[10:], ipChecksum(header))
	frame = append(frame, header...)

	frame = binary.BigEndian.AppendUint16(frame, discardPort)
	frame = binary.BigEndian.AppendUint16(frame, discardPort)
	frame = binary.BigEndian.AppendUint16(frame, uint16(udpLength))
	frame = binary.BigEndian.AppendUint16(frame, 0)
	return append(frame, unicastPayload...)
}

// ipChecksum is the Internet checksum (RFC 1071) of an IPv4 header.
func ipChecksum(header []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(header); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(header[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

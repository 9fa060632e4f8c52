package binding

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vmnet-e2e/vmnet-e2e/framework/kvnames"
	"github.com/vmnet-e2e/vmnet-e2e/framework/link"
	"github.com/vmnet-e2e/vmnet-e2e/framework/link/linktest"
	"github.com/vmnet-e2e/vmnet-e2e/framework/probe"
)

// TestMacvtapBindingReachable attaches a macvtap as the macvtap binding does,
// opens its tap device as qemu would, and replies to ARP and ICMP echo on that
// file descriptor in place of the guest. Unlike the bridge binding on macvlan,
// the guest MAC is the macvtap's own, so unicast reaches it.
func TestMacvtapBindingReachable(t *testing.T) {
	linktest.RequireRoot(t)
	topo := linktest.NewTopology(t)
	const mac = "02:00:c0:00:02:0c"

	res, err := AttachMacvtap(topo.Node, topo.Pod, MacvtapSpec{NetworkName: "mynet", Lower: topo.Parent, MACAddress: mac}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range res.Steps {
		t.Logf("step %-60s %v", s.Name, s.Duration)
	}
	if res.PodInterface != kvnames.PodInterface("mynet") || res.GuestMAC.String() != mac || res.MAC.String() != mac {
		t.Errorf("macvtap binding gave %s MAC %s guest MAC %s, want %s with %s", res.PodInterface, res.MAC, res.GuestMAC, kvnames.PodInterface("mynet"), mac)
	}
	table, err := link.Snapshot(linktest.Handle(t, topo.Pod))
	if err != nil {
		t.Fatal(err)
	}
	l, ok := table.Link(res.PodInterface)
	if !ok || l.Kind != "macvtap" || l.MacvlanMode != "bridge" || !l.AdminUp {
		t.Fatalf("pod links:\n%s\nwant %s as an UP macvtap in bridge mode", table, res.PodInterface)
	}
	if ok, _ := link.Exists(linktest.Handle(t, topo.Node), topo.Parent+"Mvp0"); ok {
		t.Errorf("macvtap %sMvp0 still in the node namespace after the move", topo.Parent)
	}

	f, dev, err := OpenMacvtap(topo.Pod, "mynet")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	t.Logf("macvtap device %+v", dev)
	stop := respond(t, f, res.GuestMAC, guestAddr.Addr())
	defer stop()

	ctx := linktest.Context(t)
	arp, err := probe.ARP(ctx, topo.External, topo.ExternalLink, guestAddr.Addr(), probe.ARPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(arp.MAC, res.GuestMAC) {
		t.Errorf("ARP answered by %v, want %s", arp.MACs, res.GuestMAC)
	}
	ping, err := probe.Ping(ctx, topo.External, guestAddr.Addr(), probe.PingOptions{Count: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ping through macvtap: %d/%d, RTTs %v", ping.Received, ping.Sent, ping.RTTs)
	if ping.Received != ping.Sent || ping.Sent != 3 {
		t.Errorf("ping through macvtap: %d of %d replies, want 3 of 3", ping.Received, ping.Sent)
	}

	if err := DetachMacvtap(topo.Pod, "mynet"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := link.Exists(linktest.Handle(t, topo.Pod), res.PodInterface); ok {
		t.Errorf("%s still exists after DEL", res.PodInterface)
	}
}

func TestMacvtapBindingRejectsBadMAC(t *testing.T) {
	linktest.RequireRoot(t)
	topo := linktest.NewTopology(t)
	_, err := AttachMacvtap(topo.Node, topo.Pod, MacvtapSpec{NetworkName: "mynet", Lower: topo.Parent, MACAddress: "03:00:00:00:00:01"}, nil)
	if err == nil {
		t.Fatal("multicast MAC accepted")
	}
	t.Logf("error: %v", err)
	if ok, _ := link.Exists(linktest.Handle(t, topo.Node), topo.Parent+"Mvp0"); ok {
		t.Error("macvtap left in the node namespace after a rejected request")
	}
}

// respond replies to ARP requests for ip and ICMP echo requests to mac on the
// macvtap file, standing in for the guest's virtio NIC.
func respond(t *testing.T, f *os.File, mac net.HardwareAddr, ip netip.Addr) (stop func()) {
	t.Helper()
	// Switch off the virtio-net header macvtap prepends by default, so that
	// reads and writes carry bare Ethernet frames.
	raw, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var ioctlErr error
	if err := raw.Control(func(fd uintptr) {
		ifr, err := unix.NewIfreq("")
		if err != nil {
			ioctlErr = err
			return
		}
		ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI)
		ioctlErr = unix.IoctlIfreq(int(fd), unix.TUNSETIFF, ifr)
	}); err != nil || ioctlErr != nil {
		t.Fatalf("macvtap TUNSETIFF: %v %v", err, ioctlErr)
	}

	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			_ = f.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			n, err := f.Read(buf)
			if err != nil {
				if os.IsTimeout(err) {
					continue
				}
				return
			}
			if reply := answer(buf[:n], mac, ip); reply != nil {
				_, _ = f.Write(reply)
			}
		}
	}()
	return func() { f.Close(); <-done }
}

// answer builds the reply to an ARP request for ip or an ICMP echo request to
// mac, or returns nil.
func answer(frame []byte, mac net.HardwareAddr, ip netip.Addr) []byte {
	if len(frame) < 14 {
		return nil
	}
	dst, src, etherType := frame[0:6], frame[6:12], binary.BigEndian.Uint16(frame[12:14])
	me := ip.As4()
	switch {
	case etherType == 0x0806 && len(frame) >= 42:
		arp := frame[14:]
		if binary.BigEndian.Uint16(arp[6:8]) != 1 || !bytes.Equal(arp[24:28], me[:]) {
			return nil
		}
		out := make([]byte, 42)
		copy(out[0:6], src)
		copy(out[6:12], mac)
		binary.BigEndian.PutUint16(out[12:14], 0x0806)
		copy(out[14:22], arp[0:6])
		binary.BigEndian.PutUint16(out[20:22], 2)
		copy(out[22:28], mac)
		copy(out[28:32], me[:])
		copy(out[32:38], arp[8:14])
		copy(out[38:42], arp[14:18])
		return out

	case etherType == 0x0800 && bytes.Equal(dst, mac) && len(frame) >= 34:
		ipHdr := frame[14:]
		ihl := int(ipHdr[0]&0x0f) * 4
		if ipHdr[9] != 1 || len(ipHdr) < ihl+8 || ipHdr[ihl] != 8 || !bytes.Equal(ipHdr[16:20], me[:]) {
			return nil
		}
		out := append([]byte(nil), frame...)
		copy(out[0:6], src)
		copy(out[6:12], mac)
		oip := out[14:]
		copy(oip[12:16], ipHdr[16:20])
		copy(oip[16:20], ipHdr[12:16])
		total := int(binary.BigEndian.Uint16(oip[2:4]))
		if total > len(oip) || total < ihl+8 {
			return nil
		}
		icmp := oip[ihl:total]
		icmp[0] = 0
		icmp[2], icmp[3] = 0, 0
		binary.BigEndian.PutUint16(icmp[2:4], checksum(icmp))
		return out
	}
	return nil
}

func checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

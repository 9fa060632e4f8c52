package probe

import (
	"net"
	"net/netip"
	"testing"

	"github.com/vmnet-e2e/vmnet-e2e/framework/link"
	"github.com/vmnet-e2e/vmnet-e2e/framework/link/linktest"
)

// TestUnicastCountsWhereFramesGo sends the probe's frames over a veth pair:
// frames for the far end's own MAC are received, frames for another MAC are
// received too (a veth delivers everything) and then dropped by the far end's
// IP layer as PACKET_OTHERHOST, which is the counter the macvlan verdict
// reads.
func TestUnicastCountsWhereFramesGo(t *testing.T) {
	linktest.RequireRoot(t)
	ctx := linktest.Context(t)
	ledger := linktest.Ledger(t)
	sender := linktest.Namespace(t, ledger, "tx")
	receiver := linktest.Namespace(t, ledger, "rx")

	tx := linktest.Handle(t, sender)
	rx := linktest.Handle(t, receiver)
	receiverMAC := net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x77, 0x01}
	if _, err := link.AddVeth(tx, "a0", "b0", receiver, link.WithVethPeerMAC(receiverMAC)); err != nil {
		t.Fatal(err)
	}
	for _, step := range []error{link.SetUp(tx, "a0"), link.SetUp(rx, "b0")} {
		if step != nil {
			t.Fatal(step)
		}
	}

	refs := []CounterRef{{Role: "receiver", Namespace: receiver, Link: "b0"}}
	opts := UnicastOptions{
		Frames:      10,
		Source:      netip.MustParseAddr("192.0.2.1"),
		Destination: netip.MustParseAddr("192.0.2.2"),
	}

	send := func(dst net.HardwareAddr) CounterDelta {
		t.Helper()
		before, err := SnapshotCounters(refs)
		if err != nil {
			t.Fatal(err)
		}
		sent, err := SendUnicast(ctx, sender, "a0", dst, opts)
		if err != nil {
			t.Fatal(err)
		}
		if sent != opts.Frames {
			t.Fatalf("sent %d frames, want %d", sent, opts.Frames)
		}
		after, err := SnapshotCounters(refs)
		if err != nil {
			t.Fatal(err)
		}
		return after.Delta(before)[0]
	}

	own := send(receiverMAC)
	if own.RxPackets < 10 {
		t.Errorf("frames for the receiver's MAC: rx_packets +%d, want at least 10", own.RxPackets)
	}
	if own.RxOtherhostDropped != 0 {
		t.Errorf("frames for the receiver's MAC: rx_otherhost_dropped +%d, want 0", own.RxOtherhostDropped)
	}

	foreign := send(net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x77, 0x99})
	if !foreign.HasOtherhost {
		t.Skip("this kernel does not report rx_otherhost_dropped (before Linux 5.19)")
	}
	if foreign.RxOtherhostDropped != 10 {
		t.Errorf("frames for a foreign MAC: rx_otherhost_dropped +%d, want 10", foreign.RxOtherhostDropped)
	}
}

func TestUDPFrameChecksum(t *testing.T) {
	frame := udpFrame(net.HardwareAddr{2, 0, 0, 0, 0, 2}, net.HardwareAddr{2, 0, 0, 0, 0, 1},
		netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"))
	if got := ipChecksum(frame[14:34]); got != 0 {
		t.Errorf("IPv4 header checksum does not verify: folded sum %#04x, want 0", got)
	}
	if len(frame) != 14+20+8+len(unicastPayload) {
		t.Errorf("frame length %d", len(frame))
	}
}

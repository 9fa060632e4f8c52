// Package probe sends ARP requests, ICMP echo requests and raw unicast frames
// from a namespace outside the pod, and snapshots link counters. A verdict
// uses them to tell whether the guest's MAC replied, whether echoes came back,
// and on which link the frames died.
package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/mdlayher/arp"
	probing "github.com/prometheus-community/pro-bing"

	"github.com/vmnet-e2e/vmnet-e2e/framework/netns"
)

// ARPResult is the outcome of an ARP probe.
type ARPResult struct {
	Target netip.Addr
	// MAC is the first hardware address that replied, nil when none did.
	MAC net.HardwareAddr
	// MACs lists every distinct address that replied within the window.
	MACs []net.HardwareAddr
	// Requests is the number of ARP requests sent.
	Requests int
	// Duration is the time until the first reply, or the whole wait.
	Duration time.Duration
}

// Answered reports whether any host replied.
func (r ARPResult) Answered() bool { return r.MAC != nil }

// ARPOptions bounds an ARP probe.
type ARPOptions struct {
	// Timeout is the whole wait; default 3 s.
	Timeout time.Duration
	// Interval separates retransmitted requests; default 1 s.
	Interval time.Duration
	// Linger keeps listening this long after the first reply to catch a
	// second responder; default 100 ms.
	Linger time.Duration
}

// ARP sends ARP requests for target from iface inside ns, like
// `arping -I IFACE TARGET`, and returns which MAC replied. The packet socket
// is created inside ns. A target that never replies is not an error.
func ARP(ctx context.Context, ns *netns.Namespace, iface string, target netip.Addr, opts ARPOptions) (ARPResult, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = 3 * time.Second
	}
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.Linger <= 0 {
		opts.Linger = 100 * time.Millisecond
	}
	res := ARPResult{Target: target}

	var client *arp.Client
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(iface)
		if err != nil {
			return err
		}
		client, err = arp.Dial(ifi)
		return err
	})
	if err != nil {
		return res, fmt.Errorf("probe: open ARP socket on %s in netns %s: %w", iface, ns.Name, err)
	}
	defer client.Close()

	start := time.Now()
	deadline := start.Add(opts.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	nextSend := start
	seen := map[string]bool{}
	var firstAt time.Time

	for {
		now := time.Now()
		if ctx.Err() != nil {
			return res, fmt.Errorf("probe: ARP for %s from netns %s: %w", target, ns.Name, ctx.Err())
		}
		if !firstAt.IsZero() && now.Sub(firstAt) >= opts.Linger || now.After(deadline) {
			break
		}
		if firstAt.IsZero() && !now.Before(nextSend) {
			if err := client.Request(target); err != nil {
				return res, fmt.Errorf("probe: send ARP request for %s on %s in netns %s: %w", target, iface, ns.Name, err)
			}
			res.Requests++
			nextSend = now.Add(opts.Interval)
		}

		wake := minTime(deadline, nextSend, now.Add(100*time.Millisecond))
		if !firstAt.IsZero() {
			wake = minTime(wake, firstAt.Add(opts.Linger))
		}
		_ = client.SetReadDeadline(wake)
		pkt, _, err := client.Read()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			return res, fmt.Errorf("probe: read ARP on %s in netns %s: %w", iface, ns.Name, err)
		}
		if pkt.Operation != arp.OperationReply || pkt.SenderIP != target {
			continue
		}
		if !seen[pkt.SenderHardwareAddr.String()] {
			seen[pkt.SenderHardwareAddr.String()] = true
			res.MACs = append(res.MACs, pkt.SenderHardwareAddr)
		}
		if firstAt.IsZero() {
			firstAt = time.Now()
			res.MAC = pkt.SenderHardwareAddr
			res.Duration = firstAt.Sub(start)
		}
	}
	if res.MAC == nil {
		res.Duration = time.Since(start)
	}
	return res, nil
}

// PingResult is the outcome of an ICMP echo probe.
type PingResult struct {
	Target   netip.Addr
	Sent     int
	Received int
	RTTs     []time.Duration
	Duration time.Duration
}

// PingOptions bounds an ICMP echo probe.
type PingOptions struct {
	// Count is the number of echo requests; default 3.
	Count int
	// Interval separates requests; default 200 ms.
	Interval time.Duration
	// Timeout bounds the whole probe; default Count*Interval + 1 s.
	Timeout time.Duration
}

// Ping sends ICMP echo requests to target from inside ns over a raw socket,
// like `ping -c COUNT -i INTERVAL -w TIMEOUT TARGET`. Zero replies is not an
// error.
func Ping(ctx context.Context, ns *netns.Namespace, target netip.Addr, opts PingOptions) (PingResult, error) {
	if opts.Count <= 0 {
		opts.Count = 3
	}
	if opts.Interval <= 0 {
		opts.Interval = 200 * time.Millisecond
	}
	if opts.Timeout <= 0 {
		opts.Timeout = time.Duration(opts.Count)*opts.Interval + time.Second
	}
	res := PingResult{Target: target}

	p := probing.New(target.String())
	p.SetPrivileged(true)
	p.SetIPAddr(&net.IPAddr{IP: net.IP(target.AsSlice())})
	p.Count = opts.Count
	p.Interval = opts.Interval
	p.Timeout = opts.Timeout
	p.OnRecv = func(pkt *probing.Packet) { res.RTTs = append(res.RTTs, pkt.Rtt) }

	start := time.Now()
	// RunWithContext opens the raw socket, so it runs inside ns; its
	// receive goroutines keep reading the socket after the thread returns.
	err := ns.Do(func() error { return p.RunWithContext(ctx) })
	res.Duration = time.Since(start)
	stats := p.Statistics()
	res.Sent, res.Received = stats.PacketsSent, stats.PacketsRecv
	if err != nil {
		return res, fmt.Errorf("probe: ping %s from netns %s: %w", target, ns.Name, err)
	}
	if ctx.Err() != nil {
		return res, fmt.Errorf("probe: ping %s from netns %s: %w", target, ns.Name, ctx.Err())
	}
	return res, nil
}

func minTime(ts ...time.Time) time.Time {
	m := ts[0]
	for _, t := range ts[1:] {
		if t.Before(m) {
			m = t
		}
	}
	return m
}

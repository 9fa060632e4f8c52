package link_test

import (
	"fmt"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/vmnet-e2e/vmnet-e2e/framework/link"
	"github.com/vmnet-e2e/vmnet-e2e/framework/link/linktest"
	"github.com/vmnet-e2e/vmnet-e2e/framework/netns"
)

func TestOpenTapSingleAndMultiQueue(t *testing.T) {
	linktest.RequireRoot(t)
	ns := linktest.Namespace(t, linktest.Ledger(t), "opentap")
	h := linktest.Handle(t, ns)

	taps := map[string]*netlink.Tuntap{
		"tapsingle": {LinkAttrs: netlink.LinkAttrs{Name: "tapsingle"}, Mode: netlink.TUNTAP_MODE_TAP, Flags: netlink.TUNTAP_NO_PI},
		"tapmulti": {LinkAttrs: netlink.LinkAttrs{Name: "tapmulti"}, Mode: netlink.TUNTAP_MODE_TAP,
			Flags: netlink.TUNTAP_NO_PI | netlink.TUNTAP_MULTI_QUEUE_DEFAULTS, Queues: 2},
	}
	err := ns.Do(func() error {
		for _, tap := range taps {
			if err := netlink.LinkAdd(tap); err != nil {
				return fmt.Errorf("create %s: %w", tap.Name, err)
			}
			for _, f := range tap.Fds {
				_ = f.Close()
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	for name := range taps {
		t.Run(name, func(t *testing.T) {
			f, err := link.OpenTap(h, name)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, err := link.TapName(f)
			if err != nil {
				t.Fatal(err)
			}
			if got != name {
				t.Errorf("descriptor is attached to %q, want %q", got, name)
			}
		})
	}

	if _, err := link.OpenTap(h, "lo"); err == nil {
		t.Errorf("OpenTap accepted lo, which is not a tap")
	}
}

// TestOpenMacvtapSameIfindex makes a macvtap link with the same ifindex in two
// namespaces, so both have a device named tap<ifindex>, and checks that each
// open reaches its own link.
func TestOpenMacvtapSameIfindex(t *testing.T) {
	linktest.RequireRoot(t)
	ledger := linktest.Ledger(t)

	indexes := map[string]int{}
	namespaces := map[string]*netns.Namespace{}
	for _, name := range []string{"mvtapa", "mvtapb"} {
		ns := linktest.Namespace(t, ledger, name)
		namespaces[name] = ns
		err := ns.Do(func() error {
			// A port-less bridge is the macvtap's parent, so nothing leaves the
			// namespace.
			parent := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "parent0"}}
			if err := netlink.LinkAdd(parent); err != nil {
				return fmt.Errorf("create bridge: %w", err)
			}
			if err := netlink.LinkSetUp(parent); err != nil {
				return err
			}
			mvtap := &netlink.Macvtap{Macvlan: netlink.Macvlan{
				LinkAttrs: netlink.LinkAttrs{Name: name, ParentIndex: parent.Attrs().Index},
				Mode:      netlink.MACVLAN_MODE_BRIDGE,
			}}
			if err := netlink.LinkAdd(mvtap); err != nil {
				return fmt.Errorf("create macvtap: %w", err)
			}
			l, err := netlink.LinkByName(name)
			if err != nil {
				return err
			}
			indexes[name] = l.Attrs().Index
			return netlink.LinkSetUp(l)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if indexes["mvtapa"] != indexes["mvtapb"] {
		t.Logf("ifindexes differ (%v); the test still checks each open", indexes)
	}

	for name, ns := range namespaces {
		f, _, err := link.OpenMacvtap(linktest.Handle(t, ns), name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := link.TapName(f)
		_ = f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got != name {
			t.Errorf("macvtap descriptor from netns %s is attached to %q, want %q", ns.Name, got, name)
		}
	}
}

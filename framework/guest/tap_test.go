package guest

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/vmnet-e2e/vmnet-e2e/framework/cleanup"
	"github.com/vmnet-e2e/vmnet-e2e/framework/netns"
)

func newTestNamespace(t *testing.T, name string) *netns.Namespace {
	t.Helper()
	ns, err := netns.Create(fmt.Sprintf("vmnet-%s-%d", name, os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	h := testLedger.Track(cleanup.Resource{Kind: cleanup.KindNetns, Name: ns.Name}, func(context.Context) error { return ns.Delete() })
	t.Cleanup(func() { _ = h.Release(context.Background()) })
	return ns
}

func TestOpenTapPersistent(t *testing.T) {
	requireRoot(t)
	ns := newTestNamespace(t, "opentap")

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
			f, err := OpenTap(ns, name)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, err := TapName(f)
			if err != nil {
				t.Fatal(err)
			}
			if got != name {
				t.Errorf("descriptor is attached to %q, want %q", got, name)
			}
		})
	}

	if _, err := OpenTap(ns, "lo"); err == nil {
		t.Errorf("OpenTap accepted lo, which is not a tap")
	}
}

// TestOpenMacvtapSameIfindex makes a macvtap link with the same ifindex in two
// namespaces, so both have a device named tap<ifindex>, and checks that each
// open reaches its own link.
func TestOpenMacvtapSameIfindex(t *testing.T) {
	requireRoot(t)

	indexes := map[string]int{}
	namespaces := map[string]*netns.Namespace{}
	for _, name := range []string{"mvtapa", "mvtapb"} {
		ns := newTestNamespace(t, name)
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
			link, err := netlink.LinkByName(name)
			if err != nil {
				return err
			}
			indexes[name] = link.Attrs().Index
			return netlink.LinkSetUp(link)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if indexes["mvtapa"] != indexes["mvtapb"] {
		t.Logf("ifindexes differ (%v); the test still checks each open", indexes)
	}

	for name, ns := range namespaces {
		f, err := OpenMacvtap(ns, name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := TapName(f)
		_ = f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got != name {
			t.Errorf("macvtap descriptor from netns %s is attached to %q, want %q", ns.Name, got, name)
		}
	}
}

package link_test

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vmnet-e2e/vmnet-e2e/framework/link"
	"github.com/vmnet-e2e/vmnet-e2e/framework/link/linktest"
)

func TestMain(m *testing.M) { linktest.Main(m) }

// TestAddDummyReportsKernelSupport records whether this kernel has the dummy
// link type; either answer is valid, but an unsupported kernel must be
// reported through ErrDummyUnsupported.
func TestAddDummyReportsKernelSupport(t *testing.T) {
	linktest.RequireRoot(t)
	ns := linktest.Namespace(t, linktest.Ledger(t), "link")
	h := linktest.Handle(t, ns)
	_, err := link.AddDummy(h, "dummy0")
	switch {
	case err == nil:
		t.Log("kernel supports the dummy link type")
		if ok, _ := link.Exists(h, "dummy0"); !ok {
			t.Error("AddDummy succeeded but dummy0 does not exist")
		}
	case errors.Is(err, link.ErrDummyUnsupported):
		t.Logf("kernel lacks the dummy link type: %v", err)
	default:
		t.Fatalf("AddDummy: %v", err)
	}
}

func TestSysctlIsPerNamespace(t *testing.T) {
	linktest.RequireRoot(t)
	ns := linktest.Namespace(t, linktest.Ledger(t), "link")
	h := linktest.Handle(t, ns)
	root, err := os.ReadFile("/proc/sys/net/ipv4/conf/all/arp_ignore")
	if err != nil {
		t.Fatal(err)
	}

	if err := link.SetArpIgnore(h, "all", 1); err != nil {
		t.Fatal(err)
	}
	got, err := link.ReadSysctl(h, "net.ipv4.conf.all.arp_ignore")
	if err != nil {
		t.Fatal(err)
	}
	if got != "1" {
		t.Errorf("arp_ignore inside %s = %s, want 1", ns.Name, got)
	}
	after, _ := os.ReadFile("/proc/sys/net/ipv4/conf/all/arp_ignore")
	if string(after) != string(root) {
		t.Errorf("root namespace arp_ignore changed from %q to %q", root, after)
	}
	if err := link.WriteSysctl(h, "kernel.hostname", "x"); err == nil {
		t.Error("WriteSysctl accepted a key outside net.*")
	}
}

func TestTapCarrierFollowsOpenFile(t *testing.T) {
	linktest.RequireRoot(t)
	ns := linktest.Namespace(t, linktest.Ledger(t), "link")
	h := linktest.Handle(t, ns)
	if err := link.AddTap(h, "tap0", link.TapOptions{MTU: 1400, Owner: 107, Group: 107}); err != nil {
		t.Fatal(err)
	}
	if err := link.SetUp(h, "tap0"); err != nil {
		t.Fatal(err)
	}
	if state := operState(t, h, "tap0"); state != "DOWN" {
		t.Errorf("tap0 without a reader is %s, want DOWN (no carrier)", state)
	}

	f, err := link.OpenTap(h, "tap0")
	if err != nil {
		t.Fatal(err)
	}
	if state := waitOperState(t, h, "tap0", "UP"); state != "UP" {
		t.Errorf("tap0 with an open file is %s, want UP", state)
	}
	f.Close()
	if state := waitOperState(t, h, "tap0", "DOWN"); state != "DOWN" {
		t.Errorf("tap0 after close is %s, want DOWN", state)
	}
	table, err := link.Snapshot(h)
	if err != nil {
		t.Fatal(err)
	}
	if l, _ := table.Link("tap0"); l.MTU != 1400 || l.Kind != "tap" {
		t.Errorf("tap0 kind %s MTU %d, want tap with MTU 1400", l.Kind, l.MTU)
	}
}

func TestStatisticsReadsOtherhost(t *testing.T) {
	linktest.RequireRoot(t)
	ns := linktest.Namespace(t, linktest.Ledger(t), "link")
	h := linktest.Handle(t, ns)
	s, err := link.ReadStatistics(h, "lo")
	if err != nil {
		t.Fatal(err)
	}
	if !s.HasOtherhost {
		t.Error("IFLA_STATS64 too short for rx_otherhost_dropped on this kernel")
	}
	if _, err := link.ReadStatistics(h, "nosuch0"); err == nil || !strings.Contains(err.Error(), "nosuch0") {
		t.Errorf("ReadStatistics of a missing link = %v, want an error naming it", err)
	}
}

func TestValidateNameAndMAC(t *testing.T) {
	for _, bad := range []string{"", "pod11c844f95e2-nic", "a/b", "a b", ".."} {
		if err := link.ValidateName(bad); err == nil {
			t.Errorf("ValidateName(%q) accepted", bad)
		}
	}
	if err := link.ValidateName("k6t-11c844f95e2"); err != nil {
		t.Errorf("ValidateName(k6t-11c844f95e2): %v", err)
	}
	for _, bad := range []string{"02:00:00:00:00", "zz:00:00:00:00:01", "01:00:5e:00:00:01"} {
		_, err := link.ParseMAC(bad)
		if err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("ParseMAC(%q) = %v, want an error naming the value", bad, err)
		}
	}
}

func operState(t *testing.T, h *link.Handle, name string) string {
	t.Helper()
	table, err := link.Snapshot(h)
	if err != nil {
		t.Fatal(err)
	}
	l, _ := table.Link(name)
	return l.OperState
}

// waitOperState polls every 20 ms for up to 2 s until name reaches want and
// returns the last state seen.
func waitOperState(t *testing.T, h *link.Handle, name, want string) string {
	t.Helper()
	var state string
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if state = operState(t, h, name); state == want {
			break
		}
	}
	return state
}

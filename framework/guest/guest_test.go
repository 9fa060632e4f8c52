package guest

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	firstMAC  = "02:00:c0:00:02:01"
	secondMAC = "02:00:c0:00:02:02"

	earlyTimeout = 4 * time.Minute
	// finalTimeout covers systemd-networkd-wait-online's 120 s stall when a
	// configured interface never appears, plus a TCG boot on a shared host.
	finalTimeout = 6 * time.Minute
)

// TestBootStaticAddressMatchedByMAC boots a guest with two NICs whose
// networkData matches the second NIC by its lowercase MAC, renames it with
// set-name and gives it a documentation address.
func TestBootStaticAddressMatchedByMAC(t *testing.T) {
	requireRoot(t)
	t.Parallel()

	gn := newGuestNetwork(t, "bymac", firstMAC, secondMAC)
	userData := "#cloud-config\nruncmd:\n  - echo vmnet-e2e-user-runcmd-ran > /dev/ttyS0\n"
	networkData := `version: 2
ethernets:
  secondary:
    match:
      macaddress: ` + secondMAC + `
    set-name: net1
    addresses:
      - 192.0.2.10/24
`
	console := &consoleSink{}
	vm := bootGuest(t, "bymac", testVMI("bymac", userData, networkData), gn, bootOptions{console: console})

	early, err := vm.WaitEvidence(testCtx, StageNetwork, earlyTimeout)
	if err != nil {
		t.Fatal(err)
	}
	final, err := vm.WaitEvidence(testCtx, StageFinal, finalTimeout)
	if err != nil {
		t.Fatal(err)
	}

	for _, ev := range []*Evidence{early, final} {
		first := mustInterfaceByMAC(t, ev, firstMAC)
		if first.Name != "enp1s0" {
			t.Errorf("%s evidence: first NIC is named %q, want enp1s0", ev.Stage, first.Name)
		}
		if got := first.IPv4(); len(got) != 0 {
			t.Errorf("%s evidence: first NIC %s has IPv4 %v, want none", ev.Stage, first.Name, got)
		}

		second := mustInterfaceByMAC(t, ev, secondMAC)
		if second.Name != "net1" {
			t.Errorf("%s evidence: second NIC is named %q, want net1 (set-name)", ev.Stage, second.Name)
		}
		if second.PathName != "enp2s0" {
			t.Errorf("%s evidence: second NIC's udev path name is %q, want enp2s0", ev.Stage, second.PathName)
		}
		want := []netip.Prefix{netip.MustParsePrefix("192.0.2.10/24")}
		if got := second.IPv4(); !slices.Equal(got, want) {
			t.Errorf("%s evidence: second NIC %s has IPv4 %v, want %v", ev.Stage, second.Name, got, want)
		}
	}
	if first := mustInterfaceByMAC(t, early, firstMAC); first.PathName != "enp1s0" {
		t.Errorf("first NIC's udev path name is %q, want enp1s0", first.PathName)
	}

	if !strings.Contains(early.Rendered["/etc/netplan/50-cloud-init.yaml"], "192.0.2.10/24") {
		t.Errorf("netplan file rendered by cloud-init lacks the address; rendered files: %v", keys(early.Rendered))
	}
	if !final.CloudInit.Finished {
		t.Errorf("final evidence: cloud-init has not finished (stage %q)", final.CloudInit.CurrentStage)
	}
	if len(final.CloudInit.Errors) != 0 {
		t.Errorf("final evidence: cloud-init errors %q, want none", final.CloudInit.Errors)
	}
	if !strings.Contains(console.String(), "vmnet-e2e-user-runcmd-ran") {
		t.Errorf("the user's runcmd did not run: the harness part must not replace the user's cloud-config")
	}
	t.Logf("early evidence after %s: %s", latency(vm, StageNetwork), early.Summary())
	t.Logf("final evidence after %s: %s", latency(vm, StageFinal), final.Summary())
}

// TestBootKeyNamesNoGuestNIC keys networkData by a name the guest has no NIC
// for (the VMI's network name). cloud-init 22.4.2 renders config for that
// name, nothing matches it, and no error is recorded.
//
// The early evidence decides the test: systemd-networkd-wait-online then
// waits its full 120 s for the missing interface before cloud-init's network
// stage runs. The final evidence is also awaited, to check that cloud-init
// finishes without errors, unless -short is given.
func TestBootKeyNamesNoGuestNIC(t *testing.T) {
	requireRoot(t)
	t.Parallel()

	gn := newGuestNetwork(t, "byname", firstMAC, secondMAC)
	networkData := `version: 2
ethernets:
  mynet:
    addresses:
      - 192.0.2.10/24
`
	vm := bootGuest(t, "byname", testVMI("byname", "", networkData), gn, bootOptions{})

	early, err := vm.WaitEvidence(testCtx, StageNetwork, earlyTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("early evidence after %s: %s", latency(vm, StageNetwork), early.Summary())

	assertNames(t, early)
	assertNoAddress(t, early)
	local, ok := early.CloudInit.Stages["init-local"]
	if !ok || local.Finished == 0 {
		t.Fatalf("early evidence: cloud-init's init-local stage has not finished: %+v", early.CloudInit.Stages)
	}
	if len(local.Errors) != 0 {
		t.Errorf("early evidence: init-local errors %q, want none", local.Errors)
	}
	if !strings.Contains(early.Rendered["/etc/netplan/50-cloud-init.yaml"], "mynet") {
		t.Errorf("netplan file rendered by cloud-init lacks the mynet entry; rendered files: %v", keys(early.Rendered))
	}

	if testing.Short() {
		return
	}
	final, err := vm.WaitEvidence(testCtx, StageFinal, finalTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("final evidence after %s: %s", latency(vm, StageFinal), final.Summary())
	assertNoAddress(t, final)
	if !final.CloudInit.Finished {
		t.Errorf("final evidence: cloud-init has not finished")
	}
	if len(final.CloudInit.Errors) != 0 {
		t.Errorf("final evidence: cloud-init errors %q, want none", final.CloudInit.Errors)
	}
}

// TestBootUppercaseMACFails matches the second NIC by an uppercase MAC with
// set-name. cloud-init 22.4.2 compares the MAC as written with sysfs's
// lowercase MACs (cloudinit/distros/networking.py, wait_for_physdevs), raises
// in init-local and writes no network config at all.
func TestBootUppercaseMACFails(t *testing.T) {
	requireRoot(t)
	t.Parallel()

	gn := newGuestNetwork(t, "upper", firstMAC, secondMAC)
	upper := strings.ToUpper(secondMAC)
	networkData := `version: 2
ethernets:
  secondary:
    match:
      macaddress: "` + upper + `"
    set-name: net1
    addresses:
      - 192.0.2.10/24
`
	vm := bootGuest(t, "upper", testVMI("upper", "", networkData), gn, bootOptions{})

	early, err := vm.WaitEvidence(testCtx, StageNetwork, earlyTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("early evidence after %s: %s", latency(vm, StageNetwork), early.Summary())

	local := early.CloudInit.Stages["init-local"]
	found := false
	for _, e := range local.Errors {
		found = found || strings.Contains(e, "Not all expected physical devices present") && strings.Contains(e, upper)
	}
	if !found {
		t.Errorf("init-local errors %q, want one saying \"Not all expected physical devices present\" with %s", local.Errors, upper)
	}
	assertNames(t, early)
	assertNoAddress(t, early)
	if f, ok := early.Rendered["/etc/netplan/50-cloud-init.yaml"]; ok {
		t.Errorf("cloud-init rendered a netplan file although init-local failed:\n%s", f)
	}
}

// assertNames checks the names udev gives the NICs when no config renames
// them: PCI bus 1 and 2 behind their own root ports.
func assertNames(t *testing.T, ev *Evidence) {
	t.Helper()
	for mac, want := range map[string]string{firstMAC: "enp1s0", secondMAC: "enp2s0"} {
		iface := mustInterfaceByMAC(t, ev, mac)
		if iface.Name != want {
			t.Errorf("%s evidence: NIC %s is named %q, want %s", ev.Stage, mac, iface.Name, want)
		}
	}
}

func assertNoAddress(t *testing.T, ev *Evidence) {
	t.Helper()
	for _, iface := range ev.Interfaces {
		if iface.LinkType == "loopback" {
			continue
		}
		if got := iface.GlobalAddresses(); len(got) != 0 {
			t.Errorf("%s evidence: %s has addresses %v, want none", ev.Stage, iface.Name, got)
		}
	}
}

func mustInterfaceByMAC(t *testing.T, ev *Evidence, mac string) Interface {
	t.Helper()
	hw, err := net.ParseMAC(mac)
	if err != nil {
		t.Fatal(err)
	}
	iface, ok := ev.InterfaceByMAC(hw)
	if !ok {
		t.Fatalf("%s evidence: no interface with MAC %s; interfaces: %s", ev.Stage, mac, ev.Summary())
	}
	return iface
}

func latency(vm *VM, stage Stage) time.Duration {
	d, _ := vm.EvidenceLatency(stage)
	return d.Round(100 * time.Millisecond)
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestBootRenderers repeats the MAC-matched static address with the images
// pinned to the other renderers; each needs its own image build. It runs only
// when VMNET_E2E_RENDERERS lists renderers, for example "networkd,ifupdown".
func TestBootRenderers(t *testing.T) {
	requireRoot(t)
	list := os.Getenv("VMNET_E2E_RENDERERS")
	if list == "" {
		t.Skip("set VMNET_E2E_RENDERERS=networkd,ifupdown to boot the other renderers' images")
	}
	rendered := map[Renderer]string{
		RendererNetplan:  "/etc/netplan/50-cloud-init.yaml",
		RendererNetworkd: "/etc/systemd/network/10-cloud-init-net1.network",
		RendererIfupdown: "/etc/network/interfaces.d/50-cloud-init",
	}
	for _, name := range strings.Split(list, ",") {
		renderer := Renderer(strings.TrimSpace(name))
		t.Run(string(renderer), func(t *testing.T) {
			img, err := EnsureImage(testCtx, DefaultRecipe(renderer), WithImageLogger(testLogger(t)))
			if err != nil {
				t.Fatal(err)
			}
			gn := newGuestNetwork(t, "rend-"+string(renderer), firstMAC, secondMAC)
			networkData := "version: 2\nethernets:\n  secondary:\n    match:\n      macaddress: " + secondMAC + "\n    set-name: net1\n    addresses: [192.0.2.10/24]\n"
			vm := bootGuest(t, "rend-"+string(renderer), testVMI("rend", "", networkData), gn, bootOptions{image: img})

			early, err := vm.WaitEvidence(testCtx, StageNetwork, earlyTimeout)
			if err != nil {
				t.Fatal(err)
			}
			final, err := vm.WaitEvidence(testCtx, StageFinal, finalTimeout)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("early after %s: %s", latency(vm, StageNetwork), early.Summary())
			t.Logf("final after %s: %s", latency(vm, StageFinal), final.Summary())

			if _, ok := final.Rendered[rendered[renderer]]; !ok {
				t.Errorf("cloud-init did not write %s; rendered files: %v", rendered[renderer], keys(final.Rendered))
			}
			second := mustInterfaceByMAC(t, final, secondMAC)
			want := []netip.Prefix{netip.MustParsePrefix("192.0.2.10/24")}
			if second.Name != "net1" || !slices.Equal(second.IPv4(), want) {
				t.Errorf("second NIC %s with IPv4 %v, want net1 with %v", second.Name, second.IPv4(), want)
			}
			if len(final.CloudInit.Errors) != 0 {
				t.Errorf("cloud-init errors %q, want none", final.CloudInit.Errors)
			}
		})
	}
}

// TestWaitEvidenceQEMUExit boots a guest whose root disk cannot be found.
// Debian's initramfs then reboots (panic=1), qemu exits (-no-reboot), and
// WaitEvidence must report the exit at once instead of waiting out its
// timeout.
func TestWaitEvidenceQEMUExit(t *testing.T) {
	requireRoot(t)
	t.Parallel()

	vm, err := Start(testCtx, Config{
		Name:       fmt.Sprintf("noroot-%d", os.Getpid()),
		Image:      testImage(t),
		MemoryMiB:  512,
		Ledger:     testLedger,
		Log:        testLogger(t),
		KernelArgs: []string{"root=/dev/vdz", "rootdelay=3"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = vm.Stop(context.Background()) })

	start := time.Now()
	_, err = vm.WaitEvidence(testCtx, StageNetwork, earlyTimeout)
	if err == nil {
		t.Fatal("WaitEvidence returned evidence from a guest without a root disk")
	}
	if !strings.Contains(err.Error(), "qemu exited") {
		t.Errorf("error %q, want one saying qemu exited", err)
	}
	if !strings.Contains(err.Error(), "/dev/vdz does not exist") {
		t.Errorf("error lacks the initramfs message from the console: %v", err)
	}
	if waited := time.Since(start); waited > 2*time.Minute {
		t.Errorf("WaitEvidence took %s to notice the exit", waited)
	}
}

func TestWaitEvidenceKernelPanic(t *testing.T) {
	nonce := NewNonce()
	vm := &VM{
		cfg:      Config{Name: "panic", Nonce: nonce},
		log:      slog.New(slog.DiscardHandler),
		exited:   make(chan struct{}),
		changed:  make(chan struct{}),
		evidence: map[Stage]*Evidence{},
		firstAt:  map[Stage]time.Duration{},
		lines:    newLineRing(40),
		started:  time.Now(),
	}
	parser := NewEvidenceParser(nonce)
	vm.handleLine(parser, "[    2.345678] VFS: Cannot open root device \"vdz\" or unknown-block(0,0): error -6")
	vm.handleLine(parser, "[    2.356789] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)")

	_, err := vm.WaitEvidence(context.Background(), StageNetwork, time.Minute)
	if err == nil || !strings.Contains(err.Error(), "kernel panic") || !strings.Contains(err.Error(), "Unable to mount root fs") {
		t.Errorf("error %v, want a kernel panic error quoting the panic line", err)
	}
}

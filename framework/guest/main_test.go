package guest

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/vmnet-e2e/vmnet-e2e/framework/cleanup"
	"github.com/vmnet-e2e/vmnet-e2e/framework/cloudinit"
	"github.com/vmnet-e2e/vmnet-e2e/framework/link"
	"github.com/vmnet-e2e/vmnet-e2e/framework/netns"
)

// testCtx is cancelled on SIGINT or SIGTERM, so that every wait returns and
// the tests' cleanups and the ledger remove what the run created.
var (
	testCtx    context.Context
	testLedger *cleanup.Ledger
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	ctx, stop := cleanup.NotifyContext(context.Background())
	defer stop()
	testCtx = ctx

	if os.Geteuid() == 0 {
		log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
		if _, err := cleanup.Reap(ctx, log); err != nil {
			fmt.Fprintf(os.Stderr, "removing what earlier runs left failed: %v\n", err)
		}
		ledger, err := cleanup.NewLedger(fmt.Sprintf("guest-test-%d", os.Getpid()), log)
		if err != nil {
			fmt.Fprintf(os.Stderr, "cannot start the cleanup ledger: %v\n", err)
			return 1
		}
		testLedger = ledger
		defer func() {
			closeCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := ledger.Close(closeCtx); err != nil {
				fmt.Fprintf(os.Stderr, "cleanup after the tests failed: %v\n", err)
			}
		}()
	}
	return m.Run()
}

func requireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("booting a guest needs root: network namespaces, taps and the image build")
	}
}

func testLogger(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

var (
	imageOnce sync.Once
	image     *Image
	imageErr  error
)

// testImage returns the default netplan image, building it on first use.
func testImage(tb testing.TB) *Image {
	tb.Helper()
	imageOnce.Do(func() {
		log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
		ctx, cancel := context.WithTimeout(testCtx, 20*time.Minute)
		defer cancel()
		image, imageErr = EnsureImage(ctx, DefaultRecipe(RendererNetplan), WithImageLogger(log))
	})
	if imageErr != nil {
		tb.Fatalf("guest image: %v", imageErr)
	}
	return image
}

// guestNetwork is a network namespace with one unbridged tap per guest NIC.
// No link in it has an address or leads out of it.
type guestNetwork struct {
	ns   *netns.Namespace
	taps []*os.File
	macs []net.HardwareAddr
}

func newGuestNetwork(tb testing.TB, name string, macs ...string) *guestNetwork {
	tb.Helper()
	ns, err := netns.Create(fmt.Sprintf("vmnet-%s-%d", name, os.Getpid()))
	if err != nil {
		tb.Fatal(err)
	}
	h := testLedger.Track(cleanup.Resource{Kind: cleanup.KindNetns, Name: ns.Name}, func(context.Context) error { return ns.Delete() })
	tb.Cleanup(func() { _ = h.Release(context.Background()) })

	gn := &guestNetwork{ns: ns}
	for i, m := range macs {
		mac, err := net.ParseMAC(m)
		if err != nil {
			tb.Fatal(err)
		}
		tapName := fmt.Sprintf("tap%d", i)
		err = ns.Do(func() error {
			tap := &netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: tapName}, Mode: netlink.TUNTAP_MODE_TAP, Flags: netlink.TUNTAP_NO_PI}
			if err := netlink.LinkAdd(tap); err != nil {
				return fmt.Errorf("create tap %s: %w", tapName, err)
			}
			return netlink.LinkSetUp(tap)
		})
		if err != nil {
			tb.Fatal(err)
		}
		h, err := link.NewHandle(ns)
		if err != nil {
			tb.Fatal(err)
		}
		file, err := link.OpenTap(h, tapName)
		h.Close()
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { _ = file.Close() })
		gn.taps = append(gn.taps, file)
		gn.macs = append(gn.macs, mac)
	}
	return gn
}

func (gn *guestNetwork) nics() []NIC {
	nics := make([]NIC, len(gn.taps))
	for i := range gn.taps {
		nics[i] = NIC{Tap: gn.taps[i], MAC: gn.macs[i]}
	}
	return nics
}

// testVMI returns a VMI with a cloudInitNoCloud volume, as a user writes it.
func testVMI(name, userData, networkData string) *kubevirtv1.VirtualMachineInstance {
	return &kubevirtv1.VirtualMachineInstance{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: kubevirtv1.VirtualMachineInstanceSpec{
			Domain: kubevirtv1.DomainSpec{
				Firmware: &kubevirtv1.Firmware{UUID: "5d307ca9-b3ef-428c-8861-06e72d69f223"},
			},
			Volumes: []kubevirtv1.Volume{{
				Name: "cloudinitdisk",
				VolumeSource: kubevirtv1.VolumeSource{CloudInitNoCloud: &kubevirtv1.CloudInitNoCloudSource{
					UserData:    userData,
					NetworkData: networkData,
				}},
			}},
		},
	}
}

type bootOptions struct {
	cpus    int
	console *consoleSink
	// image defaults to the netplan image.
	image *Image
}

// bootGuest writes the VMI's seed with the final-evidence harness part and
// boots the guest on the network's taps. The guest is stopped when the test
// ends.
func bootGuest(tb testing.TB, name string, vmi *kubevirtv1.VirtualMachineInstance, gn *guestNetwork, opts bootOptions) *VM {
	tb.Helper()
	img := opts.image
	if img == nil {
		img = testImage(tb)
	}
	log := testLogger(tb)
	nonce := NewNonce()

	dir := tb.TempDir()
	seed, err := cloudinit.WriteSeed(testCtx, dir, vmi, cloudinit.WithHarnessScript(FinalEvidenceScript(nonce)))
	if err != nil {
		tb.Fatal(err)
	}

	console := opts.console
	if console == nil {
		console = &consoleSink{}
	}
	vm, err := Start(testCtx, Config{
		Name:      fmt.Sprintf("%s-%d", name, os.Getpid()),
		Image:     img,
		Seed:      seed,
		NICs:      gn.nics(),
		CPUs:      opts.cpus,
		MemoryMiB: 768,
		Console:   console,
		Ledger:    testLedger,
		Log:       log,
		Nonce:     nonce,
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := vm.Stop(ctx); err != nil {
			tb.Errorf("stop guest: %v", err)
		}
		if dir := os.Getenv("VMNET_E2E_KEEP_CONSOLE"); dir != "" {
			data, _ := os.ReadFile(vm.ConsolePath())
			_ = os.WriteFile(filepath.Join(dir, vm.Name()+".console.log"), data, 0o644)
		}
		if tb.Failed() {
			tb.Logf("guest console (%s), last lines:\n%s", vm.ConsolePath(), strings.Join(vm.LastConsoleLines(), "\n"))
		}
	})
	return vm
}

// consoleSink collects the console output for assertions on user-data side
// effects; the console goroutine writes while the test reads.
type consoleSink struct {
	mu   sync.Mutex
	text strings.Builder
}

func (c *consoleSink) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.text.Write(p)
}

func (c *consoleSink) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.text.String()
}

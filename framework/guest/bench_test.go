package guest

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Run with: go test -run '^$' -bench . -benchtime 1x ./framework/guest
//
// VMNET_E2E_BENCH_REBUILD=1 makes BenchmarkImage build the image from scratch
// into a temporary cache; otherwise it measures loading the cached image.
// VMNET_E2E_BENCH_MAX_GUESTS (default 4) is the largest number of guests
// BenchmarkConcurrentBoots starts at once; each TCG guest keeps about one
// core busy while it boots.

func BenchmarkImage(b *testing.B) {
	requireRoot(b)
	recipe := DefaultRecipe(RendererNetplan)

	if os.Getenv("VMNET_E2E_BENCH_REBUILD") == "1" {
		for b.Loop() {
			img, err := EnsureImage(testCtx, recipe, WithCacheDir(b.TempDir()), WithImageLogger(testLogger(b)))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(img.Manifest.BuildSeconds, "build-s")
			b.ReportMetric(float64(img.Manifest.RootfsBytes)/(1<<20), "rootfs-MiB")
			b.ReportMetric(float64(img.Manifest.DiskBytes)/(1<<20), "qcow2-MiB")
		}
		return
	}

	testImage(b) // builds once if the cache is empty; not measured
	b.ResetTimer()
	for b.Loop() {
		if _, err := EnsureImage(testCtx, recipe); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBoot measures the time from qemu's start to the early and the
// final evidence of a guest with one NIC and a static address matched by MAC.
func BenchmarkBoot(b *testing.B) {
	requireRoot(b)
	testImage(b)
	for _, cpus := range []int{1, 2} {
		b.Run(fmt.Sprintf("smp=%d", cpus), func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				early, final := benchBoot(b, fmt.Sprintf("bench-smp%d-%d", cpus, i), cpus)
				b.ReportMetric(early.Seconds(), "early-s")
				b.ReportMetric(final.Seconds(), "final-s")
			}
		})
	}
}

// BenchmarkConcurrentBoots starts 1, 2, ... guests with one vCPU each at
// once and reports the slowest time to final evidence, and whether every
// guest booted within two minutes.
func BenchmarkConcurrentBoots(b *testing.B) {
	requireRoot(b)
	testImage(b)
	// Four is one past what two cores held under two minutes each when
	// measured (three at 106 s, four at 152 s), so the run shows the limit.
	maxGuests := 4
	if v, err := strconv.Atoi(os.Getenv("VMNET_E2E_BENCH_MAX_GUESTS")); err == nil && v > 0 {
		maxGuests = v
	}
	for n := 1; n <= maxGuests; n++ {
		b.Run(fmt.Sprintf("guests=%d", n), func(b *testing.B) {
			for iter := 0; b.Loop(); iter++ {
				var wg sync.WaitGroup
				slowest := make([]time.Duration, n)
				for g := 0; g < n; g++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						_, final := benchBoot(b, fmt.Sprintf("bench-conc%d-%d-%d", n, iter, g), 1)
						slowest[g] = final
					}()
				}
				wg.Wait()
				worst := time.Duration(0)
				for _, d := range slowest {
					worst = max(worst, d)
				}
				underTwoMinutes := 0.0
				if worst > 0 && worst < 2*time.Minute {
					underTwoMinutes = 1
				}
				b.ReportMetric(worst.Seconds(), "slowest-final-s")
				b.ReportMetric(underTwoMinutes, "all-under-2min")
			}
		})
	}
}

// benchBoot boots one guest, waits for both evidences and stops it. It
// returns the time from qemu's start to each.
func benchBoot(b *testing.B, name string, cpus int) (early, final time.Duration) {
	mac := "02:00:c0:00:02:0a"
	gn := newGuestNetwork(b, name, mac)
	networkData := "version: 2\nethernets:\n  eth0:\n    match:\n      macaddress: " + mac + "\n    set-name: eth0\n    addresses: [192.0.2.10/24]\n"
	vm := bootGuest(b, name, testVMI(name, "", networkData), gn, bootOptions{cpus: cpus})

	if _, err := vm.WaitEvidence(testCtx, StageNetwork, earlyTimeout); err != nil {
		b.Error(err)
		return 0, 0
	}
	if _, err := vm.WaitEvidence(testCtx, StageFinal, finalTimeout); err != nil {
		b.Error(err)
		return 0, 0
	}
	early, _ = vm.EvidenceLatency(StageNetwork)
	final, _ = vm.EvidenceLatency(StageFinal)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = vm.Stop(ctx)
	return early, final
}

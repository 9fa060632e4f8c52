package kind

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/plan.golden from the current plan")

const goldenPlan = "testdata/plan.golden"

// goldenOptions fix everything that would otherwise come from this machine.
func goldenOptions() []Option {
	return []Option{
		WithRunID("golden"), WithArch("amd64"), WithCacheDir("/cache/vmnet-e2e/kind"),
		WithWorkers(2), WithUserDataJoiner(markerJoiner{}),
	}
}

// TestPlanGolden compares the dry-run plan for the two test scenarios with
// testdata/plan.golden. After an intended change (a version bump in
// clusters/versions.yaml, a new step), review the diff and run
// `go test ./clusters/kind -run TestPlanGolden -update`.
func TestPlanGolden(t *testing.T) {
	plan, err := NewPlan(loadVersionsFile(t), loadTestScenarios(t), goldenOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if err := plan.Write(&got); err != nil {
		t.Fatal(err)
	}

	if *update {
		if err := os.WriteFile(goldenPlan, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(goldenPlan)
	if err != nil {
		t.Fatalf("%v (create it with -update)", err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("plan differs from %s; review and rerun with -update if intended\n%s", goldenPlan, lineDiff(string(want), got.String()))
	}
}

// lineDiff lists the first lines where want and got differ.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < max(len(w), len(g)) && shown < 10; i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n  want: %s\n  got:  %s\n", i+1, wl, gl)
			shown++
		}
	}
	return b.String()
}

// TestPlanIsDeterministic guards the golden file against map order.
func TestPlanIsDeterministic(t *testing.T) {
	var first string
	for i := range 5 {
		plan, err := NewPlan(loadVersionsFile(t), loadTestScenarios(t), goldenOptions()...)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := plan.Write(&out); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = out.String()
		} else if out.String() != first {
			t.Fatalf("plan %d differs from the first:\n%s", i, lineDiff(first, out.String()))
		}
	}
}

// TestPlanContents checks the facts the plan must state, independently of
// the golden file's layout.
func TestPlanContents(t *testing.T) {
	v := loadVersionsFile(t)
	plan, err := NewPlan(v, loadTestScenarios(t), goldenOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := plan.Write(&out); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{
		v.Kind.NodeImage,
		"propagation: HostToContainer",
		"ip netns add vmnet-kind-golden-hub",
		"nsenter --net=/proc/$NODE_PID/ns/net ip link add br-vmnet type bridge",
		"nsenter --net=/proc/$NODE_PID/ns/net ip link add br-vtap type bridge",
		v.CNIPluginsURL("amd64"),
		v.CNIPlugins.SHA256["amd64"],
		"install macvlan from the archive",
		v.MultusManifestURL(), v.Multus.ManifestSHA256, v.MultusImage(),
		v.MacvtapManifestURL(), v.MacvtapCNI.ManifestSHA256, v.MacvtapImage(),
		`DP_MACVTAP_CONF: '[{"name":"br-vtap","lowerDevice":"br-vtap","mode":"bridge","capacity":50}]'`,
		v.OperatorURL(),
		"- ExternalNetResourceInjection",
		"domainAttachmentType: tap",
		"useEmulation: true",
		"probe 192.0.2.10 on network \"net1\" (CNI macvlan, bridge binding, pod link pod",
		"probe 198.51.100.20 on network \"dataplane\" (CNI macvtap, macvtap binding",
		"from 198.51.100.254/24",
		evidenceMarker,
		"fieldValidation=Strict",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("plan lacks %q", want)
		}
	}

	// The plan never downloads: it names the cache, and nothing is there.
	if _, err := os.Stat("/cache/vmnet-e2e/kind"); err == nil {
		t.Error("the plan wrote into its cache directory")
	}
}

func TestPlanWithoutMacvtapScenario(t *testing.T) {
	plan, err := NewPlan(loadVersionsFile(t), loadTestScenarios(t)[:1], goldenOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	if plan.Macvtap != nil || plan.MacvtapConfigMap != nil {
		t.Error("macvtap-cni planned without a macvtap NAD")
	}
	kv := decodeKubeVirtStrict(t, plan.KubeVirtCR)
	if dev := kv.Spec.Configuration.DeveloperConfiguration; dev == nil || len(dev.DisabledFeatureGates) != 0 {
		t.Errorf("developerConfiguration = %+v, want emulation only", dev)
	}
}

func TestPlanNotesBrokenEmulation(t *testing.T) {
	v := loadVersionsFile(t)
	v.KubeVirt.Version = "v1.8.0"
	plan, err := NewPlan(v, nil, goldenOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Notes) != 1 || !strings.Contains(plan.Notes[0], "v1.8.1") {
		t.Errorf("notes = %v, want one about v1.8.0 under emulation", plan.Notes)
	}
	plan, err = NewPlan(v, nil, append(goldenOptions(), WithEmulation(EmulationOff))...)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Notes) != 0 {
		t.Errorf("notes with emulation off = %v, want none", plan.Notes)
	}
}

func TestProviderDryRunWritesPlan(t *testing.T) {
	var out bytes.Buffer
	p, err := New(append(goldenOptions(), WithVersions(loadVersionsFile(t)), WithScenarios(loadTestScenarios(t)), WithDryRun(&out))...)
	if err != nil {
		t.Fatal(err)
	}
	data, err := p.Prepare(t.Context())
	if err != nil {
		t.Fatalf("dry-run Prepare: %v", err)
	}
	want, err := os.ReadFile(goldenPlan)
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != string(want) {
		t.Errorf("dry-run Prepare wrote another plan than NewPlan:\n%s", lineDiff(string(want), out.String()))
	}
	if reason := p.Skip(loadScenario(t, macvlanScenario)); !strings.Contains(reason, "dry run") {
		t.Errorf("Skip in a dry run = %q, want a dry-run reason", reason)
	}
	if err := p.Attach(t.Context(), data); err != nil {
		t.Errorf("Attach with dry-run data: %v", err)
	}
	if err := p.Teardown(t.Context()); err != nil {
		t.Errorf("Teardown after a dry run: %v", err)
	}
}

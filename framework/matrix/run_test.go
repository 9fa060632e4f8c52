package matrix

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunCommandLine(t *testing.T) {
	m, scenarios := loadRepository(t)
	m.VersionSets = append(m.VersionSets, VersionSet{Name: "kubevirt-old", KubeVirt: &Component{Version: "v1.8.4"}})
	m.Cells = append(m.Cells, Cell{Name: "kind-test", Provider: "kind", Versions: "kubevirt-old", LabelFilter: "cni: containsAny {macvlan} && !strategy:ipam-dhcp"})

	run, err := m.NewRun("kind-test", scenarios, "out")
	if err != nil {
		t.Fatal(err)
	}
	want := "env VMNET_E2E_KUBEVIRT_VERSION=v1.8.4 make e2e-kind 'LABEL_FILTER=cni: containsAny {macvlan} && !strategy:ipam-dhcp' ARTIFACTS=out/kind-test REPORT=out/kind-test/report.json"
	if got := run.CommandLine("make"); got != want {
		t.Errorf("command line\n got %s\nwant %s", got, want)
	}
	if run.RecordPath() != "out/kind-test/cell.json" {
		t.Errorf("record path %s, want out/kind-test/cell.json", run.RecordPath())
	}
	if len(run.GuestImages) != 1 || run.GuestImages[0] != "quay.io/containerdisks/debian:12" {
		t.Errorf("guest images %v, want the Debian containerDisk the macvlan scenarios boot", run.GuestImages)
	}

	for _, root := range []string{"/tmp/artifacts", "../artifacts"} {
		if _, err := m.NewRun("kind-test", scenarios, root); err == nil {
			t.Errorf("artifacts root %s accepted; the Makefile prefixes it with $(CURDIR)", root)
		}
	}
	if _, err := m.NewRun("no-such-cell", scenarios, ""); err == nil || !strings.Contains(err.Error(), "local-smoke") {
		t.Errorf("unknown cell: error %v, want one listing the cells", err)
	}
}

// testMakefile mirrors how the project's Makefile hands LABEL_FILTER to
// Ginkgo (in single quotes) and prints what the recipe received.
const testMakefile = `e2e-kind:
	@printf 'filter=%s\n' '$(LABEL_FILTER)'
	@printf 'artifacts=%s\n' '$(ARTIFACTS)'
	@printf 'report=%s\n' '$(REPORT)'
	@printf 'kubevirt=%s\n' "$$VMNET_E2E_KUBEVIRT_VERSION"
	@printf 'multus-sha=%s\n' "$$VMNET_E2E_MULTUS_MANIFEST_SHA256"
`

func TestRunCommandThroughMake(t *testing.T) {
	makeProgram, err := exec.LookPath("make")
	if err != nil {
		t.Skip("make is not installed: " + err.Error())
	}
	m, scenarios := loadRepository(t)
	sha := strings.Repeat("ab", 32)
	m.VersionSets = append(m.VersionSets, VersionSet{Name: "mixed", KubeVirt: &Component{Version: "v1.8.4"}, Multus: &Component{Version: "v4.2.4", SHA256: sha}})
	filter := "strategy: containsAny {ip-address-field, cloud-init-nic-name} && !cni: containsAny {macvtap}"
	m.Cells = append(m.Cells, Cell{Name: "kind-make", Provider: "kind", Versions: "mixed", LabelFilter: filter})

	run, err := m.NewRun("kind-make", scenarios, "")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Makefile"), []byte(testMakefile), 0o644); err != nil {
		t.Fatal(err)
	}

	cmd := run.Command(context.Background(), makeProgram)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("make: %v\n%s", err, out.String())
	}

	for _, want := range []string{
		"filter=" + filter,
		"artifacts=artifacts/kind-make",
		"report=artifacts/kind-make/report.json",
		"kubevirt=v1.8.4",
		"multus-sha=" + sha,
	} {
		if !strings.Contains(out.String(), want+"\n") {
			t.Errorf("make output lacks %q:\n%s", want, out.String())
		}
	}

	// The printed command line, run by a shell, must do the same.
	shell := exec.Command("sh", "-c", run.CommandLine(makeProgram))
	shell.Dir = dir
	printed, err := shell.CombinedOutput()
	if err != nil {
		t.Fatalf("sh -c %q: %v\n%s", run.CommandLine(makeProgram), err, printed)
	}
	if string(printed) != out.String() {
		t.Errorf("the printed command line gives\n%s\nthe command gives\n%s", printed, out.String())
	}
}

func TestRecordPins(t *testing.T) {
	m, scenarios := loadRepository(t)
	pinned := "sha256:" + strings.Repeat("1", 64)
	m.GuestImages[0].Digest = pinned
	m.Cells = append(m.Cells, Cell{Name: "kind-record", Provider: "kind", Versions: "pinned", LabelFilter: "cni:macvlan && !strategy:ipam-dhcp"})
	run, err := m.NewRun("kind-record", scenarios, "")
	if err != nil {
		t.Fatal(err)
	}

	rec := m.NewRecord(run)
	byImage := map[string]ImageRecord{}
	for _, img := range rec.Images {
		byImage[img.Image] = img
	}
	node, nodeDigest, _ := strings.Cut(run.Versions.Kind.NodeImage, "@")
	if byImage[node].Pinned != nodeDigest {
		t.Errorf("node image %s pinned to %q, want the digest from clusters/versions.yaml %q", node, byImage[node].Pinned, nodeDigest)
	}
	if _, ok := byImage[run.Versions.MultusImage()]; !ok {
		t.Errorf("record lacks the Multus image %s: %+v", run.Versions.MultusImage(), rec.Images)
	}
	if byImage["quay.io/containerdisks/debian:12"].Pinned != pinned {
		t.Errorf("guest image not pinned to the matrix digest: %+v", rec.Images)
	}

	moved := "sha256:" + strings.Repeat("2", 64)
	rec.ResolveDigests(context.Background(), func(_ context.Context, image string) (string, error) {
		switch image {
		case "quay.io/containerdisks/debian:12":
			return moved, nil
		case node:
			return nodeDigest, nil
		}
		return "", os.ErrNotExist
	})
	err = rec.CheckPins()
	if err == nil || !strings.Contains(err.Error(), "quay.io/containerdisks/debian:12 is pinned to "+pinned+" but the tag now resolves to "+moved) {
		t.Errorf("moved tag: error %v, want one naming the image and both digests", err)
	}
	if strings.Contains(err.Error(), node) {
		t.Errorf("the node image resolved to its pinned digest but is reported: %v", err)
	}
	for _, img := range rec.Images {
		if img.Image == run.Versions.MultusImage() && img.Error == "" {
			t.Errorf("a failed resolution is not recorded: %+v", img)
		}
	}

	path := filepath.Join(t.TempDir(), "cell", "cell.json")
	if err := rec.Write(path); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"cell": "kind-record"`, `"resolved": "` + moved + `"`, `"versionSet": "pinned"`, `"labelFilter": "cni:macvlan && !strategy:ipam-dhcp"`} {
		if !bytes.Contains(data, []byte(want)) {
			t.Errorf("cell.json lacks %s:\n%s", want, data)
		}
	}
}

func TestRecordHost(t *testing.T) {
	if _, err := exec.LookPath("dpkg-query"); err != nil {
		t.Skip("not a Debian-based host: " + err.Error())
	}
	rec := &Record{}
	rec.RecordHost(context.Background())
	if rec.Host == nil || rec.Host.Kernel == "" {
		t.Fatalf("host record %+v has no kernel release", rec.Host)
	}
	if len(rec.Host.GuestRecipe) == 0 {
		t.Error("host record has no guest recipe hash")
	}
	for _, pkg := range hostPackages {
		status, err := exec.Command("dpkg-query", "-W", "-f", "${Version}", pkg).Output()
		installed := err == nil && len(status) > 0
		if got := rec.Host.Packages[pkg]; installed && got != string(status) {
			t.Errorf("package %s recorded as %q, dpkg-query says %q", pkg, got, status)
		}
		if !installed && rec.Host.Error == "" {
			t.Errorf("package %s is not installed but the record has no error", pkg)
		}
	}
}

func TestParseImagetoolsDigest(t *testing.T) {
	// The layout of `docker buildx imagetools inspect` for a manifest list,
	// as Docker's documentation shows it.
	out := `Name:      docker.io/library/alpine:latest
MediaType: application/vnd.docker.distribution.manifest.list.v2+json
Digest:    sha256:21a3deaa0d32a8057914f36584b5288d2e5ecc984380bc0118285c70fa8c9300

Manifests:
  Name:      docker.io/library/alpine:latest@sha256:e7d88de73db3d3fd9b2d63aa7f447a10fd0220b7cbf39803c803f2af9ba256b3
  MediaType: application/vnd.docker.distribution.manifest.v2+json
  Platform:  linux/amd64
`
	d, err := parseImagetoolsDigest(out)
	if err != nil {
		t.Fatal(err)
	}
	if d != "sha256:21a3deaa0d32a8057914f36584b5288d2e5ecc984380bc0118285c70fa8c9300" {
		t.Errorf("digest %s, want the manifest list's, not a platform manifest's", d)
	}
	if _, err := parseImagetoolsDigest("error: not found\n"); err == nil {
		t.Error("output without a Digest line parsed")
	}
}

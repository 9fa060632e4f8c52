package matrix

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vmnet-e2e/vmnet-e2e/clusters"
	"github.com/vmnet-e2e/vmnet-e2e/clusters/kind"
	"github.com/vmnet-e2e/vmnet-e2e/framework/report"
	"github.com/vmnet-e2e/vmnet-e2e/framework/scenario"
)

// repoRoot is the repository root seen from this package's directory, where
// go test runs.
var repoRoot = filepath.Join("..", "..")

func loadRepository(t *testing.T) (*Matrix, []*scenario.Scenario) {
	t.Helper()
	m, err := Load(filepath.Join(repoRoot, DefaultPath))
	if err != nil {
		t.Fatal(err)
	}
	scenarios, err := scenario.LoadDir(filepath.Join(repoRoot, "scenarios"))
	if err != nil {
		t.Fatal(err)
	}
	return m, scenarios
}

func TestRepositoryMatrixFitsScenarios(t *testing.T) {
	m, scenarios := loadRepository(t)
	if err := m.CheckScenarios(scenarios); err != nil {
		t.Fatalf("%s does not fit scenarios/: %v", DefaultPath, err)
	}

	for _, c := range m.Cells {
		run, err := m.NewRun(c.Name, scenarios, "")
		if err != nil {
			t.Errorf("cell %s: %v", c.Name, err)
			continue
		}
		if len(run.Scenarios) == 0 {
			t.Errorf("cell %s selects no scenario", c.Name)
		}
		if c.Provider == "kind" && run.Versions == nil {
			t.Errorf("kind cell %s has no resolved versions", c.Name)
		}
		if c.Provider == "local" && (run.Versions != nil || len(run.Env) != 0) {
			t.Errorf("local cell %s has version overrides %v", c.Name, run.Env)
		}
	}
}

func TestSmokeCellSelection(t *testing.T) {
	m, scenarios := loadRepository(t)
	run, err := m.NewRun("local-smoke", scenarios, "")
	if err != nil {
		t.Fatal(err)
	}

	// The filter, restated on the fields the report records.
	for _, s := range Specs(scenarios) {
		r := report.NewResult(s, "")
		want := (r.Strategy == "ip-address-field" || r.Strategy == "cloud-init-nic-name") && r.CNI != "macvtap"
		if got := slices.Contains(run.Scenarios, s.Name); got != want {
			t.Errorf("scenario %s (cni %q, strategy %q): selected %v, want %v", s.Name, r.CNI, r.Strategy, got, want)
		}
	}
}

func TestParseUnknownFields(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		want []string
	}{
		{
			name: "misspelt cell field",
			yaml: minimalMatrix + "\n  - name: two\n    provider: local\n    lableFilter: \"cni:macvlan\"\n",
			want: []string{`unknown field "cells[1].lableFilter"`, `did you mean "labelFilter"?`},
		},
		{
			name: "misspelt top-level section",
			yaml: strings.Replace(minimalMatrix, "cells:", "cell:", 1),
			want: []string{`unknown field "cell"`, `did you mean "cells"?`},
		},
		{
			name: "nested component field",
			yaml: minimalMatrix + "versionSets:\n  - name: x\n    kubevirt:\n      verison: v1.8.4\n",
			want: []string{`unknown field "versionSets[0].kubevirt.verison"`, `did you mean "version"?`},
		},
		{
			name: "unrelated field",
			yaml: minimalMatrix + "owner: someone\n",
			want: []string{`unknown field "owner": remove it or use one of axes, cells, guestImages, versionSets`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("test.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatal("Parse accepted an unknown field")
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
}

const minimalMatrix = `axes:
  cni: [macvlan]
  binding: [bridge]
  strategy: [ipam-dhcp]
cells:
  - name: one
    provider: local
    labelFilter: ""
`

func TestParseTypeError(t *testing.T) {
	_, err := Parse("test.yaml", []byte(strings.Replace(minimalMatrix, `labelFilter: ""`, "nightly: maybe", 1)))
	if err == nil || !strings.Contains(err.Error(), `"cells.nightly"`) || !strings.Contains(err.Error(), "boolean") {
		t.Errorf("error %v, want one naming cells.nightly and a boolean", err)
	}
}

func TestParseMinimal(t *testing.T) {
	m, err := Parse("test.yaml", []byte(minimalMatrix))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Cells) != 1 || m.Cells[0].Name != "one" || m.Cells[0].Provider != "local" {
		t.Errorf("cells %+v, want one local cell called one", m.Cells)
	}
}

func TestValidateRejects(t *testing.T) {
	valid := func() *Matrix {
		return &Matrix{
			Axes:        Axes{CNI: []string{"macvlan", "bridge"}, Binding: []string{"bridge"}, Strategy: []string{"ipam-dhcp"}},
			GuestImages: []GuestImage{{Image: "quay.io/containerdisks/debian:12"}},
			VersionSets: []VersionSet{{Name: "pinned"}},
			Cells: []Cell{
				{Name: "local-all", Provider: "local"},
				{Name: "kind-pinned", Provider: "kind", Versions: "pinned", LabelFilter: "cni:macvlan"},
			},
		}
	}
	if err := valid().Validate(); err != nil {
		t.Fatalf("the valid matrix is rejected: %v", err)
	}

	for _, tc := range []struct {
		name   string
		change func(m *Matrix)
		want   string
	}{
		{"duplicate cell", func(m *Matrix) {
			m.Cells[1].Name = "local-all"
			m.Cells[1].Provider = "local"
			m.Cells[1].Versions = ""
		}, `"local-all" is used twice`},
		{"cell name with space", func(m *Matrix) { m.Cells[0].Name = "local all" }, `cells[0].name "local all" is not valid`},
		{"unknown provider", func(m *Matrix) { m.Cells[0].Provider = "minikube" }, `provider "minikube" is not a provider`},
		{"kind cell without versions", func(m *Matrix) { m.Cells[1].Versions = "" }, "has no versions"},
		{"unknown version set", func(m *Matrix) { m.Cells[1].Versions = "latest" }, `versions "latest" is not a version set`},
		{"local cell with versions", func(m *Matrix) { m.Cells[0].Versions = "pinned" }, "the local provider takes no version overrides"},
		{"filter syntax", func(m *Matrix) { m.Cells[0].LabelFilter = "cni: {macvlan}" }, "is not a Ginkgo label filter"},
		{"filter value not in axes", func(m *Matrix) { m.Cells[0].LabelFilter = "cni: containsAny {macvlann}" }, `cni "macvlann" is not in axes.cni`},
		{"negated plain label not in axes", func(m *Matrix) { m.Cells[0].LabelFilter = "!strategy:ipam-dhcpp" }, `strategy "ipam-dhcpp" is not in axes.strategy`},
		{"filter unknown key", func(m *Matrix) { m.Cells[0].LabelFilter = "os:linux" }, `label key "os" is unknown`},
		{"filter label without key", func(m *Matrix) { m.Cells[0].LabelFilter = "macvlan" }, `label "macvlan" has no key`},
		{"filter with quote", func(m *Matrix) { m.Cells[0].LabelFilter = "cni:macvlan || 'x'" }, "contains ' or $"},
		{"empty axis", func(m *Matrix) { m.Axes.Binding = nil }, "axes.binding is empty"},
		{"axis value with operator", func(m *Matrix) { m.Axes.CNI = append(m.Axes.CNI, "a&b") }, "is not a valid label value"},
		{"no cells", func(m *Matrix) { m.Cells = nil }, "cells is empty"},
		{"image with digest", func(m *Matrix) { m.GuestImages[0].Image += "@sha256:" + strings.Repeat("a", 64) }, "contains a digest"},
		{"image without tag", func(m *Matrix) { m.GuestImages[0].Image = "quay.io/containerdisks/debian" }, "has no tag"},
		{"bad digest", func(m *Matrix) { m.GuestImages[0].Digest = "sha256:abc" }, "is not a digest"},
		{"bad version", func(m *Matrix) { m.VersionSets[0].KubeVirt = &Component{Version: "1.8"} }, `versionSets[0].kubevirt.version "1.8" is not a release tag`},
		{"bad sha256", func(m *Matrix) { m.VersionSets[0].Multus = &Component{Version: "v4.2.4", SHA256: "xyz"} }, `versionSets[0].multus.sha256 "xyz" is not a sha256`},
		{"node image without digest", func(m *Matrix) { m.VersionSets[0].KindNodeImage = "kindest/node:v1.36.0" }, "kind.nodeImage"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := valid()
			tc.change(m)
			err := m.Validate()
			if err == nil {
				t.Fatal("Validate accepted the matrix")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q lacks %q", err, tc.want)
			}
		})
	}
}

func TestCheckScenariosRejects(t *testing.T) {
	m, scenarios := loadRepository(t)

	missingAxis := *m
	missingAxis.Axes.CNI = []string{"bridge", "macvtap"}
	if err := missingAxis.CheckScenarios(scenarios); err == nil || !strings.Contains(err.Error(), `does not list "macvlan"`) {
		t.Errorf("axes without macvlan: error %v, want one naming macvlan", err)
	}

	noImages := *m
	noImages.GuestImages = nil
	if err := noImages.CheckScenarios(scenarios); err == nil || !strings.Contains(err.Error(), "which guestImages does not list") {
		t.Errorf("no guest images: error %v, want one naming the unlisted containerDisk", err)
	}

	emptyCell := *m
	emptyCell.Cells = []Cell{{Name: "nothing", Provider: "local", LabelFilter: "cni:macvlan && cni:bridge"}}
	if err := emptyCell.CheckScenarios(scenarios); err == nil || !strings.Contains(err.Error(), "selects no scenario") {
		t.Errorf("cell selecting nothing: error %v, want selects no scenario", err)
	}
}

func TestVersionSetEnv(t *testing.T) {
	set := VersionSet{
		Name:       "previous",
		KubeVirt:   &Component{Version: "v1.8.4"},
		Multus:     &Component{Version: "v4.2.4", SHA256: strings.Repeat("3", 64)},
		CNIPlugins: &Component{Version: "v1.8.0"},
	}
	env := set.Env()
	want := map[string]string{
		kind.EnvKubeVirtVersion:   "v1.8.4",
		kind.EnvMultusVersion:     "v4.2.4",
		kind.EnvMultusManifestSHA: strings.Repeat("3", 64),
		kind.EnvCNIPluginsVersion: "v1.8.0",
	}
	if len(env) != len(want) {
		t.Errorf("env %v, want %v", env, want)
	}
	for name, value := range want {
		if env[name] != value {
			t.Errorf("%s=%q, want %q", name, env[name], value)
		}
	}

	base, err := kind.ParseVersions(clusters.VersionsYAML)
	if err != nil {
		t.Fatal(err)
	}
	v, err := set.KindVersions()
	if err != nil {
		t.Fatal(err)
	}
	if v.KubeVirt.Version != "v1.8.4" || v.KubeVirt.OperatorSHA256 != "" {
		t.Errorf("KubeVirt %+v, want v1.8.4 without the old version's sha256", v.KubeVirt)
	}
	if v.Multus.Version != "v4.2.4" || v.Multus.ManifestSHA256 != strings.Repeat("3", 64) {
		t.Errorf("Multus %+v, want v4.2.4 with the set's sha256", v.Multus)
	}
	if v.CNIPlugins.Version != "v1.8.0" || len(v.CNIPlugins.SHA256) != 0 {
		t.Errorf("CNI plugins %+v, want v1.8.0 with the v1.9.1 sums dropped", v.CNIPlugins)
	}
	if v.MacvtapCNI != base.MacvtapCNI || v.Kind != base.Kind {
		t.Errorf("components the set does not name changed: macvtap %+v, kind %+v", v.MacvtapCNI, v.Kind)
	}

	summary := VersionSummary(v)
	for _, part := range []string{"KubeVirt v1.8.4*", "Multus v4.2.4*", "CNI plugins v1.8.0*", "macvtap-cni " + base.MacvtapCNI.Version + ","} {
		if !strings.Contains(summary, part) {
			t.Errorf("summary %q lacks %q", summary, part)
		}
	}

	if env := (VersionSet{Name: "pinned"}).Env(); len(env) != 0 {
		t.Errorf("an empty set has overrides %v", env)
	}
}

func TestClosest(t *testing.T) {
	candidates := []string{"labelFilter", "name", "nightly", "provider", "versions"}
	for key, want := range map[string]string{
		"lableFilter": "labelFilter",
		"LabelFilter": "labelFilter",
		"nam":         "name",
		"version":     "versions",
		"owner":       "",
	} {
		if got := closest(key, candidates); got != want {
			t.Errorf("closest(%q) = %q, want %q", key, got, want)
		}
	}
}

package matrix

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/onsi/ginkgo/v2/types"
)

// TestSelectionMatchesGinkgoDryRun compiles the e2e suite and, for every
// cell's filter and a few more, lists the specs Ginkgo itself would run
// (--ginkgo.dry-run runs no setup node, so it needs no root). The list must
// equal Select's, which proves the same labels and filter semantics.
func TestSelectionMatchesGinkgoDryRun(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the e2e suite")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not in PATH: " + err.Error())
	}
	m, scenarios := loadRepository(t)

	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	suite := filepath.Join(tmp, "e2e.test")
	build := exec.Command(goTool, "test", "-c", "-o", suite, "./e2e")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go test -c ./e2e: %v\n%s", err, out)
	}

	// Every cell's filter, and filters on the axes no cell uses yet.
	filters := map[string]string{
		"binding": "binding:bridge",
		"cni-and": "cni:bridge && strategy: containsAny {ipam-dhcp, cloud-init-mac-match}",
		"subset":  "strategy: isSubsetOf {ipam-dhcp, cloud-init-mac-match}",
	}
	for _, c := range m.Cells {
		filters[c.Name] = c.LabelFilter
	}

	for name, filter := range filters {
		t.Run(name, func(t *testing.T) {
			selected, err := Select(filter, scenarios)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, s := range selected {
				want = append(want, s.Name)
			}
			slices.Sort(want)

			got := dryRun(t, suite, root, filter)
			if !slices.Equal(got, want) {
				t.Errorf("Ginkgo runs %v\nSelect chose %v", got, want)
			}
		})
	}
}

// dryRun returns the sorted names of the specs Ginkgo would run under
// filter.
func dryRun(t *testing.T, suite, root, filter string) []string {
	t.Helper()
	reportPath := filepath.Join(t.TempDir(), "dry-run.json")
	cmd := exec.Command(suite,
		"-ginkgo.dry-run", "-ginkgo.no-color",
		"-ginkgo.label-filter="+filter,
		"-ginkgo.json-report="+reportPath,
		"-vmnet.scenarios="+filepath.Join(root, "scenarios"),
		"-vmnet.report="+filepath.Join(t.TempDir(), "report.json"),
		"-vmnet.artifacts="+t.TempDir(),
	)
	cmd.Dir = filepath.Join(root, "e2e")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("e2e dry run with label filter %q: %v\n%s", filter, err, out)
	}

	data, err := os.ReadFile(reportPath)
	if err != nil {
		t.Fatal(err)
	}
	var reports []types.Report
	if err := json.Unmarshal(data, &reports); err != nil {
		t.Fatalf("Ginkgo JSON report: %v", err)
	}
	if len(reports) != 1 {
		t.Fatalf("%d suite reports, want 1", len(reports))
	}

	var names []string
	for _, spec := range reports[0].SpecReports {
		if spec.LeafNodeType == types.NodeTypeIt && spec.State == types.SpecStatePassed {
			names = append(names, spec.LeafNodeText)
		}
	}
	slices.Sort(names)
	return names
}

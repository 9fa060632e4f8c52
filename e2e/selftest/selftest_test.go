// Package selftest proves that the scenario suite fails when an expectation
// is wrong. It runs the suite on a copy of a scenario whose expectation was
// edited, and checks that the run fails on that spec and prints expected,
// observed and the evidence.
package selftest

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmnet-e2e/vmnet-e2e/framework/report"
)

// source is a scenario the API server rejects, so the suite decides it
// without booting a guest.
const source = "../../scenarios/macvlan/ip-address-field.yaml"

func runSuite(t *testing.T, scenarioFile string) (output string, exitErr error, rep *report.Report) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the local provider's preflight needs root")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "scenario.yaml"), []byte(scenarioFile), 0o644); err != nil {
		t.Fatal(err)
	}
	reportPath := filepath.Join(dir, "report.json")

	cmd := exec.Command("go", "test", "-count=1", "../",
		"-args", "-vmnet.provider=local", "-vmnet.scenarios="+dir, "-vmnet.report="+reportPath, "-vmnet.artifacts="+filepath.Join(dir, "artifacts"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()

	rep, readErr := report.Read(reportPath)
	if readErr != nil {
		t.Logf("no report: %v", readErr)
	}
	return out.String(), err, rep
}

func TestEditedExpectationFails(t *testing.T) {
	original, err := os.ReadFile(source)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(original), "    outcome: rejected\n    causes: [UnknownField]\n", "    outcome: reachable\n", 1)
	if edited == string(original) {
		t.Fatalf("%s no longer holds the expectation this test edits", source)
	}

	output, runErr, rep := runSuite(t, edited)
	var exit *exec.ExitError
	if !errors.As(runErr, &exit) {
		t.Fatalf("the suite with an edited expectation did not fail (error %v); output:\n%s", runErr, output)
	}
	for _, want := range []string{
		"scenario macvlan-ip-address-field: observed verdict differs from the expectation",
		"expected: reachable",
		"observed: rejected (UnknownField)",
		"evidence by cause:",
		`unknown field \"spec.template.spec.networks[0].ipAddress\"`,
	} {
		if !strings.Contains(output, want) {
			t.Errorf("the failure output lacks %q", want)
		}
	}

	if rep == nil || len(rep.Results) != 1 {
		t.Fatalf("report %+v, want one result", rep)
	}
	r := rep.Results[0]
	if r.Match == nil || *r.Match {
		t.Errorf("report marks the edited scenario as matching: %+v", r.Match)
	}
	data, _ := json.Marshal(r.Observed)
	if !strings.Contains(string(data), `"outcome":"rejected"`) {
		t.Errorf("report's observed verdict %s, want rejected", data)
	}
}

func TestUneditedExpectationPasses(t *testing.T) {
	original, err := os.ReadFile(source)
	if err != nil {
		t.Fatal(err)
	}
	output, runErr, rep := runSuite(t, string(original))
	if runErr != nil {
		t.Fatalf("the suite failed on the unedited scenario: %v\n%s", runErr, output)
	}
	if rep == nil || len(rep.Results) != 1 || rep.Results[0].Match == nil || !*rep.Results[0].Match {
		t.Errorf("report %+v, want one matching result", rep)
	}
}

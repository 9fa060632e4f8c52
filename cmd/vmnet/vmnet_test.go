package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// vmnetBinary is built once by TestMain, so the tests run the command as a
// user does and see its exit status.
var vmnetBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vmnet-cmd-test-")
	if err != nil {
		panic(err)
	}
	vmnetBinary = filepath.Join(dir, "vmnet")
	build := exec.Command("go", "build", "-o", vmnetBinary, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		panic("build vmnet: " + err.Error())
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func runVmnet(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(vmnetBinary, args...)
	cmd.Dir = filepath.Join("..", "..")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		code = 0
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}

// runDirs lists the run directories and namespaces that exist now.
func runState(t *testing.T) []string {
	t.Helper()
	var names []string
	for _, dir := range []string{"/run/vmnet-e2e", "/run/netns"} {
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), "vmnet-") {
				names = append(names, filepath.Join(dir, e.Name()))
			}
		}
	}
	return names
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func readExample(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "scenarios", "examples", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestLintExitCodes(t *testing.T) {
	stdout, _, code := runVmnet(t, "lint", "-f", "scenarios/examples/user-report.yaml")
	if code != exitFailed {
		t.Errorf("lint on the reported example: exit %d, want %d", code, exitFailed)
	}
	for _, want := range []string{"NoSuchGuestNIC", "MacvlanWithBridgeBinding"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("lint output lacks %s:\n%s", want, stdout)
		}
	}

	stdout, _, code = runVmnet(t, "lint", "-f", "scenarios/examples/user-report-fixed.yaml", "-o", "json")
	if code != exitOK {
		t.Errorf("lint on the fixed example: exit %d, want 0", code)
	}
	var findings []any
	if err := json.Unmarshal([]byte(stdout), &findings); err != nil || len(findings) != 0 {
		t.Errorf("lint -o json on the fixed example: %q (%v), want []", stdout, err)
	}
}

// TestReproBadInput feeds every kind of bad input and checks for exit status
// 2, a message that names the value, and nothing created.
func TestReproBadInput(t *testing.T) {
	report := readExample(t, "user-report.yaml")
	nadEnd := strings.Index(report, "\n---\n")
	if nadEnd < 0 {
		t.Fatal("the example no longer has a NAD document first")
	}
	vmOnly := report[nadEnd+5:]
	firstVM := strings.Replace(vmOnly, "name: app-vm", "name: app-vm-2", 1)

	cases := []struct {
		name string
		args []string
		want string
	}{
		{"not YAML", []string{"-f", writeFile(t, "bad.yaml", "key: [unclosed\n")}, "not valid YAML"},
		{"no VM", []string{"-f", writeFile(t, "nad.yaml", report[:nadEnd])}, "no VirtualMachine or VirtualMachineInstance"},
		{"two VMs", []string{"-f", writeFile(t, "two.yaml", report+"\n---\n"+firstVM)}, `a second VirtualMachine or VirtualMachineInstance ("app-vm-2")`},
		{"missing NAD", []string{"-f", writeFile(t, "vm.yaml", vmOnly)}, `NetworkAttachmentDefinition "default/vm-static", which the given manifests do not contain`},
		{"wrong apiVersion", []string{"-f", writeFile(t, "v1alpha3.yaml", strings.Replace(report, "apiVersion: kubevirt.io/v1", "apiVersion: kubevirt.io/v1alpha3", 1))}, `"kubevirt.io/v1alpha3": use kubevirt.io/v1`},
		{"probe not an IP", []string{"-f", "scenarios/examples/user-report.yaml", "--probe", "192.0.2.500"}, `invalid --probe "192.0.2.500"`},
		{"missing file", []string{"-f", "no-such-file.yaml"}, "no-such-file.yaml"},
		{"unknown provider", []string{"-f", "scenarios/examples/user-report.yaml", "--provider", "minikube"}, `invalid --provider "minikube"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := runState(t)
			_, stderr, code := runVmnet(t, append([]string{"repro"}, tc.args...)...)
			if code != exitInvalid {
				t.Errorf("exit %d, want %d; stderr: %s", code, exitInvalid, stderr)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr %q does not contain %q", stderr, tc.want)
			}
			if after := runState(t); len(after) != len(before) {
				t.Errorf("bad input left state behind: before %v, after %v", before, after)
			}
		})
	}
}

// TestReproExamples runs both examples on the local provider: the reported
// one shows the report's symptoms and both causes, the fixed one is
// reachable.
func TestReproExamples(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("repro on the local provider needs root")
	}
	if testing.Short() {
		t.Skip("boots two guests")
	}

	stdout, stderr, code := runVmnet(t, "repro", "-f", "scenarios/examples/user-report.yaml", "-o", "json", "--artifacts", t.TempDir())
	if code != exitFailed {
		t.Fatalf("repro on the reported example: exit %d, want %d\n%s", code, exitFailed, stderr)
	}
	var out reproOutput
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("repro -o json: %v\n%s", err, stdout)
	}
	if out.Verdict.Outcome != "unreachable" {
		t.Errorf("outcome %s, want unreachable", out.Verdict.Outcome)
	}
	causes := strings.Join(out.Verdict.CauseNames(), ",")
	if causes != "GuestHasNoAddress,GuestMACOnNoMacvlan" {
		t.Errorf("causes %s, want GuestHasNoAddress,GuestMACOnNoMacvlan", causes)
	}
	for _, cause := range out.Verdict.Causes {
		if out.Fixes[cause.Cause] == "" {
			t.Errorf("no fix for %s", cause.Cause)
		}
	}

	// the report's symptoms: the address on the DOWN pod link and in the
	// status, while the guest has none
	placeholderHasIP := false
	for _, l := range out.Evidence.PodLinks {
		if l.Name == "pod11c844f95e2" && l.State == "DOWN" && strings.Contains(strings.Join(l.Addresses, " "), "192.0.2.200/24") {
			placeholderHasIP = true
		}
	}
	if !placeholderHasIP {
		t.Errorf("no DOWN pod11c844f95e2 link holding 192.0.2.200/24 in %+v", out.Evidence.PodLinks)
	}
	if len(out.Evidence.ReportedStatus) != 1 || strings.Join(out.Evidence.ReportedStatus[0].IPAddresses, ",") != "192.0.2.200" {
		t.Errorf("reported status %+v, want mynet with 192.0.2.200", out.Evidence.ReportedStatus)
	}

	stdout, stderr, code = runVmnet(t, "repro", "-f", "scenarios/examples/user-report-fixed.yaml", "--artifacts", t.TempDir())
	if code != exitOK {
		t.Errorf("repro on the fixed example: exit %d, want 0\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "Verdict: REACHABLE") {
		t.Errorf("fixed example output lacks the reachable verdict:\n%s", stdout)
	}
}

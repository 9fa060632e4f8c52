package guest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runEvidenceScript runs the evidence script on this host with its output
// redirected to a file and returns that output: two copies of one block.
func runEvidenceScript(t *testing.T, stage Stage, nonce string) string {
	t.Helper()
	for _, tool := range []string{"sh", "awk", "tar", "gzip", "base64", "sha256sum", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found; the evidence script needs it", tool)
		}
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "evidence")
	if err := os.WriteFile(script, []byte(evidenceScript), 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "console")
	cmd := exec.Command("sh", script, string(stage), nonce)
	cmd.Env = append(os.Environ(), "VMNET_E2E_EVIDENCE_OUT="+out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("evidence script: %v: %s", err, msg)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestEvidenceScriptRoundTrip(t *testing.T) {
	nonce := NewNonce()
	console := runEvidenceScript(t, StageFinal, nonce)

	if n := strings.Count(console, " BEGIN "); n != 2 {
		t.Fatalf("script printed %d blocks, want 2 copies", n)
	}
	ev, err := ParseEvidence(console, nonce, StageFinal)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Stage != StageFinal || ev.Nonce != nonce {
		t.Errorf("evidence stage %q nonce %q, want %q %q", ev.Stage, ev.Nonce, StageFinal, nonce)
	}
	if _, ok := ev.Interface("lo"); !ok {
		t.Errorf("evidence lists no lo interface: %s", ev.Summary())
	}
	if ev.Uptime <= 0 {
		t.Errorf("evidence uptime %s, want > 0", ev.Uptime)
	}
}

// interleave inserts kernel messages the way they reach a serial console
// while a user-space line is being written. One goes between lines every few
// lines. Another breaks the first copy of the evidence line for chunk (for
// example "network 1"), which then ends early and continues after it.
func interleave(t *testing.T, console string, chunk string) string {
	t.Helper()
	var out strings.Builder
	broken := false
	for i, line := range strings.Split(console, "\n") {
		if i%7 == 3 {
			out.WriteString("[   25.731948] virtio_net virtio1 enp2s0: renamed from eth1\r\n")
		}
		if !broken && strings.Contains(line, evidenceMarker) && strings.Contains(line, " "+chunk+" ") {
			half := len(line) - 20
			out.WriteString(line[:half])
			out.WriteString("[   26.012345] random: crng init done\r\n")
			out.WriteString(line[half:] + "\r\n")
			broken = true
			continue
		}
		out.WriteString(line + "\r\n")
	}
	if !broken {
		t.Fatalf("no evidence line for chunk %q to break", chunk)
	}
	return out.String()
}

func TestParseEvidenceInterleavedKernelLines(t *testing.T) {
	nonce := NewNonce()
	console := runEvidenceScript(t, StageNetwork, nonce)

	// The first copy of chunk 1 is broken by a kernel message; the parser
	// must take chunk 1 from the second copy.
	noisy := "[    0.000000] Linux version 6.1.0-57-cloud-amd64\r\n" + interleave(t, console, "network 1")
	ev, err := ParseEvidence(noisy, nonce, StageNetwork)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Stage != StageNetwork {
		t.Errorf("stage %q, want network", ev.Stage)
	}

	// A kernel message at the start of the line ("prefix") leaves the
	// evidence line intact after it.
	prefixed := strings.ReplaceAll(console, evidenceMarker, "[   30.1] x "+evidenceMarker)
	if _, err := ParseEvidence(prefixed, nonce, StageNetwork); err != nil {
		t.Errorf("evidence lines behind kernel text: %v", err)
	}
}

func TestParseEvidenceRejectsDamage(t *testing.T) {
	nonce := NewNonce()
	console := runEvidenceScript(t, StageNetwork, nonce)

	// Damage chunk 1 in both copies: one character changed.
	var damaged []string
	for _, line := range strings.Split(console, "\n") {
		if strings.Contains(line, " network 1 ") {
			fields := strings.Fields(line)
			data := []byte(fields[len(fields)-1])
			data[5] ^= 0x01
			fields[len(fields)-1] = string(data)
			line = strings.Join(fields, " ")
		}
		damaged = append(damaged, line)
	}
	_, err := ParseEvidence(strings.Join(damaged, "\n"), nonce, StageNetwork)
	if err == nil || !strings.Contains(err.Error(), "incomplete") {
		t.Errorf("damaged evidence: error %v, want an incomplete-evidence error", err)
	}

	if _, err := ParseEvidence(console, NewNonce(), StageNetwork); err == nil {
		t.Errorf("evidence with another boot's nonce was accepted")
	}
	if _, err := ParseEvidence(console, nonce, StageFinal); err == nil {
		t.Errorf("network evidence was accepted as final evidence")
	}
}

func TestChunkHashMatchesScript(t *testing.T) {
	// h = (h*67 + position) mod 2147483647, positions from 1: A=1, B=2, '='=65.
	cases := map[string]string{
		"A":  "00000001",
		"AB": "00000045", // 1*67 + 2 = 69
		"=":  "00000041",
	}
	for chunk, want := range cases {
		if got := chunkHash(chunk); got != want {
			t.Errorf("chunkHash(%q) = %s, want %s", chunk, got, want)
		}
	}
}

// The testdata consoles are serial consoles of real boots, with kernel and
// systemd output around the evidence blocks:
//   - console-uppercase-mac.log (TestBootUppercaseMACFails): one copy of the
//     early evidence, as the guest was stopped before printing the second.
//   - console-key-names-no-nic.log (TestBootKeyNamesNoGuestNIC): two copies of
//     the early evidence and one of the final.
const (
	uppercaseMACNonce  = "fdf3925c0a6673e3"
	keyNamesNoNICNonce = "8a5af67f621a0075"
)

func TestParseEvidenceUppercaseMACConsole(t *testing.T) {
	data, err := os.ReadFile("testdata/console-uppercase-mac.log")
	if err != nil {
		t.Fatal(err)
	}
	ev, err := ParseEvidence(string(data), uppercaseMACNonce, StageNetwork)
	if err != nil {
		t.Fatal(err)
	}
	errors := ev.CloudInit.Stages["init-local"].Errors
	if len(errors) != 1 || !strings.Contains(errors[0], "Not all expected physical devices present: {'02:00:C0:00:02:02'}") {
		t.Errorf("init-local errors %q, want the missing-devices error for 02:00:C0:00:02:02", errors)
	}
	if !strings.Contains(strings.Join(ev.Warnings, "\n"), "failed stage init-local") {
		t.Errorf("cloud-init.log warnings %q, want the failed init-local stage", ev.Warnings)
	}
	assertNames(t, ev)
	assertNoAddress(t, ev)
	if _, err := ParseEvidence(string(data), uppercaseMACNonce, StageFinal); err == nil {
		t.Errorf("found final evidence in a console that has none")
	}
}

func TestParseEvidenceKeyNamesNoNICConsole(t *testing.T) {
	data, err := os.ReadFile("testdata/console-key-names-no-nic.log")
	if err != nil {
		t.Fatal(err)
	}

	// The first copy of chunk 2 is broken by a kernel message, so the parser
	// must take it from the second copy.
	early, err := ParseEvidence(interleave(t, string(data), "network 2"), keyNamesNoNICNonce, StageNetwork)
	if err != nil {
		t.Fatal(err)
	}
	assertNames(t, early)
	assertNoAddress(t, early)
	for link, state := range early.NetworkdStates {
		if state != "unmanaged" {
			t.Errorf("early evidence: networkd state of %s is %q, want unmanaged (no config matches it)", link, state)
		}
	}
	if !strings.Contains(early.Rendered["/etc/netplan/50-cloud-init.yaml"], "mynet") {
		t.Errorf("rendered netplan config lacks mynet: %v", keys(early.Rendered))
	}

	final, err := ParseEvidence(string(data), keyNamesNoNICNonce, StageFinal)
	if err != nil {
		t.Fatal(err)
	}
	if !final.CloudInit.Finished || len(final.CloudInit.Errors) != 0 {
		t.Errorf("final evidence: cloud-init finished %t with errors %q, want finished without errors", final.CloudInit.Finished, final.CloudInit.Errors)
	}
	if !strings.Contains(strings.Join(final.FailedUnits, "\n"), "systemd-networkd-wait-online.service") {
		t.Errorf("failed units %q, want systemd-networkd-wait-online.service, which timed out waiting for mynet", final.FailedUnits)
	}
	if final.Uptime < 2*time.Minute {
		t.Errorf("final evidence at uptime %s, want after the 120 s wait-online timeout", final.Uptime)
	}
}

package lint

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmnet-e2e/vmnet-e2e/framework/scenario"
)

func loadExample(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "scenarios", "examples", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func mustReplace(t *testing.T, s, old, new string) string {
	t.Helper()
	if !strings.Contains(s, old) {
		t.Fatalf("the example no longer contains %q", old)
	}
	return strings.Replace(s, old, new, 1)
}

func TestFixedExampleIsClean(t *testing.T) {
	s, err := scenario.Load("fixed.yaml", []byte(loadExample(t, "user-report-fixed.yaml")))
	if err != nil {
		t.Fatal(err)
	}
	if findings := Scenario(s); len(findings) != 0 {
		t.Errorf("findings on the fixed example: %+v", findings)
	}
}

func TestReportedExampleFindings(t *testing.T) {
	s, err := scenario.Load("report.yaml", []byte(loadExample(t, "user-report.yaml")))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, f := range Scenario(s) {
		got[f.Check] = true
	}
	for _, want := range []string{CheckNoSuchGuestNIC, CheckMacvlanBridge} {
		if !got[want] {
			t.Errorf("the reported example lacks finding %s (got %v)", want, got)
		}
	}
}

// TestChecks changes the fixed example in one way per case and expects the
// check that change must trigger.
func TestChecks(t *testing.T) {
	fixed := loadExample(t, "user-report-fixed.yaml")
	cases := []struct {
		name     string
		edit     func(string) string
		check    string
		severity Severity
		inFix    string
	}{
		{
			name: "ipAddress field",
			edit: func(s string) string {
				return mustReplace(t, s, "        multus:\n          networkName: vm-static", "        ipAddress: 192.0.2.200/24\n        multus:\n          networkName: vm-static")
			},
			check: CheckUnknownField, severity: Error, inFix: "networkData",
		},
		{
			name: "misspelt macAddress",
			edit: func(s string) string {
				return mustReplace(t, s, `            macAddress: "02:00:00:00:c8:01"`, `            macAdress: "02:00:00:00:c8:01"`)
			},
			check: CheckUnknownField, severity: Error, inFix: `rename it to "macAddress"`,
		},
		{
			name: "misspelt metadata",
			edit: func(s string) string {
				return mustReplace(t, s, "kind: VirtualMachine\nmetadata:", "kind: VirtualMachine\nmetdata:")
			},
			check: CheckUnknownField, severity: Error, inFix: `rename it to "metadata"`,
		},
		{
			name: "networkData not YAML",
			edit: func(s string) string {
				return mustReplace(t, s, "            version: 2\n", "            version: [2\n")
			},
			check: CheckNetworkDataInvalid, severity: Error,
		},
		{
			name: "networkData v3",
			edit: func(s string) string {
				return mustReplace(t, s, "            version: 2\n", "            version: 3\n")
			},
			check: CheckNetworkDataInvalid, severity: Error,
		},
		{
			name: "uppercase MAC with set-name",
			edit: func(s string) string {
				return mustReplace(t, s, `macaddress: "02:00:00:00:c8:01"`, `macaddress: "02:00:00:00:C8:01"`)
			},
			check: CheckUppercaseMAC, severity: Error, inFix: "02:00:00:00:c8:01",
		},
		{
			name: "uppercase MAC without set-name",
			edit: func(s string) string {
				s = mustReplace(t, s, `macaddress: "02:00:00:00:c8:01"`, `macaddress: "02:00:00:00:C8:01"`)
				return mustReplace(t, s, "                set-name: mynet\n", "")
			},
			check: CheckUppercaseMAC, severity: Warning,
		},
		{
			name: "unquoted sexagesimal MAC",
			edit: func(s string) string {
				// PyYAML's base-60 form needs a first group of 1-9 and the
				// others below 60.
				s = strings.ReplaceAll(s, "02:00:00:00:c8:01", "12:00:00:00:50:01")
				return mustReplace(t, s, `macaddress: "12:00:00:00:50:01"`, `macaddress: 12:00:00:00:50:01`)
			},
			check: CheckMACNotString, severity: Error,
		},
		{
			name: "set-name over 15 bytes",
			edit: func(s string) string {
				return mustReplace(t, s, "set-name: mynet", "set-name: secondary-network0")
			},
			check: CheckNameTooLong, severity: Error,
		},
		{
			name: "key by network name",
			edit: func(s string) string {
				s = mustReplace(t, s, "                match:\n                  macaddress: \"02:00:00:00:c8:01\"\n                set-name: mynet\n", "")
				return s
			},
			check: CheckNoSuchGuestNIC, severity: Error, inFix: "enp2s0",
		},
		{
			name: "key by the first NIC",
			edit: func(s string) string {
				s = mustReplace(t, s, "                match:\n                  macaddress: \"02:00:00:00:c8:01\"\n                set-name: mynet\n", "")
				return mustReplace(t, s, "              mynet:\n", "              enp3s0:\n")
			},
			check: CheckNoSuchGuestNIC, severity: Error,
		},
		{
			name:  "MAC match without spec macAddress",
			edit:  func(s string) string { return mustReplace(t, s, "            macAddress: \"02:00:00:00:c8:01\"\n", "") },
			check: CheckMACMatchWithoutMAC, severity: Error, inFix: "macAddress",
		},
		{
			name: "NAD without mac capability",
			edit: func(s string) string {
				return mustReplace(t, s, `"capabilities": {"mac": true}, `, "")
			},
			check: CheckNADWithoutMACCap, severity: Warning,
		},
		{
			name: "macvlan with bridge binding",
			edit: func(s string) string {
				return mustReplace(t, s, `"type": "bridge", "bridge": "vmnet0"`, `"type": "macvlan", "master": "vmnet0"`)
			},
			check: CheckMacvlanBridge, severity: Error, inFix: "macvtap",
		},
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := scenario.Load("case.yaml", []byte(tc.edit(fixed)))
			if err != nil {
				t.Fatal(err)
			}
			findings := Scenario(s)
			var found *Finding
			for i := range findings {
				if findings[i].Check == tc.check {
					found = &findings[i]
				}
			}
			if found == nil {
				t.Fatalf("no %s finding; got %+v", tc.check, findings)
			}
			if found.Severity != tc.severity {
				t.Errorf("severity %s, want %s", found.Severity, tc.severity)
			}
			if found.Message == "" || found.Fix == "" || found.Object == "" {
				t.Errorf("finding lacks message, fix or object: %+v", found)
			}
			if tc.inFix != "" && !strings.Contains(found.Fix, tc.inFix) {
				t.Errorf("fix %q does not mention %q", found.Fix, tc.inFix)
			}
			if len(findings) > 1 {
				var others []string
				for _, f := range findings {
					if f.Check != tc.check {
						others = append(others, f.Check)
					}
				}
				if len(others) > 0 {
					t.Logf("other findings: %v", others)
				}
			}
		})
	}
}

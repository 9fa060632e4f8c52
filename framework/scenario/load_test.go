package scenario

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const nadDoc = `apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: macvlan-static
spec:
  config: '{"cniVersion":"0.3.1","name":"macvlan-static","type":"macvlan","master":"vmnet0","ipam":{"type":"static","addresses":[{"address":"192.0.2.10/24"}]}}'
`

const vmDoc = `apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata:
  name: vm1
spec:
  runStrategy: Always
  template:
    spec:
      domain:
        devices:
          interfaces:
          - name: default
            masquerade: {}
          - name: mynet
            bridge: {}
      networks:
      - name: default
        pod: {}
      - name: mynet
        multus:
          networkName: macvlan-static
`

func TestLoadUserManifests(t *testing.T) {
	s, err := Load("user.yaml", []byte(nadDoc+"---\n"+vmDoc))
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "user" {
		t.Errorf("name %q, want the file name without extension", s.Name)
	}
	if s.Rejection != nil {
		t.Errorf("unexpected rejection: %+v", s.Rejection)
	}
	if s.VMI == nil || s.VMI.Name != "vm1" || s.VMI.Namespace != "default" {
		t.Fatalf("VMI not derived from the VM template: %+v", s.VMI)
	}
	if s.VMI.Spec.Domain.Firmware == nil || s.VMI.Spec.Domain.Firmware.UUID == "" {
		t.Error("VMI has no firmware UUID; KubeVirt's VM webhook assigns one on create")
	}
	secondary := s.SecondaryAttachments()
	if len(secondary) != 1 {
		t.Fatalf("%d secondary attachments, want 1", len(secondary))
	}
	a := secondary[0]
	if a.Index != 1 || a.Binding != BindingBridge || a.CNI.Type != "macvlan" || a.CNI.Master != "vmnet0" || a.CNI.Mode != "bridge" {
		t.Errorf("attachment %+v", a)
	}
	if len(a.CNI.StaticAddresses) != 1 || a.CNI.StaticAddresses[0].String() != "192.0.2.10/24" {
		t.Errorf("static addresses %v", a.CNI.StaticAddresses)
	}
	if len(s.Objects) != 2 || s.Objects[0].Kind != "NetworkAttachmentDefinition" || s.Objects[1].Kind != "VirtualMachine" {
		t.Errorf("objects %+v", s.Objects)
	}
}

func TestLoadUnknownFieldIsRejection(t *testing.T) {
	doc := strings.Replace(vmDoc, "      - name: mynet\n        multus:", "      - name: mynet\n        ipAddress: 192.0.2.10/24\n        multus:", 1)
	s, err := Load("ip.yaml", []byte(nadDoc+"---\n"+doc))
	if err != nil {
		t.Fatal(err)
	}
	if s.Rejection == nil {
		t.Fatal("no rejection for spec.template.spec.networks[1].ipAddress")
	}
	if got := strings.Join(s.Rejection.Fields, ","); got != "spec.template.spec.networks[1].ipAddress" {
		t.Errorf("rejected fields %q", got)
	}
	want := `VirtualMachine in version "v1" cannot be handled as a VirtualMachine: strict decoding error: unknown field "spec.template.spec.networks[1].ipAddress"`
	if s.Rejection.Message != want {
		t.Errorf("message %q, want %q", s.Rejection.Message, want)
	}
	if s.Rejection.Object != "VirtualMachine/vm1" {
		t.Errorf("object %q", s.Rejection.Object)
	}
}

func TestLoadInputErrors(t *testing.T) {
	cases := map[string]struct {
		data string
		want string
	}{
		"not yaml":          {"key: [unclosed", "not valid YAML"},
		"no vm":             {nadDoc, "no VirtualMachine"},
		"two vms":           {nadDoc + "---\n" + vmDoc + "---\n" + strings.Replace(vmDoc, "vm1", "vm2", 1), "a second VirtualMachine"},
		"missing nad":       {vmDoc, `NetworkAttachmentDefinition "default/macvlan-static", which the given manifests do not contain`},
		"wrong apiVersion":  {nadDoc + "---\n" + strings.Replace(vmDoc, "kubevirt.io/v1", "kubevirt.io/v1alpha3", 1), `apiVersion "kubevirt.io/v1alpha3": use kubevirt.io/v1`},
		"unsupported kind":  {"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n", "unsupported object ConfigMap"},
		"bad mac":           {nadDoc + "---\n" + strings.Replace(vmDoc, "bridge: {}", "bridge: {}\n            macAddress: 02:00:00:zz:00:01", 1), `invalid macAddress "02:00:00:zz:00:01"`},
		"bad probe":         {"apiVersion: vmnet-e2e.dev/v1alpha1\nkind: Scenario\nmetadata:\n  name: s\nspec:\n  probe: 192.0.2.300\n---\n" + nadDoc + "---\n" + vmDoc, `spec.probe "192.0.2.300" is not an IP address`},
		"bad peer":          {"apiVersion: vmnet-e2e.dev/v1alpha1\nkind: Scenario\nmetadata:\n  name: s\nspec:\n  peer: 192.0.2.1\n---\n" + nadDoc + "---\n" + vmDoc, `spec.peer "192.0.2.1" is not an address with prefix length`},
		"harness unknown":   {"apiVersion: vmnet-e2e.dev/v1alpha1\nkind: Scenario\nmetadata:\n  name: s\nspec:\n  prob: 192.0.2.1\n---\n" + nadDoc + "---\n" + vmDoc, "unknown field(s) spec.prob"},
		"bad outcome":       {"apiVersion: vmnet-e2e.dev/v1alpha1\nkind: Scenario\nmetadata:\n  name: s\nspec:\n  expect:\n    outcome: up\n---\n" + nadDoc + "---\n" + vmDoc, `spec.expect.outcome "up"`},
		"bad static cidr":   {strings.Replace(nadDoc, "192.0.2.10/24", "192.0.2.10", 1) + "---\n" + vmDoc, `static IPAM address "192.0.2.10" is not a CIDR`},
		"nad config broken": {strings.Replace(nadDoc, `'{"cniVersion"`, `'{cniVersion"`, 1) + "---\n" + vmDoc, "spec.config is not valid JSON"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Load("bad.yaml", []byte(tc.data))
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			if !IsInputError(err) {
				t.Errorf("error %v is not an InputError", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestUnknownFieldsWalk(t *testing.T) {
	doc := strings.Replace(vmDoc, "      domain:\n", "      domain:\n        clock:\n          madeUp: 1\n        madeUpDomainField: true\n", 1)
	doc = strings.Replace(doc, "  name: vm1\n", "  name: vm1\n  madeUpMeta: x\n", 1)
	doc = strings.Replace(doc, "    spec:\n", "    metadata:\n      madeUpTemplateMeta: x\n    spec:\n", 1)
	s, err := Load("walk.yaml", []byte(nadDoc+"---\n"+doc))
	if err != nil {
		t.Fatal(err)
	}
	if s.Rejection == nil {
		t.Fatal("no rejection")
	}
	// clock and the template's metadata preserve unknown fields in KubeVirt's
	// CRD schema; the root metadata does not.
	want := "metadata.madeUpMeta,spec.template.spec.domain.madeUpDomainField"
	if got := strings.Join(s.Rejection.Fields, ","); got != want {
		t.Errorf("unknown fields %q, want %q", got, want)
	}
}

func TestLoadDirFixtures(t *testing.T) {
	dir := filepath.Join("..", "..", "scenarios")
	if _, err := os.Stat(dir); err != nil {
		t.Skip("no scenarios directory")
	}
	scenarios, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range scenarios {
		if !s.Harness {
			// scenarios/examples holds manifests as users write them.
			continue
		}
		if s.Spec.Expect == nil {
			t.Errorf("%s: fixture without expectation", s.Source)
		}
		if _, ok := s.ProbeAddress(); !ok {
			t.Errorf("%s: fixture without probe address", s.Source)
		}
		rejected := s.Spec.Expect != nil && s.Spec.Expect.Outcome == Rejected
		if rejected != (s.Rejection != nil) {
			t.Errorf("%s: expectation says rejected=%v, decoding says %v", s.Source, rejected, s.Rejection)
		}
	}
}

func TestTargetFromFixtures(t *testing.T) {
	cases := map[string]struct{ address, peer, source, network string }{
		"macvlan/cloud-init-nic-name.yaml":       {"192.0.2.42", "192.0.2.62/27", "spec.probe", "mynet"},
		"linux-bridge/cloud-init-mac-match.yaml": {"198.51.100.106", "198.51.100.126/27", "spec.probe", "mynet"},
	}
	for file, want := range cases {
		s, err := LoadFile(filepath.Join("..", "..", "scenarios", file))
		if err != nil {
			t.Fatal(err)
		}
		target, err := s.Target()
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if target.Address.String() != want.address || target.Peer.String() != want.peer || target.Source != want.source || target.Attachment.Network.Name != want.network {
			t.Errorf("%s: target %s peer %s source %s network %s, want %+v", file, target.Address, target.Peer, target.Source, target.Attachment.Network.Name, want)
		}
		if target.Prefix.Bits() != 27 {
			t.Errorf("%s: prefix %s, want /27 from the config", file, target.Prefix)
		}
	}
}

func TestTargetInferred(t *testing.T) {
	s, err := Load("user.yaml", []byte(nadDoc+"---\n"+vmDoc))
	if err != nil {
		t.Fatal(err)
	}
	target, err := s.Target()
	if err != nil {
		t.Fatal(err)
	}
	if target.Address.String() != "192.0.2.10" || target.Source != "NAD IPAM" || target.Peer.String() != "192.0.2.254/24" {
		t.Errorf("target %+v", target)
	}
}

func TestUnknownFieldSuggestions(t *testing.T) {
	doc := strings.Replace(vmDoc, "            bridge: {}", "            bridge: {}\n            macadress: 02:00:00:00:00:01", 1)
	s, err := Load("typo.yaml", []byte(nadDoc+"---\n"+doc))
	if err != nil {
		t.Fatal(err)
	}
	if s.Rejection == nil {
		t.Fatal("no rejection for a misspelt field")
	}
	path := "spec.template.spec.domain.devices.interfaces[1].macadress"
	if got := s.Rejection.Suggestions[path]; got != "macAddress" {
		t.Errorf("suggestion for %s: %q, want macAddress (all: %v)", path, got, s.Rejection.Suggestions)
	}
}

func TestHarnessSectionSuggestion(t *testing.T) {
	_, err := Load("h.yaml", []byte("apiVersion: vmnet-e2e.dev/v1alpha1\nkind: Scenario\nmetadata:\n  name: s\nspec:\n  prob: 192.0.2.1\n---\n"+nadDoc+"---\n"+vmDoc))
	if err == nil || !strings.Contains(err.Error(), `spec.prob: did you mean "probe"?`) {
		t.Errorf("error %v, want a suggestion of probe for spec.prob", err)
	}
}

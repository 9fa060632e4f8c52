package kind

import (
	"strings"
	"testing"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/vmnet-e2e/vmnet-e2e/framework/scenario"
)

func TestParentsOfTestScenarios(t *testing.T) {
	parents, err := Parents(loadTestScenarios(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(parents) != 2 {
		t.Fatalf("Parents = %+v, want br-vmnet and br-vtap", parents)
	}

	macvlan, macvtap := parents[0], parents[1]
	if macvlan.Name != "br-vmnet" || len(macvlan.Macvtap) != 0 {
		t.Errorf("first parent = %+v, want br-vmnet without macvtap resources", macvlan)
	}
	if len(macvlan.Users) != 1 || !strings.Contains(macvlan.Users[0], "default/macvlan-net (macvlan)") {
		t.Errorf("br-vmnet users = %v, want the macvlan NAD", macvlan.Users)
	}
	want := MacvtapResource{Name: "br-vtap", LowerDevice: "br-vtap", Mode: "bridge", Capacity: macvtapCapacity}
	if macvtap.Name != "br-vtap" || len(macvtap.Macvtap) != 1 || macvtap.Macvtap[0] != want {
		t.Errorf("second parent = %+v, want br-vtap with resource %+v", macvtap, want)
	}
}

func TestParentOfPlugins(t *testing.T) {
	resource := map[string]string{ResourceNameAnnotation: "macvtap.network.kubevirt.io/dataplane"}
	cases := []struct {
		name        string
		nad         *nadv1.NetworkAttachmentDefinition
		wantParent  string
		wantLower   string
		wantErrText string
	}{
		{name: "macvlan master", nad: nadWith("a", `{"type":"macvlan","master":"br-a"}`, nil), wantParent: "br-a"},
		{name: "bridge plugin", nad: nadWith("b", `{"type":"bridge","bridge":"br-b"}`, nil), wantParent: "br-b"},
		{name: "bridge plugin default", nad: nadWith("c", `{"type":"bridge"}`, nil), wantParent: "cni0"},
		{name: "conflist", nad: nadWith("d", `{"cniVersion":"1.0.0","plugins":[{"type":"macvlan","master":"br-d"},{"type":"tuning"}]}`, nil), wantParent: "br-d"},
		{name: "macvtap resource", nad: nadWith("e", `{"type":"macvtap"}`, resource), wantParent: "dataplane", wantLower: "dataplane"},
		{name: "macvtap master", nad: nadWith("f", `{"type":"macvtap","master":"br-f"}`, resource), wantParent: "br-f", wantLower: "br-f"},
		{name: "macvlan without master", nad: nadWith("g", `{"type":"macvlan"}`, nil), wantErrText: `without "master"`},
		{name: "macvtap without resource", nad: nadWith("h", `{"type":"macvtap"}`, nil), wantErrText: ResourceNameAnnotation},
		{name: "ipvlan", nad: nadWith("i", `{"type":"ipvlan","master":"x"}`, nil), wantErrText: `"ipvlan" is not supported`},
		{name: "long parent", nad: nadWith("j", `{"type":"macvlan","master":"a-very-long-bridge"}`, nil), wantErrText: "not a valid link name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cni, err := scenario.ParseCNIConfig(c.nad.Spec.Config)
			if err != nil {
				t.Fatal(err)
			}
			got, err := parentOf(c.nad, cni)
			if c.wantErrText != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErrText) {
					t.Fatalf("parentOf error = %v, want one containing %q", err, c.wantErrText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.parent != c.wantParent {
				t.Errorf("parent = %q, want %q", got.parent, c.wantParent)
			}
			if c.wantLower != "" && (got.macvtap == nil || got.macvtap.LowerDevice != c.wantLower) {
				t.Errorf("macvtap resource = %+v, want lower device %q", got.macvtap, c.wantLower)
			}
		})
	}
}

func TestParentsRejectConflictingMacvtapResources(t *testing.T) {
	a := loadScenario(t, macvtapScenario)
	b := loadScenario(t, macvtapScenario)
	b.Name = "other"
	b.NADs[0] = b.NADs[0].DeepCopy()
	b.NADs[0].Spec.Config = `{"type":"macvtap","master":"br-other"}`

	if _, err := Parents([]*scenario.Scenario{a, a}); err != nil {
		t.Fatalf("the same resource twice: %v", err)
	}
	_, err := Parents([]*scenario.Scenario{a, b})
	if err == nil || !strings.Contains(err.Error(), `macvtap resource "br-vtap"`) {
		t.Fatalf("Parents error = %v, want a conflict on br-vtap", err)
	}
}

func TestUnsupportedReasonForSRIOV(t *testing.T) {
	s := loadScenario(t, macvlanScenario)
	s.VMI = s.VMI.DeepCopy()
	iface := &s.VMI.Spec.Domain.Devices.Interfaces[0]
	iface.Bridge = nil
	iface.SRIOV = &kubevirtv1.InterfaceSRIOV{}
	if reason := unsupportedReason(s); !strings.Contains(reason, "SR-IOV") {
		t.Errorf("unsupportedReason = %q, want an SR-IOV reason", reason)
	}
	if reason := unsupportedReason(loadScenario(t, macvlanScenario)); reason != "" {
		t.Errorf("unsupportedReason for the macvlan scenario = %q, want none", reason)
	}
}

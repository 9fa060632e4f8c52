// Package lint finds the problems in a user's NAD and VM manifests that keep
// a static IP on a secondary network from being reachable, without a
// cluster, a guest or root. It checks fields the API server rejects,
// networkData cloud-init cannot use as written, names the guest will not
// have, MAC handling, and the macvlan + bridge binding combination.
//
// Every check states its source: the KubeVirt v1.9.0, cloud-init 22.4.2,
// Multus v4.3.0 or Linux behaviour it predicts. The local provider's runs
// confirm the predictions on a real guest.
package lint

import (
	"fmt"
	"sort"
	"strings"

	"github.com/vmnet-e2e/vmnet-e2e/framework/cloudinit"
	"github.com/vmnet-e2e/vmnet-e2e/framework/scenario"
)

// Severity ranks a finding.
type Severity string

const (
	// Error: the static IP will not be reachable, or the API server rejects
	// the manifest.
	Error Severity = "error"
	// Warning: it works only under conditions the manifest does not pin
	// down.
	Warning Severity = "warning"
)

// Check names, stable for tests and JSON output.
const (
	CheckUnknownField       = "UnknownField"
	CheckNetworkDataInvalid = "NetworkDataInvalid"
	CheckUppercaseMAC       = "UppercaseMAC"
	CheckMACNotString       = "MACNotString"
	CheckNameTooLong        = "NameTooLong"
	CheckNoSuchGuestNIC     = "NoSuchGuestNIC"
	CheckMACMatchWithoutMAC = "MACMatchWithoutSpecMAC"
	CheckNADWithoutMACCap   = "NADWithoutMACCapability"
	CheckMacvlanBridge      = "MacvlanWithBridgeBinding"
)

// Finding is one problem.
type Finding struct {
	Check    string   `json:"check"`
	Severity Severity `json:"severity"`
	// Object is "Kind/name" of the manifest, and Path the field in it.
	Object  string `json:"object"`
	Path    string `json:"path,omitempty"`
	Message string `json:"message"`
	Fix     string `json:"fix"`
}

// maxNameLength is IFNAMSIZ-1, the kernel's limit for interface names.
const maxNameLength = 15

// Scenario runs every check on a loaded scenario and returns the findings,
// errors first.
func Scenario(s *scenario.Scenario) []Finding {
	var out []Finding
	out = append(out, unknownFields(s)...)
	if s.VMI != nil {
		out = append(out, networkData(s)...)
		out = append(out, macCapability(s)...)
		out = append(out, macvlanBridge(s)...)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Severity == Error && out[j].Severity != Error })
	return out
}

// HasErrors reports whether any finding is an error.
func HasErrors(findings []Finding) bool {
	for _, f := range findings {
		if f.Severity == Error {
			return true
		}
	}
	return false
}

func unknownFields(s *scenario.Scenario) []Finding {
	if s.Rejection == nil {
		return nil
	}
	var out []Finding
	for _, field := range s.Rejection.Fields {
		fix := "remove the field, or correct its name against the kubevirt.io/v1 API"
		if name, ok := s.Rejection.Suggestions[field]; ok {
			fix = fmt.Sprintf("rename it to %q, the field it most likely misspells", name)
		}
		if strings.HasSuffix(field, ".ipAddress") || strings.HasSuffix(field, ".ipAddresses") {
			fix = "KubeVirt v1 has no IP field on networks or interfaces (ipAddress exists only in status.interfaces[]): put the address in cloud-init networkData, matched by MAC with spec macAddress, or in the NAD's IPAM"
		}
		out = append(out, Finding{
			Check: CheckUnknownField, Severity: Error, Object: s.Rejection.Object, Path: field,
			Message: fmt.Sprintf("unknown field %q: kube-apiserver rejects the object under fieldValidation=Strict (kubectl's default) and drops the field under Warn", field),
			Fix:     fix,
		})
	}
	return out
}

// macvlanBridge flags a macvlan NAD under KubeVirt's bridge binding. The
// binding gives the macvlan link the in-pod bridge's MAC and the guest the
// link's original MAC (kubevirt v1.9.0 pkg/network/setup/netpod/netpod.go,
// bridgeBindingSpec). A non-passthru macvlan passes unicast for a MAC that no
// macvlan on the parent carries to the parent's own stack, which drops it
// (Linux drivers/net/macvlan.c, macvlan_handle_frame).
func macvlanBridge(s *scenario.Scenario) []Finding {
	var out []Finding
	for _, a := range s.SecondaryAttachments() {
		if a.CNI.Type != "macvlan" || a.Binding != scenario.BindingBridge || a.CNI.Mode == "passthru" {
			continue
		}
		out = append(out, Finding{
			Check: CheckMacvlanBridge, Severity: Error, Object: vmObject(s),
			Path: specPath(s, fmt.Sprintf("domain.devices.interfaces[%d]", a.Index)),
			Message: fmt.Sprintf("interface %q uses the bridge binding on macvlan NAD %s/%s: the bridge binding moves the guest's MAC off the macvlan link, so the parent drops every unicast frame for the guest whatever its IP configuration",
				a.Interface.Name, a.NAD.Namespace, a.NAD.Name),
			Fix: "use the linux-bridge CNI plugin (type: bridge) with the bridge binding, or keep the parent and switch to the macvtap binding with macvtap-cni",
		})
	}
	return out
}

// macCapability flags a NAD without "capabilities": {"mac": true} under an
// interface that sets macAddress. Multus v4.3.0 still sends the MAC as
// CNI_ARGS MAC=, which the macvlan, bridge and macvtap plugins read, so this
// is a warning: a plugin that reads only runtimeConfig.mac gets no MAC.
func macCapability(s *scenario.Scenario) []Finding {
	var out []Finding
	for _, a := range s.SecondaryAttachments() {
		if a.MAC == nil || a.CNI.MACCapability || a.Binding == scenario.BindingMacvtap {
			continue
		}
		out = append(out, Finding{
			Check: CheckNADWithoutMACCap, Severity: Warning, Object: "NetworkAttachmentDefinition/" + a.NAD.Name, Path: "spec.config",
			Message: fmt.Sprintf("interface %q sets macAddress %s but the NAD does not declare the mac capability: libcni passes runtimeConfig.mac only to plugins that declare it, and the MAC reaches the plugin only through CNI_ARGS", a.Interface.Name, a.MAC),
			Fix:     `add "capabilities": {"mac": true} to the NAD's plugin config`,
		})
	}
	return out
}

// specPath returns the path of a VMI spec field in the manifest the user
// wrote: under spec.template.spec for a VirtualMachine.
func specPath(s *scenario.Scenario, field string) string {
	if s.VM != nil {
		return "spec.template.spec." + field
	}
	return "spec." + field
}

func vmObject(s *scenario.Scenario) string {
	if s.VM != nil {
		return "VirtualMachine/" + s.VM.Name
	}
	return "VirtualMachineInstance/" + s.VMI.Name
}

// guestNICs returns the names the guest gives its NICs, in spec order, with
// the network each belongs to.
func guestNICs(s *scenario.Scenario) map[string]scenario.Attachment {
	names := map[string]scenario.Attachment{}
	for _, a := range s.Attachments() {
		names[scenario.PredictedNICName(a.Index)] = a
	}
	return names
}

func describeGuestNICs(s *scenario.Scenario) string {
	var parts []string
	for _, a := range s.Attachments() {
		parts = append(parts, fmt.Sprintf("%s (network %s)", scenario.PredictedNICName(a.Index), a.Network.Name))
	}
	return strings.Join(parts, ", ")
}

// networkDataOf returns the VMI's networkData and its field path.
func networkDataOf(s *scenario.Scenario) ([]byte, string) {
	for i, v := range s.VMI.Spec.Volumes {
		if v.CloudInitNoCloud == nil {
			continue
		}
		base := specPath(s, fmt.Sprintf("volumes[%d].cloudInitNoCloud", i))
		if v.CloudInitNoCloud.NetworkData != "" {
			return []byte(v.CloudInitNoCloud.NetworkData), base + ".networkData"
		}
		if v.CloudInitNoCloud.NetworkDataBase64 != "" {
			seed, err := cloudinit.SeedFromVMI(s.VMI)
			if err == nil && seed.NetworkConfig != nil {
				return seed.NetworkConfig, base + ".networkDataBase64"
			}
		}
	}
	return nil, ""
}

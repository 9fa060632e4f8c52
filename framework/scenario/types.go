// Package scenario loads the files a run is made of: the manifests a platform
// team applies (NetworkAttachmentDefinitions and one VirtualMachine or
// VirtualMachineInstance, kubevirt.io/v1) and an optional harness section that
// names the address to probe and which verdict to expect.
//
// Manifests are decoded with the kubevirt.io/api and NAD client types under
// strict field validation, so a manifest the API server would reject with
// fieldValidation=Strict (kubectl's default) yields a Rejection rather than a
// silently pruned field.
package scenario

import (
	"net/netip"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"
)

// APIVersion and Kind identify the harness section of a scenario file.
const (
	APIVersion = "vmnet-e2e.dev/v1alpha1"
	Kind       = "Scenario"
)

// Outcome is the result of probing the static IP from outside the pod.
type Outcome string

const (
	// Reachable means the static IP replied to ICMP echo from the external peer.
	Reachable Outcome = "reachable"
	// Unreachable means the VM was created but its static IP sent no reply.
	Unreachable Outcome = "unreachable"
	// Rejected means the API server would refuse the manifests, so no VM runs.
	Rejected Outcome = "rejected"
)

// Valid reports whether o is one of the three outcomes.
func (o Outcome) Valid() bool {
	return o == Reachable || o == Unreachable || o == Rejected
}

// Scenario is one loaded scenario file.
type Scenario struct {
	// Name is the harness section's metadata.name, or the file name without
	// extension when the file has no harness section.
	Name string
	// Source is the path the scenario was loaded from.
	Source string
	// Spec is the harness section; its zero value means "probe the inferred
	// address and expect nothing".
	Spec Spec
	// Harness reports whether the file has a harness section.
	Harness bool

	// NADs are the NetworkAttachmentDefinitions in the file.
	NADs []*nadv1.NetworkAttachmentDefinition
	// VM is set when the file holds a VirtualMachine.
	VM *kubevirtv1.VirtualMachine
	// VMI is the instance that runs: the file's VirtualMachineInstance, or the
	// one KubeVirt would create from VM's template. Nil when Rejection is set
	// and the VM could not be decoded at all.
	VMI *kubevirtv1.VirtualMachineInstance

	// Rejection is set when the API server would refuse an object in the
	// file under strict field validation.
	Rejection *Rejection
	// Warnings lists what the API server would drop from the objects under
	// fieldValidation=Warn: the same unknown fields as Rejection.
	Warnings []string

	// Objects are the file's Kubernetes documents in file order, as JSON, for
	// providers that apply them to a real API server.
	Objects []Object
}

// Spec is the harness section of a scenario file.
type Spec struct {
	// CNI, Binding and Strategy label the scenario in reports and Ginkgo
	// label filters. CNI and Binding are checked against the manifests.
	CNI      string `json:"cni,omitempty"`
	Binding  string `json:"binding,omitempty"`
	Strategy string `json:"strategy,omitempty"`

	// Description is a sentence shown in reports.
	Description string `json:"description,omitempty"`

	// Probe is the address the external peer probes. When empty the harness
	// infers it from networkData or the NAD's IPAM.
	Probe string `json:"probe,omitempty"`
	// Peer is the external peer's address with prefix length, in the probed
	// subnet. When empty the harness picks the highest usable address of the
	// probed address's subnet.
	Peer string `json:"peer,omitempty"`

	// Expect is compared with the observed verdict; it never feeds it.
	Expect *Expectation `json:"expect,omitempty"`
}

// Expectation is the verdict a scenario is expected to produce.
type Expectation struct {
	Outcome Outcome `json:"outcome"`
	// Causes lists every cause the verdict must name, compared as a set.
	// Empty for a reachable outcome.
	Causes []string `json:"causes,omitempty"`
}

// Rejection records why the API server would refuse an object.
type Rejection struct {
	// Object is "Kind/name" of the refused object.
	Object string `json:"object"`
	// Fields are the unknown field paths, as the API server writes them
	// (for example "spec.template.spec.networks[0].ipAddress").
	Fields []string `json:"fields"`
	// Message is the full strict decoding error.
	Message string `json:"message"`
	// Suggestions maps an unknown field path to the declared field it most
	// likely misspells, when one is close (the harness adds this; the API
	// server does not).
	Suggestions map[string]string `json:"suggestions,omitempty"`
}

// Object is one Kubernetes document of a scenario file.
type Object struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace"`
	Name       string `json:"name"`
	// JSON is the document as written, converted from YAML to JSON, with no
	// field added, removed or defaulted.
	JSON []byte `json:"-"`
}

// ProbeAddress returns the address to probe and whether one is set.
func (s *Scenario) ProbeAddress() (netip.Addr, bool) {
	if s.Spec.Probe == "" {
		return netip.Addr{}, false
	}
	addr, err := netip.ParseAddr(s.Spec.Probe)
	return addr, err == nil
}

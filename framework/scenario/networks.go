package scenario

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	kubevirtv1 "kubevirt.io/api/core/v1"
)

// Binding names how KubeVirt connects a VMI interface to its pod network.
type Binding string

const (
	BindingBridge     Binding = "bridge"
	BindingMasquerade Binding = "masquerade"
	BindingSRIOV      Binding = "sriov"
	BindingPasst      Binding = "passt"
	// BindingMacvtap is the "macvtap" network binding plugin
	// (interfaces[].binding.name: macvtap) used with kubevirt/macvtap-cni.
	BindingMacvtap Binding = "macvtap"
)

// Attachment is one VMI interface with its network. The guest's NICs follow
// the order of spec.domain.devices.interfaces.
type Attachment struct {
	// Index is the interface's position in spec.domain.devices.interfaces.
	Index int
	// NetworkIndex is the network's position in spec.networks. KubeVirt
	// v1.9.0 numbers the bridge binding's 169.254.75.1<i> bridge address by
	// it, and the DHCP server identifier by Index.
	NetworkIndex int
	Interface    kubevirtv1.Interface
	Network      kubevirtv1.Network
	Binding      Binding
	// MAC is the interface's spec macAddress, or nil when KubeVirt chooses.
	MAC net.HardwareAddr

	// NAD is the referenced NetworkAttachmentDefinition; nil for the pod
	// network.
	NAD *nadv1.NetworkAttachmentDefinition
	// CNI describes the NAD's config; zero for the pod network.
	CNI CNIConfig
}

// IsPodNetwork reports whether the attachment is the VMI's pod network,
// which the local provider does not rebuild.
func (a Attachment) IsPodNetwork() bool { return a.Network.Pod != nil }

// CNIConfig is what the harness reads from a NAD's spec.config.
type CNIConfig struct {
	// Type is the first plugin's type (macvlan, bridge, macvtap, ...).
	Type string
	// Master is the macvlan or macvtap parent link; Bridge is the
	// linux-bridge plugin's bridge name.
	Master string
	Bridge string
	// Mode is the macvlan or macvtap mode ("bridge" when unset, the plugins'
	// default).
	Mode string
	// MACCapability is true when the config declares "capabilities":
	// {"mac": true}; only then does libcni pass runtimeConfig.mac.
	MACCapability bool
	// IPAMType is the first plugin's ipam.type, empty without IPAM.
	IPAMType string
	// StaticAddresses are the static IPAM plugin's addresses.
	StaticAddresses []netip.Prefix
	// Subnet is host-local's subnet (ipam.subnet or the first range).
	Subnet netip.Prefix
}

// Attachments returns the VMI's interfaces joined with their networks and
// NADs. Load has already checked that every reference resolves.
func (s *Scenario) Attachments() []Attachment {
	if s.VMI == nil {
		return nil
	}
	networks := map[string]kubevirtv1.Network{}
	networkIndex := map[string]int{}
	for i, n := range s.VMI.Spec.Networks {
		networks[n.Name] = n
		networkIndex[n.Name] = i
	}

	var out []Attachment
	for i, iface := range s.VMI.Spec.Domain.Devices.Interfaces {
		a := Attachment{Index: i, NetworkIndex: networkIndex[iface.Name], Interface: iface, Network: networks[iface.Name], Binding: bindingOf(iface)}
		if iface.MacAddress != "" {
			a.MAC, _ = net.ParseMAC(iface.MacAddress)
		}
		if a.Network.Multus != nil {
			a.NAD = s.nadFor(a.Network.Multus.NetworkName)
			if a.NAD != nil {
				a.CNI, _ = ParseCNIConfig(a.NAD.Spec.Config)
				if a.CNI.Type == "macvtap" && a.CNI.Master == "" {
					a.CNI.Master = MacvtapLowerDevice(a.NAD)
				}
			}
		}
		out = append(out, a)
	}
	return out
}

// SecondaryAttachments returns the attachments on Multus networks.
func (s *Scenario) SecondaryAttachments() []Attachment {
	var out []Attachment
	for _, a := range s.Attachments() {
		if a.NAD != nil {
			out = append(out, a)
		}
	}
	return out
}

func bindingOf(iface kubevirtv1.Interface) Binding {
	switch {
	case iface.Bridge != nil:
		return BindingBridge
	case iface.Masquerade != nil:
		return BindingMasquerade
	case iface.SRIOV != nil:
		return BindingSRIOV
	case iface.Binding != nil:
		return Binding(iface.Binding.Name)
	}
	// KubeVirt's defaulting (pkg/virt-api/webhooks/mutating-webhook) picks
	// bridge for an interface with no binding on a non-pod network.
	return BindingBridge
}

// nadFor resolves a multus networkName ("name" or "namespace/name") against
// the scenario's NADs; the default namespace is the VMI's.
func (s *Scenario) nadFor(ref string) *nadv1.NetworkAttachmentDefinition {
	namespace, name := s.VMI.Namespace, ref
	if i := strings.IndexByte(ref, '/'); i >= 0 {
		namespace, name = ref[:i], ref[i+1:]
	}
	for _, nad := range s.NADs {
		if nad.Name == name && nad.Namespace == namespace {
			return nad
		}
	}
	return nil
}

// ParseCNIConfig reads the fields the harness needs from a NAD's config: a
// single plugin config or a conflist (then the first plugin counts).
func ParseCNIConfig(config string) (CNIConfig, error) {
	if strings.TrimSpace(config) == "" {
		return CNIConfig{}, errors.New("empty spec.config: a NAD without config needs a CNI config file on the node, which the harness does not read; put the CNI JSON in spec.config")
	}

	var top struct {
		Type    string            `json:"type"`
		Plugins []json.RawMessage `json:"plugins"`
	}
	if err := json.Unmarshal([]byte(config), &top); err != nil {
		return CNIConfig{}, fmt.Errorf("spec.config is not valid JSON: %w", err)
	}
	plugin := []byte(config)
	if top.Type == "" {
		if len(top.Plugins) == 0 {
			return CNIConfig{}, fmt.Errorf(`spec.config has neither "type" (one plugin) nor "plugins" (a list); its keys are %s: add "type", for example "type": "macvlan"`, jsonKeys(config))
		}
		plugin = top.Plugins[0]
	}

	var p struct {
		Type         string          `json:"type"`
		Master       string          `json:"master"`
		Bridge       string          `json:"bridge"`
		Mode         string          `json:"mode"`
		Capabilities map[string]bool `json:"capabilities"`
		IPAM         struct {
			Type      string `json:"type"`
			Subnet    string `json:"subnet"`
			Addresses []struct {
				Address string `json:"address"`
			} `json:"addresses"`
			Ranges [][]struct {
				Subnet string `json:"subnet"`
			} `json:"ranges"`
		} `json:"ipam"`
	}
	if err := json.Unmarshal(plugin, &p); err != nil {
		return CNIConfig{}, fmt.Errorf("plugin config is not valid JSON: %w", err)
	}
	if p.Type == "" {
		return CNIConfig{}, errors.New(`plugin config has no "type"`)
	}

	c := CNIConfig{
		Type: p.Type, Master: p.Master, Bridge: p.Bridge, Mode: p.Mode,
		MACCapability: p.Capabilities["mac"], IPAMType: p.IPAM.Type,
	}
	if (c.Type == "macvlan" || c.Type == "macvtap") && c.Mode == "" {
		c.Mode = "bridge"
	}
	if c.Type == "bridge" && c.Bridge == "" {
		// containernetworking/plugins plugins/main/bridge: defaultBrName.
		c.Bridge = "cni0"
	}
	for _, a := range p.IPAM.Addresses {
		prefix, err := netip.ParsePrefix(a.Address)
		if err != nil {
			return CNIConfig{}, fmt.Errorf("static IPAM address %q is not a CIDR (want for example 192.0.2.10/24): %w", a.Address, err)
		}
		c.StaticAddresses = append(c.StaticAddresses, prefix)
	}
	subnet := p.IPAM.Subnet
	if subnet == "" && len(p.IPAM.Ranges) > 0 && len(p.IPAM.Ranges[0]) > 0 {
		subnet = p.IPAM.Ranges[0][0].Subnet
	}
	if subnet != "" {
		prefix, err := netip.ParsePrefix(subnet)
		if err != nil {
			return CNIConfig{}, fmt.Errorf("IPAM subnet %q is not a CIDR (want for example 192.0.2.0/24): %w", subnet, err)
		}
		c.Subnet = prefix.Masked()
	}
	return c, nil
}

// MacvtapResourcePrefix is the resource prefix of kubevirt/macvtap-cni's
// device plugin; a NAD requests a macvtap with the annotation
// k8s.v1.cni.cncf.io/resourceName: macvtap.network.kubevirt.io/<name>.
const MacvtapResourcePrefix = "macvtap.network.kubevirt.io/"

// MacvtapLowerDevice returns the parent link of a macvtap NAD: the
// resource name after MacvtapResourcePrefix. macvtap-cni v0.13.1 maps that
// name to a lower device through its device plugin's ConfigMap. The harness,
// and the ConfigMap of its kind provider, use the same name for both, as
// macvtap-cni's auto-discovery does for the links it finds.
func MacvtapLowerDevice(nad *nadv1.NetworkAttachmentDefinition) string {
	resource := nad.Annotations["k8s.v1.cni.cncf.io/resourceName"]
	return strings.TrimPrefix(resource, MacvtapResourcePrefix)
}

// jsonKeys lists the top-level keys of a JSON object, for error messages.
func jsonKeys(config string) string {
	var object map[string]json.RawMessage
	if err := json.Unmarshal([]byte(config), &object); err != nil || len(object) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(object))
	for k := range object {
		keys = append(keys, fmt.Sprintf("%q", k))
	}
	sort.Strings(keys)
	return strings.Join(keys, ", ")
}

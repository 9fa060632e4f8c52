package kind

import (
	"fmt"
	"sort"
	"strings"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"

	"github.com/vmnet-e2e/vmnet-e2e/framework/scenario"
)

// Names macvtap-cni v0.13.1 uses (pkg/deviceplugin/lister.go).
const (
	// ResourceNameAnnotation is the NAD annotation through which Multus and
	// KubeVirt request a device plugin resource for the network.
	ResourceNameAnnotation = "k8s.v1.cni.cncf.io/resourceName"
	// macvtapCapacity is the number of macvtap devices the device plugin
	// offers per resource and node, the example value of its README.
	macvtapCapacity = 50
)

// Parent is a bridge the provider creates in every node's network namespace,
// because a scenario's NAD names it: the macvlan "master", the linux-bridge
// plugin's "bridge", or a macvtap resource's lower device. The bridges of
// one name form one L2 segment with the external endpoint.
type Parent struct {
	Name string
	// Users are the NADs that name the parent, as "scenario: namespace/name
	// (type)", for the plan and for errors.
	Users []string
	// Macvtap lists the device plugin resources on this parent.
	Macvtap []MacvtapResource
}

// MacvtapResource is one entry of macvtap-cni's DP_MACVTAP_CONF.
type MacvtapResource struct {
	Name        string `json:"name"`
	LowerDevice string `json:"lowerDevice"`
	Mode        string `json:"mode"`
	Capacity    int    `json:"capacity"`
}

// nadParent is the parent link, and the macvtap resource if any, that one
// NAD needs on the nodes.
type nadParent struct {
	parent  string
	macvtap *MacvtapResource
}

// parentOf returns the parent a NAD names, or an error saying why the kind
// provider cannot wire the NAD's plugin.
func parentOf(nad *nadv1.NetworkAttachmentDefinition, cni scenario.CNIConfig) (nadParent, error) {
	ref := nad.Namespace + "/" + nad.Name
	switch cni.Type {
	case "macvlan":
		if cni.Master == "" {
			// The macvlan plugin then takes the interface of the default
			// route, which on kind is the node's eth0 on the Docker
			// network, out of reach of the external endpoint.
			return nadParent{}, fmt.Errorf("NAD %s: macvlan without \"master\": name the parent link, for example \"master\": \"br-vmnet\"", ref)
		}
		return nadParent{parent: cni.Master}, validParentName(ref, cni.Master)

	case "bridge":
		return nadParent{parent: cni.Bridge}, validParentName(ref, cni.Bridge)

	case "macvtap":
		// macvtap-cni's plugin takes its link from the device plugin
		// (deviceID), never from the config, so the parent comes from the
		// resource the NAD requests. A "master" in the config, which the
		// plugin ignores, names the lower device when present.
		resource := nad.Annotations[ResourceNameAnnotation]
		name, ok := strings.CutPrefix(resource, scenario.MacvtapResourcePrefix)
		if !ok || name == "" {
			return nadParent{}, fmt.Errorf("NAD %s: macvtap needs the annotation %s: %s<name>, got %q", ref, ResourceNameAnnotation, scenario.MacvtapResourcePrefix, resource)
		}
		lower := cni.Master
		if lower == "" {
			lower = name
		}
		mode := cni.Mode
		if mode == "" {
			mode = "bridge"
		}
		return nadParent{parent: lower, macvtap: &MacvtapResource{Name: name, LowerDevice: lower, Mode: mode, Capacity: macvtapCapacity}},
			validParentName(ref, lower)
	}
	return nadParent{}, fmt.Errorf("NAD %s: CNI type %q is not supported on kind: the provider wires macvlan, bridge and macvtap", ref, cni.Type)
}

func validParentName(ref, name string) error {
	if name == "" || len(name) > 15 || strings.ContainsAny(name, "/: \t\n") || name == "." || name == ".." {
		return fmt.Errorf("NAD %s: parent %q is not a valid link name (1 to 15 bytes, no '/', ':' or spaces)", ref, name)
	}
	return nil
}

// Parents returns the parents the scenarios need, sorted by name, with the
// macvtap resources on each. Two NADs that define the same macvtap resource
// differently are an error, because the device plugin reads one
// configuration per node.
func Parents(scenarios []*scenario.Scenario) ([]Parent, error) {
	byName := map[string]*Parent{}
	resources := map[string]MacvtapResource{}

	for _, s := range scenarios {
		for _, nad := range s.NADs {
			cni, err := scenario.ParseCNIConfig(nad.Spec.Config)
			if err != nil {
				return nil, fmt.Errorf("kind: scenario %s: NAD %s/%s: %w", s.Name, nad.Namespace, nad.Name, err)
			}
			np, err := parentOf(nad, cni)
			if err != nil {
				return nil, fmt.Errorf("kind: scenario %s: %w", s.Name, err)
			}

			p := byName[np.parent]
			if p == nil {
				p = &Parent{Name: np.parent}
				byName[np.parent] = p
			}
			p.Users = append(p.Users, fmt.Sprintf("%s: %s/%s (%s)", s.Name, nad.Namespace, nad.Name, cni.Type))

			if r := np.macvtap; r != nil {
				if prev, ok := resources[r.Name]; ok {
					if prev != *r {
						return nil, fmt.Errorf("kind: scenario %s: NAD %s/%s defines macvtap resource %q as %+v, another NAD as %+v: use one definition per resource name",
							s.Name, nad.Namespace, nad.Name, r.Name, *r, prev)
					}
					continue
				}
				resources[r.Name] = *r
				p.Macvtap = append(p.Macvtap, *r)
			}
		}
	}

	names := make([]string, 0, len(byName))
	for name := range byName {
		names = append(names, name)
	}
	sort.Strings(names)
	out := make([]Parent, 0, len(names))
	for _, name := range names {
		out = append(out, *byName[name])
	}
	return out, nil
}

// MacvtapResources returns every macvtap resource of parents, sorted by name.
func MacvtapResources(parents []Parent) []MacvtapResource {
	var out []MacvtapResource
	for _, p := range parents {
		out = append(out, p.Macvtap...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// unsupportedReason returns why the kind provider cannot run s, or "".
func unsupportedReason(s *scenario.Scenario) string {
	for _, nad := range s.NADs {
		cni, err := scenario.ParseCNIConfig(nad.Spec.Config)
		if err != nil {
			return err.Error()
		}
		if _, err := parentOf(nad, cni); err != nil {
			return err.Error()
		}
	}
	for _, a := range s.Attachments() {
		switch a.Binding {
		case scenario.BindingSRIOV:
			return fmt.Sprintf("interface %q uses SR-IOV binding: kind nodes have no SR-IOV devices", a.Interface.Name)
		case scenario.BindingPasst:
			return fmt.Sprintf("interface %q uses the passt binding, which the kind provider does not register", a.Interface.Name)
		}
	}
	return ""
}

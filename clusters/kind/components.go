package kind

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/vmnet-e2e/vmnet-e2e/framework/scenario"
)

// Component is one release the provider downloads and applies.
type Component struct {
	Name    string
	Version string
	URL     string
	// SHA256 is the expected digest, empty when none is pinned.
	SHA256 string
	// Check describes how the download is verified.
	Check string
	// Changes lists what the harness changes in the manifest before it
	// applies it.
	Changes []string
}

// Where KubeVirt v1.9.0 installs itself: the operator manifest creates the
// namespace "kubevirt", and the release's kubevirt-cr.yaml names the CR
// kubevirt/kubevirt (tools/resource-generator/resource-generator.go,
// newKubeVirtCR).
const (
	KubeVirtNamespace = "kubevirt"
	KubeVirtName      = "kubevirt"
)

// multusMemoryLimit replaces the 50Mi memory limit of the kube-multus
// container in multus-daemonset-thick.yml v4.3.0: users report the thick
// plugin's daemon killed by the OOM killer at that limit while it serves
// several CNI requests at once.
const multusMemoryLimit = "256Mi"

// externalNetResourceInjection is the KubeVirt feature gate that stops
// virt-controller from reading a NAD's resourceName annotation and adding the
// resource request to the launcher pod (kubevirt v1.9.0,
// pkg/virt-controller/services/template.go). The gate is Beta. KubeVirt
// v1.9.0 turns every Beta gate on unless developerConfiguration.
// disabledFeatureGates lists it (pkg/virt-config/featuregate/feature-gates.go,
// IsEnabled), while up to v1.8.4 a Beta gate stayed off unless featureGates
// listed it (pkg/virt-config/feature-gates.go). Without the resource request
// kubelet asks macvtap-cni's device plugin for no macvtap device, and the
// macvtap CNI plugin gets no deviceID to move into the pod. The provider
// therefore disables the gate whenever a NAD requests a resource.
const externalNetResourceInjection = "ExternalNetResourceInjection"

// KubeVirtSettings are the choices the KubeVirt CR depends on.
type KubeVirtSettings struct {
	// UseEmulation sets developerConfiguration.useEmulation: the nodes
	// have no /dev/kvm.
	UseEmulation bool
	// MacvtapBinding registers the macvtap network binding plugin.
	MacvtapBinding bool
	// NADResources is true when a NAD requests a device plugin resource
	// (macvtap-cni).
	NADResources bool
}

// KubeVirtSettingsFor derives the settings the scenarios need.
func KubeVirtSettingsFor(scenarios []*scenario.Scenario, useEmulation bool) KubeVirtSettings {
	k := KubeVirtSettings{UseEmulation: useEmulation}
	for _, s := range scenarios {
		for _, a := range s.Attachments() {
			k.MacvtapBinding = k.MacvtapBinding || a.Binding == scenario.BindingMacvtap
		}
		for _, nad := range s.NADs {
			k.NADResources = k.NADResources || nad.Annotations[ResourceNameAnnotation] != ""
		}
	}
	return k
}

// KubeVirtCR renders the KubeVirt CR the provider applies instead of the
// release's kubevirt-cr.yaml.
func KubeVirtCR(v Versions, k KubeVirtSettings) *unstructured.Unstructured {
	developer := map[string]any{}
	if k.UseEmulation {
		developer["useEmulation"] = true
	}
	if k.NADResources && atLeast(v.KubeVirt.Version, 1, 9) {
		developer["disabledFeatureGates"] = []any{externalNetResourceInjection}
	}

	configuration := map[string]any{}
	if len(developer) > 0 {
		configuration["developerConfiguration"] = developer
	}
	if k.MacvtapBinding {
		// The binding plugin of the KubeVirt user guide for macvtap-cni:
		// no sidecar, the pod link attached to the domain as a tap.
		configuration["network"] = map[string]any{
			"binding": map[string]any{
				"macvtap": map[string]any{"domainAttachmentType": "tap"},
			},
		}
	}

	spec := map[string]any{"imagePullPolicy": "IfNotPresent"}
	if len(configuration) > 0 {
		spec["configuration"] = configuration
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kubevirt.io/v1",
		"kind":       "KubeVirt",
		"metadata":   map[string]any{"name": KubeVirtName, "namespace": KubeVirtNamespace},
		"spec":       spec,
	}}
}

// MacvtapConfigMap renders macvtap-cni's device plugin configuration with
// every resource's lower device set explicitly: the device plugin's
// discovery (pkg/util/netlink.go, isSuitableMacvtapParent) offers only
// physical links and bonds, never the bridges the provider creates.
func MacvtapConfigMap(namespace string, resources []MacvtapResource) (*unstructured.Unstructured, error) {
	if len(resources) == 0 {
		return nil, errors.New("kind: no macvtap resources: an empty DP_MACVTAP_CONF makes the device plugin discover links instead")
	}
	conf, err := json.Marshal(resources)
	if err != nil {
		return nil, fmt.Errorf("kind: encode DP_MACVTAP_CONF: %w", err)
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1",
		"kind":       "ConfigMap",
		"metadata":   map[string]any{"name": "macvtap-deviceplugin-config", "namespace": namespace},
		"data":       map[string]any{"DP_MACVTAP_CONF": string(conf)},
	}}, nil
}

// atLeast reports whether the release tag vX.Y.Z is at least major.minor.
func atLeast(tag string, major, minor int) bool {
	parts := strings.SplitN(strings.TrimPrefix(tag, "v"), ".", 3)
	if len(parts) < 2 {
		return false
	}
	gotMajor, err1 := strconv.Atoi(parts[0])
	gotMinor, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return gotMajor > major || gotMajor == major && gotMinor >= minor
}

// emulationBroken reports whether KubeVirt version tag cannot start a VM
// under software emulation. v1.8.0's virt-handler fails to build the VM's
// cgroup device rules when /dev/kvm is absent, and v1.8.1 skips that rule
// under emulation (pkg/virt-handler/cgroup/util.go,
// generateDeviceRulesForVMI).
func emulationBroken(tag string) bool { return tag == "v1.8.0" }

// DecodeManifest splits a multi-document YAML manifest into objects, in file
// order, skipping empty documents.
func DecodeManifest(data []byte) ([]*unstructured.Unstructured, error) {
	decoder := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var objs []*unstructured.Unstructured
	for i := 1; ; i++ {
		var obj map[string]any
		err := decoder.Decode(&obj)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("kind: manifest document %d: %w", i, err)
		}
		if len(obj) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: obj}
		if u.GetKind() == "" || u.GetAPIVersion() == "" {
			return nil, fmt.Errorf("kind: manifest document %d has no kind or apiVersion", i)
		}
		objs = append(objs, u)
	}
	return objs, nil
}

// EncodeManifest writes objects as a multi-document YAML manifest.
func EncodeManifest(objs []*unstructured.Unstructured) ([]byte, error) {
	var out bytes.Buffer
	for i, obj := range objs {
		if i > 0 {
			out.WriteString("---\n")
		}
		data, err := yaml.Marshal(obj.Object)
		if err != nil {
			return nil, fmt.Errorf("kind: encode %s %s: %w", obj.GetKind(), obj.GetName(), err)
		}
		out.Write(data)
	}
	return out.Bytes(), nil
}

// PatchMultus pins the thick plugin's image in multus-daemonset-thick.yml,
// whose tagged copy names multus-cni:snapshot-thick, and raises the daemon's
// memory limit to multusMemoryLimit. It fails when the manifest no longer
// has the DaemonSet kube-system/kube-multus-ds, so that a changed layout is
// noticed.
func PatchMultus(objs []*unstructured.Unstructured, image string) error {
	ds := find(objs, "DaemonSet", "kube-system", "kube-multus-ds")
	if ds == nil {
		return errors.New("kind: Multus manifest has no DaemonSet kube-system/kube-multus-ds: check the manifest of this version")
	}
	replaced, err := replaceImages(ds, "ghcr.io/k8snetworkplumbingwg/multus-cni:", image)
	if err != nil {
		return err
	}
	if replaced == 0 {
		return errors.New("kind: Multus DaemonSet names no ghcr.io/k8snetworkplumbingwg/multus-cni image: check the manifest of this version")
	}
	return setMemoryLimit(ds, "kube-multus", multusMemoryLimit)
}

// PatchMacvtap pins macvtap-cni's image, which its tagged manifest names
// macvtap-cni:latest, and returns the DaemonSet's namespace, where the device
// plugin ConfigMap must live (the DaemonSet reads it with envFrom).
func PatchMacvtap(objs []*unstructured.Unstructured, image string) (string, error) {
	var ds *unstructured.Unstructured
	for _, obj := range objs {
		if obj.GetKind() == "DaemonSet" && obj.GetName() == "macvtap-cni" {
			ds = obj
		}
	}
	if ds == nil {
		return "", errors.New("kind: macvtap-cni manifest has no DaemonSet macvtap-cni: check the manifest of this version")
	}
	replaced, err := replaceImages(ds, "quay.io/kubevirt/macvtap-cni:", image)
	if err != nil {
		return "", err
	}
	if replaced == 0 {
		return "", errors.New("kind: macvtap-cni DaemonSet names no quay.io/kubevirt/macvtap-cni image: check the manifest of this version")
	}
	namespace := ds.GetNamespace()
	if namespace == "" {
		namespace = "default"
	}
	return namespace, nil
}

func find(objs []*unstructured.Unstructured, kind, namespace, name string) *unstructured.Unstructured {
	for _, obj := range objs {
		if obj.GetKind() == kind && obj.GetNamespace() == namespace && obj.GetName() == name {
			return obj
		}
	}
	return nil
}

// replaceImages sets image on every container and init container of a
// workload whose image starts with prefix, and returns how many it changed.
func replaceImages(workload *unstructured.Unstructured, prefix, image string) (int, error) {
	replaced := 0
	for _, field := range []string{"containers", "initContainers"} {
		path := []string{"spec", "template", "spec", field}
		containers, found, err := unstructured.NestedSlice(workload.Object, path...)
		if err != nil {
			return 0, fmt.Errorf("kind: %s %s: %s: %w", workload.GetKind(), workload.GetName(), strings.Join(path, "."), err)
		}
		if !found {
			continue
		}
		for _, c := range containers {
			container, ok := c.(map[string]any)
			if !ok {
				continue
			}
			if current, _ := container["image"].(string); strings.HasPrefix(current, prefix) {
				container["image"] = image
				replaced++
			}
		}
		if err := unstructured.SetNestedSlice(workload.Object, containers, path...); err != nil {
			return 0, fmt.Errorf("kind: %s %s: set %s: %w", workload.GetKind(), workload.GetName(), strings.Join(path, "."), err)
		}
	}
	return replaced, nil
}

func setMemoryLimit(workload *unstructured.Unstructured, container, limit string) error {
	path := []string{"spec", "template", "spec", "containers"}
	containers, _, err := unstructured.NestedSlice(workload.Object, path...)
	if err != nil {
		return fmt.Errorf("kind: %s %s: %w", workload.GetKind(), workload.GetName(), err)
	}
	for _, c := range containers {
		m, ok := c.(map[string]any)
		if !ok || m["name"] != container {
			continue
		}
		if err := unstructured.SetNestedField(m, limit, "resources", "limits", "memory"); err != nil {
			return fmt.Errorf("kind: %s %s: container %s: %w", workload.GetKind(), workload.GetName(), container, err)
		}
		return unstructured.SetNestedSlice(workload.Object, containers, path...)
	}
	return fmt.Errorf("kind: %s %s has no container %q: check the manifest of this version", workload.GetKind(), workload.GetName(), container)
}

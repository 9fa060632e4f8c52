package kind

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	kubevirtv1 "kubevirt.io/api/core/v1"
)

// decodeKubeVirtStrict decodes a rendered CR with the kubevirt.io/api types
// under strict field checking, so that a misspelt field fails.
func decodeKubeVirtStrict(t *testing.T, cr *unstructured.Unstructured) *kubevirtv1.KubeVirt {
	t.Helper()
	s := runtime.NewScheme()
	if err := kubevirtv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	serializer := kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, s, s, kjson.SerializerOptions{Strict: true})
	data, err := json.Marshal(cr.Object)
	if err != nil {
		t.Fatal(err)
	}
	kv := &kubevirtv1.KubeVirt{}
	if _, _, err := serializer.Decode(data, nil, kv); err != nil {
		t.Fatalf("rendered KubeVirt CR does not decode strictly: %v\n%s", err, data)
	}
	return kv
}

func TestKubeVirtCRForMacvtapOnV19(t *testing.T) {
	v := loadVersionsFile(t)
	settings := KubeVirtSettingsFor(loadTestScenarios(t), true)
	if !settings.MacvtapBinding || !settings.NADResources || !settings.UseEmulation {
		t.Fatalf("settings = %+v, want macvtap binding, NAD resources and emulation", settings)
	}

	kv := decodeKubeVirtStrict(t, KubeVirtCR(v, settings))
	if kv.Name != KubeVirtName || kv.Namespace != KubeVirtNamespace {
		t.Errorf("CR is %s/%s, want %s/%s", kv.Namespace, kv.Name, KubeVirtNamespace, KubeVirtName)
	}
	dev := kv.Spec.Configuration.DeveloperConfiguration
	if dev == nil || !dev.UseEmulation {
		t.Errorf("developerConfiguration = %+v, want useEmulation", dev)
	}
	if dev == nil || !slices.Equal(dev.DisabledFeatureGates, []string{"ExternalNetResourceInjection"}) {
		t.Errorf("disabledFeatureGates = %v, want [ExternalNetResourceInjection] on KubeVirt v1.9.0", dev.DisabledFeatureGates)
	}
	binding := kv.Spec.Configuration.NetworkConfiguration
	if binding == nil || binding.Binding["macvtap"].DomainAttachmentType != kubevirtv1.Tap {
		t.Errorf("network configuration = %+v, want binding macvtap with domainAttachmentType tap", binding)
	}
}

func TestKubeVirtCRBeforeV19KeepsGates(t *testing.T) {
	v := loadVersionsFile(t)
	v.KubeVirt.Version = "v1.8.4"
	kv := decodeKubeVirtStrict(t, KubeVirtCR(v, KubeVirtSettings{NADResources: true}))
	if dev := kv.Spec.Configuration.DeveloperConfiguration; dev != nil && len(dev.DisabledFeatureGates) > 0 {
		t.Errorf("v1.8.4 CR disables %v; Beta gates are off by default before v1.9.0", dev.DisabledFeatureGates)
	}
}

func TestKubeVirtCRWithoutNeeds(t *testing.T) {
	kv := decodeKubeVirtStrict(t, KubeVirtCR(loadVersionsFile(t), KubeVirtSettings{}))
	if kv.Spec.Configuration.DeveloperConfiguration != nil || kv.Spec.Configuration.NetworkConfiguration != nil {
		t.Errorf("CR without needs sets configuration %+v", kv.Spec.Configuration)
	}
}

func TestMacvtapConfigMap(t *testing.T) {
	parents, err := Parents(loadTestScenarios(t))
	if err != nil {
		t.Fatal(err)
	}
	cm, err := MacvtapConfigMap("default", MacvtapResources(parents))
	if err != nil {
		t.Fatal(err)
	}
	if cm.GetName() != "macvtap-deviceplugin-config" || cm.GetNamespace() != "default" {
		t.Errorf("ConfigMap is %s/%s", cm.GetNamespace(), cm.GetName())
	}
	conf, _, _ := unstructured.NestedString(cm.Object, "data", "DP_MACVTAP_CONF")
	var entries []map[string]any
	if err := json.Unmarshal([]byte(conf), &entries); err != nil {
		t.Fatalf("DP_MACVTAP_CONF is not JSON: %v: %s", err, conf)
	}
	want := map[string]any{"name": "br-vtap", "lowerDevice": "br-vtap", "mode": "bridge", "capacity": float64(50)}
	if len(entries) != 1 || !mapsEqual(entries[0], want) {
		t.Errorf("DP_MACVTAP_CONF = %s, want one entry %v", conf, want)
	}

	if _, err := MacvtapConfigMap("default", nil); err == nil {
		t.Error("MacvtapConfigMap accepted no resources, which would turn on the device plugin's discovery")
	}
}

func mapsEqual(a, b map[string]any) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func readManifest(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := DecodeManifest(data)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func containerField(t *testing.T, obj *unstructured.Unstructured, list string, field ...string) []string {
	t.Helper()
	containers, _, err := unstructured.NestedSlice(obj.Object, "spec", "template", "spec", list)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range containers {
		value, _, _ := unstructured.NestedString(c.(map[string]any), field...)
		out = append(out, value)
	}
	return out
}

func TestPatchMultus(t *testing.T) {
	objs := readManifest(t, "testdata/manifests/multus-thick.yaml")
	if len(objs) != 2 {
		t.Fatalf("DecodeManifest returned %d objects, want 2 (empty documents skipped)", len(objs))
	}
	image := "ghcr.io/k8snetworkplumbingwg/multus-cni:v4.3.0-thick"
	if err := PatchMultus(objs, image); err != nil {
		t.Fatal(err)
	}

	ds := objs[1]
	for _, list := range []string{"containers", "initContainers"} {
		if got := containerField(t, ds, list, "image"); !slices.Equal(got, []string{image}) {
			t.Errorf("%s images = %v, want [%s]", list, got, image)
		}
	}
	if got := containerField(t, ds, "containers", "resources", "limits", "memory"); !slices.Equal(got, []string{multusMemoryLimit}) {
		t.Errorf("kube-multus memory limit = %v, want %s", got, multusMemoryLimit)
	}
	if got := containerField(t, ds, "containers", "resources", "requests", "memory"); !slices.Equal(got, []string{"50Mi"}) {
		t.Errorf("kube-multus memory request = %v, want the manifest's 50Mi", got)
	}
}

func TestPatchMultusFailsOnChangedLayout(t *testing.T) {
	objs := readManifest(t, "testdata/manifests/multus-thick.yaml")
	objs[1].SetName("renamed")
	if err := PatchMultus(objs, "x:v1"); err == nil || !strings.Contains(err.Error(), "kube-multus-ds") {
		t.Fatalf("PatchMultus error = %v, want one naming the missing DaemonSet", err)
	}
}

func TestPatchMacvtap(t *testing.T) {
	objs := readManifest(t, "testdata/manifests/macvtap.yaml")
	image := "quay.io/kubevirt/macvtap-cni:v0.13.1"
	namespace, err := PatchMacvtap(objs, image)
	if err != nil {
		t.Fatal(err)
	}
	if namespace != "default" {
		t.Errorf("namespace = %q, want default", namespace)
	}
	for _, list := range []string{"containers", "initContainers"} {
		if got := containerField(t, objs[0], list, "image"); !slices.Equal(got, []string{image}) {
			t.Errorf("%s images = %v, want [%s]", list, got, image)
		}
	}
}

func TestEncodeManifestRoundTrips(t *testing.T) {
	objs := readManifest(t, "testdata/manifests/multus-thick.yaml")
	data, err := EncodeManifest(objs)
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeManifest(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != len(objs) || back[1].GetName() != "kube-multus-ds" {
		t.Errorf("round trip gave %d objects:\n%s", len(back), data)
	}
}

func TestAtLeast(t *testing.T) {
	cases := map[string]bool{"v1.9.0": true, "v1.10.2": true, "v2.0.0": true, "v1.8.4": false, "v0.9.9": false, "main": false}
	for tag, want := range cases {
		if got := atLeast(tag, 1, 9); got != want {
			t.Errorf("atLeast(%q, 1, 9) = %v, want %v", tag, got, want)
		}
	}
	if !emulationBroken("v1.8.0") || emulationBroken("v1.8.1") || emulationBroken("v1.9.0") {
		t.Error("emulationBroken must hold for v1.8.0 only")
	}
}

package kind

import (
	"encoding/base64"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func cloudInitOf(t *testing.T, objs []*unstructured.Unstructured) map[string]any {
	t.Helper()
	for _, obj := range objs {
		if obj.GetKind() != "VirtualMachine" {
			continue
		}
		volumes, _, _ := unstructured.NestedSlice(obj.Object, "spec", "template", "spec", "volumes")
		for _, v := range volumes {
			if ci, ok := v.(map[string]any)["cloudInitNoCloud"].(map[string]any); ok {
				return ci
			}
		}
	}
	t.Fatal("no cloudInitNoCloud volume")
	return nil
}

// mutateCloudInit changes the VM's cloudInitNoCloud volume in place. It
// writes the change back, because NestedSlice returns a copy.
func mutateCloudInit(t *testing.T, objs []*unstructured.Unstructured, mutate func(ci map[string]any)) {
	t.Helper()
	path := []string{"spec", "template", "spec", "volumes"}
	volumes, _, _ := unstructured.NestedSlice(objs[1].Object, path...)
	for _, v := range volumes {
		if ci, ok := v.(map[string]any)["cloudInitNoCloud"].(map[string]any); ok {
			mutate(ci)
		}
	}
	if err := unstructured.SetNestedSlice(objs[1].Object, volumes, path...); err != nil {
		t.Fatal(err)
	}
}

func TestScenarioObjectsKeepFileOrder(t *testing.T) {
	objs, err := scenarioObjects(loadScenario(t, macvlanScenario))
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, o.GetKind()+"/"+o.GetNamespace()+"/"+o.GetName())
	}
	want := "NetworkAttachmentDefinition/default/macvlan-net VirtualMachine/default/vm-macvlan"
	if strings.Join(kinds, " ") != want {
		t.Errorf("objects = %v, want %s", kinds, want)
	}
}

func TestScenarioObjectsKeepUnknownFields(t *testing.T) {
	s := loadScenario(t, macvlanScenario)
	s.Objects[1].JSON = []byte(strings.Replace(string(s.Objects[1].JSON), `"multus":`, `"ipAddress":"192.0.2.10","multus":`, 1))
	objs, err := scenarioObjects(s)
	if err != nil {
		t.Fatal(err)
	}
	networks, _, _ := unstructured.NestedSlice(objs[1].Object, "spec", "template", "spec", "networks")
	if networks[0].(map[string]any)["ipAddress"] != "192.0.2.10" {
		t.Errorf("unknown field dropped before reaching the API server: %v", networks[0])
	}
}

func TestJoinEvidencePartIntoUserData(t *testing.T) {
	objs, err := scenarioObjects(loadScenario(t, macvlanScenario))
	if err != nil {
		t.Fatal(err)
	}
	before := cloudInitOf(t, objs)["userData"].(string)

	joined, err := joinEvidencePart(objs, markerJoiner{})
	if err != nil {
		t.Fatal(err)
	}
	ci := cloudInitOf(t, objs)
	after := ci["userData"].(string)
	if !joined || !strings.HasPrefix(after, before) || !strings.Contains(after, evidenceMarker) {
		t.Errorf("joined = %v, userData = %q, want the user's data followed by the evidence part", joined, after)
	}
	if _, ok := ci["networkData"].(string); !ok {
		t.Error("networkData lost by the join")
	}

	again, err := joinEvidencePart(objs, markerJoiner{})
	if err != nil {
		t.Fatal(err)
	}
	if again || strings.Count(cloudInitOf(t, objs)["userData"].(string), evidenceMarker) != 1 {
		t.Error("a second join added the part again")
	}
}

func TestJoinEvidencePartIntoBase64(t *testing.T) {
	objs, err := scenarioObjects(loadScenario(t, macvlanScenario))
	if err != nil {
		t.Fatal(err)
	}
	mutateCloudInit(t, objs, func(ci map[string]any) {
		ci["userDataBase64"] = base64.StdEncoding.EncodeToString([]byte(ci["userData"].(string)))
		delete(ci, "userData")
	})

	if _, err := joinEvidencePart(objs, markerJoiner{}); err != nil {
		t.Fatal(err)
	}
	decoded, err := base64.StdEncoding.DecodeString(cloudInitOf(t, objs)["userDataBase64"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(decoded), evidenceMarker) {
		t.Errorf("userDataBase64 decodes to %q, want the evidence part in it", decoded)
	}
	if _, ok := cloudInitOf(t, objs)["userData"]; ok {
		t.Error("the join added userData beside userDataBase64")
	}
}

func TestJoinEvidencePartRefusals(t *testing.T) {
	t.Run("secret", func(t *testing.T) {
		objs, _ := scenarioObjects(loadScenario(t, macvlanScenario))
		mutateCloudInit(t, objs, func(ci map[string]any) {
			delete(ci, "userData")
			ci["userDataSecretRef"] = map[string]any{"name": "user-data"}
		})
		if _, err := joinEvidencePart(objs, markerJoiner{}); err == nil || !strings.Contains(err.Error(), "Secret") {
			t.Errorf("error = %v, want one about the Secret", err)
		}
	})
	t.Run("no cloud-init volume", func(t *testing.T) {
		objs, _ := scenarioObjects(loadScenario(t, macvlanScenario))
		_ = unstructured.SetNestedSlice(objs[1].Object, []any{}, "spec", "template", "spec", "volumes")
		if _, err := joinEvidencePart(objs, markerJoiner{}); err == nil || !strings.Contains(err.Error(), "cloudInitNoCloud") {
			t.Errorf("error = %v, want one asking for a cloud-init volume", err)
		}
	})
	t.Run("no joiner", func(t *testing.T) {
		objs, _ := scenarioObjects(loadScenario(t, macvlanScenario))
		if _, err := joinEvidencePart(objs, nil); err == nil || !strings.Contains(err.Error(), "WithUserDataJoiner") {
			t.Errorf("error = %v, want one naming WithUserDataJoiner", err)
		}
	})
}

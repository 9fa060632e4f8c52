package kind

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/vmnet-e2e/vmnet-e2e/framework/scenario"
)

// scenarioObjects decodes a scenario's documents, in file order, as the
// server will receive them: exactly as written, unknown fields included, so
// that the API server and not the harness decides what is valid.
func scenarioObjects(s *scenario.Scenario) ([]*unstructured.Unstructured, error) {
	objs := make([]*unstructured.Unstructured, 0, len(s.Objects))
	for _, o := range s.Objects {
		u := &unstructured.Unstructured{}
		if err := json.Unmarshal(o.JSON, &u.Object); err != nil {
			return nil, fmt.Errorf("kind: scenario %s: %s %s: %w", s.Name, o.Kind, o.Name, err)
		}
		if u.GetNamespace() == "" {
			u.SetNamespace(o.Namespace)
		}
		objs = append(objs, u)
	}
	return objs, nil
}

// joinEvidencePart adds the evidence part to the cloud-init user-data of the
// VirtualMachine or VirtualMachineInstance among objs, in place, unless the
// user-data already carries it. It returns whether it changed anything.
//
// KubeVirt reads userData before userDataBase64 when both are set
// (pkg/cloud-init/cloud-init.go, readRawOrBase64Data), so the part goes into
// the field KubeVirt will use.
func joinEvidencePart(objs []*unstructured.Unstructured, joiner UserDataJoiner) (bool, error) {
	for _, obj := range objs {
		var volumesPath []string
		switch obj.GetKind() {
		case "VirtualMachine":
			volumesPath = []string{"spec", "template", "spec", "volumes"}
		case "VirtualMachineInstance":
			volumesPath = []string{"spec", "volumes"}
		default:
			continue
		}
		if joiner == nil {
			return false, errors.New("kind: no UserDataJoiner configured: the guest cannot report without the evidence part (use WithUserDataJoiner)")
		}
		return joinInVolumes(obj, volumesPath, joiner)
	}
	return false, nil
}

func joinInVolumes(obj *unstructured.Unstructured, volumesPath []string, joiner UserDataJoiner) (bool, error) {
	ref := obj.GetKind() + " " + obj.GetName()
	volumes, _, err := unstructured.NestedSlice(obj.Object, volumesPath...)
	if err != nil {
		return false, fmt.Errorf("kind: %s: volumes: %w", ref, err)
	}

	for _, raw := range volumes {
		volume, ok := raw.(map[string]any)
		if !ok {
			continue
		}
		for _, source := range []string{"cloudInitNoCloud", "cloudInitConfigDrive"} {
			ci, ok := volume[source].(map[string]any)
			if !ok {
				continue
			}
			changed, err := joinCloudInit(ref, source, ci, joiner)
			if err != nil {
				return false, err
			}
			if err := unstructured.SetNestedSlice(obj.Object, volumes, volumesPath...); err != nil {
				return false, fmt.Errorf("kind: %s: set volumes: %w", ref, err)
			}
			return changed, nil
		}
	}
	return false, fmt.Errorf("kind: %s has no cloudInitNoCloud or cloudInitConfigDrive volume: the guest reports its evidence through cloud-init, so add one", ref)
}

func joinCloudInit(ref, source string, ci map[string]any, joiner UserDataJoiner) (bool, error) {
	if _, ok := ci["userDataSecretRef"]; ok {
		if _, inline := ci["userData"]; !inline {
			return false, fmt.Errorf("kind: %s: %s takes user-data from a Secret, which the harness does not modify: write it inline as userData", ref, source)
		}
	}

	field, userData := "userData", []byte(nil)
	if s, ok := ci["userData"].(string); ok {
		userData = []byte(s)
	} else if s, ok := ci["userDataBase64"].(string); ok {
		decoded, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return false, fmt.Errorf("kind: %s: %s.userDataBase64 is not base64: %w", ref, source, err)
		}
		field, userData = "userDataBase64", decoded
	}

	if joiner.HasEvidencePart(userData) {
		return false, nil
	}
	joined, err := joiner.Join(userData)
	if err != nil {
		return false, fmt.Errorf("kind: %s: join the evidence part into %s.%s: %w", ref, source, field, err)
	}
	if field == "userDataBase64" {
		ci[field] = base64.StdEncoding.EncodeToString(joined)
	} else {
		ci[field] = string(joined)
	}
	return true, nil
}

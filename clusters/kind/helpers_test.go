package kind

import (
	"bytes"
	"testing"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vmnet-e2e/vmnet-e2e/framework/scenario"
)

// The two scenarios under testdata: a macvlan NAD with a bridge-binding VM,
// and a macvtap-cni NAD with a macvtap-binding VM.
const (
	macvlanScenario = "testdata/macvlan-bridge.yaml"
	macvtapScenario = "testdata/macvtap.yaml"
)

func loadScenario(t *testing.T, path string) *scenario.Scenario {
	t.Helper()
	s, err := scenario.LoadFile(path)
	if err != nil {
		t.Fatalf("load %s: %v", path, err)
	}
	return s
}

func loadTestScenarios(t *testing.T) []*scenario.Scenario {
	t.Helper()
	return []*scenario.Scenario{loadScenario(t, macvlanScenario), loadScenario(t, macvtapScenario)}
}

// markerJoiner replaces framework/cloudinit in tests. It appends a fixed
// part after the user's data, so that golden output stays stable.
type markerJoiner struct{}

const evidenceMarker = "#vmnet-e2e-evidence-part"

func (markerJoiner) HasEvidencePart(userData []byte) bool {
	return bytes.Contains(userData, []byte(evidenceMarker))
}

func (markerJoiner) Join(userData []byte) ([]byte, error) {
	return append(append(append([]byte(nil), userData...), '\n'), evidenceMarker+"\n"...), nil
}

// nadWith builds a NAD in namespace default.
func nadWith(name, config string, annotations map[string]string) *nadv1.NetworkAttachmentDefinition {
	return &nadv1.NetworkAttachmentDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Annotations: annotations},
		Spec:       nadv1.NetworkAttachmentDefinitionSpec{Config: config},
	}
}

package kind

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vmnet-e2e/vmnet-e2e/framework/report"
	"github.com/vmnet-e2e/vmnet-e2e/framework/verdict"
)

// TestObserveRejectedScenario runs Observe against the fake API server for a
// VM with an unknown field. The evidence must carry the server's rejection
// and the Warn pass's warning. The NAD created before the VM must be deleted
// again. The artifacts must exist, because the verdict differs from the
// scenario's expectation.
func TestObserveRejectedScenario(t *testing.T) {
	needRoot(t) // the scenario lock lives under /run/vmnet-e2e

	srv := newFakeAPIServer(t)
	client, err := newKubeClient(srv.config(), nil)
	if err != nil {
		t.Fatal(err)
	}
	artifacts := t.TempDir()
	p, err := New(WithVersions(loadVersionsFile(t)), WithUserDataJoiner(markerJoiner{}), WithArtifactsDir(artifacts),
		WithClusterName("observe-test-"+strings.ReplaceAll(t.Name(), "/", "-")))
	if err != nil {
		t.Fatal(err)
	}
	p.state = &runState{runID: "test", client: client, lock: newScenarioLock(p.o.clusterName), nodePaths: map[string]string{}}
	t.Cleanup(func() { _ = os.Remove(p.state.lock.path) })

	s := loadScenario(t, macvlanScenario)
	s.Objects[1].JSON = []byte(strings.Replace(string(s.Objects[1].JSON), `"multus":`, `"ipAddress":"192.0.2.10/24","multus":`, 1))

	phases := &report.Phases{}
	e, err := p.Observe(context.Background(), s, phases)
	if err != nil {
		t.Fatalf("Observe: %v", err)
	}

	if e.Rejection == nil || e.Rejection.Object != "VirtualMachine/vm-macvlan" ||
		!slices.Equal(e.Rejection.Fields, []string{"spec.template.spec.networks[0].ipAddress"}) {
		t.Errorf("Rejection = %+v, want the VM's unknown network field", e.Rejection)
	}
	if !slices.Equal(e.Warnings, []string{`unknown field "spec.template.spec.networks[0].ipAddress"`}) {
		t.Errorf("Warnings = %q, want the Warn pass's warning", e.Warnings)
	}
	if e.CNI != "macvlan" || e.Binding != "bridge" || e.Network != "net1" || e.Probe != "192.0.2.10" || e.Peer != "192.0.2.254/24" || e.Parent != "br-vmnet" {
		t.Errorf("target evidence = %s %s %s %s %s %s", e.CNI, e.Binding, e.Network, e.Probe, e.Peer, e.Parent)
	}
	if v := verdict.Derive(e); v.String() != "rejected (UnknownField)" {
		t.Errorf("verdict = %s, want rejected (UnknownField)", v)
	}

	// the NAD created before the refusal is deleted again
	deleted := false
	srv.mu.Lock()
	for _, r := range srv.requests {
		deleted = deleted || r.Method == http.MethodDelete && r.Path == "/apis/k8s.cni.cncf.io/v1/namespaces/default/network-attachment-definitions/macvlan-net"
	}
	srv.mu.Unlock()
	if !deleted {
		t.Error("the NAD created before the VM was refused was not deleted")
	}

	// the expectation (unreachable) differs from the verdict, so artifacts exist
	data, err := os.ReadFile(filepath.Join(artifacts, s.Name, "evidence.json"))
	if err != nil {
		t.Fatalf("evidence artifact: %v", err)
	}
	var written verdict.Evidence
	if err := json.Unmarshal(data, &written); err != nil || written.Rejection == nil {
		t.Errorf("evidence.json = %s (%v), want the rejection", data, err)
	}

	var names []string
	for _, ph := range phases.List() {
		names = append(names, ph.Name)
	}
	if !slices.Equal(names, []string{"create", "delete"}) {
		t.Errorf("phases = %v, want create and delete", names)
	}
}

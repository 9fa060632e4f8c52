package kind_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	kubevirtv1 "kubevirt.io/api/core/v1"
	ctrlclient "sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vmnet-e2e/vmnet-e2e/clusters/kind"
	"github.com/vmnet-e2e/vmnet-e2e/clusters/providers"
	"github.com/vmnet-e2e/vmnet-e2e/framework/cleanup"
	"github.com/vmnet-e2e/vmnet-e2e/framework/guest"
	"github.com/vmnet-e2e/vmnet-e2e/framework/scenario"
	"github.com/vmnet-e2e/vmnet-e2e/framework/verdict"
)

// ipAddressField is the field the ip-address-field scenarios write and
// KubeVirt's Network type lacks.
const ipAddressField = "spec.template.spec.networks[0].ipAddress"

// harnessPlan computes the kind plan the dry run prints (`vmnet plan
// --provider kind`): the scenario objects with the evidence part joined, as
// Observe sends them.
func harnessPlan(t *testing.T, scenarios []*scenario.Scenario) *kind.Plan {
	t.Helper()
	versions, err := kind.LoadVersions()
	if err != nil {
		t.Fatal(err)
	}
	opts := append(providers.KindHarnessOptions(providers.PlanNonce), kind.WithWorkers(2), kind.WithCacheDir(t.TempDir()))
	plan, err := kind.NewPlan(versions, scenarios, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

// TestScenarioObjectsOnAPIServer creates every harness scenario's objects
// with the provider's create step (fieldValidation=Strict). The
// ip-address-field scenarios must be rejected with the server's message for
// the ipAddress field, the Warn pass must return the server's warning, and a
// create under Warn must store the VM without the field. Every other
// scenario must be stored whole.
func TestScenarioObjectsOnAPIServer(t *testing.T) {
	env := apiServer(t)
	client := kubeClient(t, env)
	scenarios := harnessScenarios(t)
	plan := harnessPlan(t, scenarios)

	for i, s := range scenarios {
		sp := plan.Scenarios[i]
		t.Run(s.Name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			ns := newNamespace(t, client.Ctrl(), "objects")
			objs := inNamespace(sp.Objects, ns)

			res, err := client.CreateObjects(ctx, objs)
			t.Cleanup(func() {
				if err := client.DeleteObjects(context.Background(), res.Created); err != nil {
					t.Errorf("provider delete step: %v", err)
				}
				purge(t, client.Ctrl(), res.Created)
			})
			if err != nil {
				t.Fatalf("provider create step: %v", err)
			}

			if expectsRejection(s) {
				checkIPAddressRejection(t, client, objs, res)
				return
			}
			if res.Rejection != nil {
				t.Fatalf("server rejected %s: %s", res.Rejection.Object, res.Rejection.Message)
			}
			if len(res.Warnings) > 0 {
				t.Errorf("server warnings under Strict: %q", res.Warnings)
			}
			if len(res.Created) != len(objs) {
				t.Fatalf("created %d of %d objects", len(res.Created), len(objs))
			}
			for _, obj := range objs {
				checkStoredWhole(t, client.Ctrl(), obj)
			}
		})
	}
}

// checkIPAddressRejection asserts the server's response to an
// ip-address-field scenario: the objects before the VM stored, the VM
// rejected under Strict naming the field, the Warn pass warning about it,
// and the VM stored without it under Warn.
func checkIPAddressRejection(t *testing.T, client *kind.KubeClient, objs []*unstructured.Unstructured, res kind.ApplyResult) {
	t.Helper()
	ctx := context.Background()
	vm := objs[len(objs)-1]
	if vm.GetKind() != "VirtualMachine" {
		t.Fatalf("last object is a %s, want the VirtualMachine", vm.GetKind())
	}

	// Strict
	if res.Rejection == nil {
		t.Fatalf("server accepted VirtualMachine %s with %s under fieldValidation=Strict", vm.GetName(), ipAddressField)
	}
	if want := "VirtualMachine/" + vm.GetName(); res.Rejection.Object != want {
		t.Errorf("rejected object %q, want %q", res.Rejection.Object, want)
	}
	if !slices.Equal(res.Rejection.Fields, []string{ipAddressField}) {
		t.Errorf("rejected fields %q, want [%q]", res.Rejection.Fields, ipAddressField)
	}
	if want := `unknown field "` + ipAddressField + `"`; !strings.Contains(res.Rejection.Message, want) {
		t.Errorf("server message %q does not contain %q", res.Rejection.Message, want)
	}
	if !strings.Contains(res.Rejection.Message, "strict decoding error") {
		t.Errorf("server message %q is not a strict decoding error", res.Rejection.Message)
	}
	if len(res.Created) != len(objs)-1 {
		t.Errorf("created %d objects before the VM, want %d", len(res.Created), len(objs)-1)
	}

	// the provider's Warn pass: dry run in a scratch namespace
	scratch := uniqueName("warn")
	warnings, err := client.WarnDryRun(ctx, objs, scratch)
	if err != nil {
		t.Fatalf("Warn dry run: %v", err)
	}
	wantWarning := `unknown field "` + ipAddressField + `"`
	if !containsText(warnings, wantWarning) {
		t.Errorf("Warn dry run warnings %q lack %q", warnings, wantWarning)
	}
	stored := vm.DeepCopy()
	err = client.Ctrl().Get(ctx, ctrlclient.ObjectKey{Namespace: scratch, Name: vm.GetName()}, stored)
	if err == nil {
		t.Errorf("dry run stored VirtualMachine %s/%s", scratch, vm.GetName())
	}

	// a real create under Warn: stored, pruned
	created := vm.DeepCopy()
	warnings, err = client.CreateWarn(ctx, created)
	if err != nil {
		t.Fatalf("create under fieldValidation=Warn: %v", err)
	}
	t.Cleanup(func() { purge(t, client.Ctrl(), []*unstructured.Unstructured{vm}) })
	if !containsText(warnings, wantWarning) {
		t.Errorf("warnings under Warn %q lack %q", warnings, wantWarning)
	}
	stored = vm.DeepCopy()
	if err := client.Ctrl().Get(ctx, ctrlclient.ObjectKeyFromObject(vm), stored); err != nil {
		t.Fatalf("get stored VM: %v", err)
	}
	networks, _, _ := unstructured.NestedSlice(stored.Object, "spec", "template", "spec", "networks")
	if len(networks) == 0 {
		t.Fatal("stored VM has no networks")
	}
	first, _ := networks[0].(map[string]any)
	if _, ok := first["ipAddress"]; ok {
		t.Errorf("stored VM kept ipAddress: %v", first)
	}
	sent, _, _ := unstructured.NestedSlice(vm.Object, "spec", "template", "spec", "networks")
	wantFirst, _ := sent[0].(map[string]any)
	if !reflect.DeepEqual(first["multus"], wantFirst["multus"]) {
		t.Errorf("stored network multus %v, sent %v: only ipAddress may be pruned", first["multus"], wantFirst["multus"])
	}
}

// checkStoredWhole reads obj back and compares its spec with what was
// sent: a pruned field would be missing.
func checkStoredWhole(t *testing.T, c ctrlclient.Client, obj *unstructured.Unstructured) {
	t.Helper()
	stored := &unstructured.Unstructured{}
	stored.SetGroupVersionKind(obj.GroupVersionKind())
	if err := c.Get(context.Background(), ctrlclient.ObjectKeyFromObject(obj), stored); err != nil {
		t.Errorf("get %s %s: %v", obj.GetKind(), obj.GetName(), err)
		return
	}
	if !reflect.DeepEqual(stored.Object["spec"], obj.Object["spec"]) {
		sent, _ := json.Marshal(obj.Object["spec"])
		got, _ := json.Marshal(stored.Object["spec"])
		t.Errorf("%s %s: stored spec differs from the sent one\nsent:   %s\nstored: %s", obj.GetKind(), obj.GetName(), sent, got)
	}
}

// TestObserveRejectedOnAPIServer runs the provider's Observe, attached to
// the test environment as the suite's other processes attach to a kind
// cluster, for the ip-address-field scenarios. The server rejects them
// before any VM exists, so Observe needs no cluster nodes, and the verdict
// derived from its evidence must be rejected with the field the server
// named.
func TestObserveRejectedOnAPIServer(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("Observe takes its scenario lock and run ledger in /run/vmnet-e2e: needs root")
	}
	env := apiServer(t)
	ctx := context.Background()

	kubeconfig, err := env.Kubeconfig()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	kubeconfigPath := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfigPath, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}

	clusterName := uniqueName("apitest")
	opts := append(providers.KindHarnessOptions(guest.NewNonce()),
		kind.WithClusterName(clusterName), kind.WithArtifactsDir(filepath.Join(dir, "artifacts")),
		kind.WithTimeouts(shortTimeouts()))
	p, err := kind.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(map[string]any{"runID": uniqueName("r"), "clusterName": clusterName, "kubeconfigPath": kubeconfigPath})
	if err := p.Attach(ctx, data); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Teardown(context.Background()); err != nil {
			t.Errorf("Teardown: %v", err)
		}
		// the scenario lock file Observe created
		_ = os.Remove(filepath.Join(cleanup.StateDir, "kind-"+clusterName+".lock"))
	})
	client := kubeClient(t, env)

	var ran int
	for _, s := range harnessScenarios(t) {
		if !expectsRejection(s) {
			continue
		}
		ran++
		t.Run(s.Name, func(t *testing.T) {
			objs, err := kind.ScenarioObjects(s)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { purge(t, client.Ctrl(), objs) })

			evidence, err := p.Observe(ctx, s, nil)
			if err != nil {
				t.Fatalf("Observe: %v", err)
			}
			if evidence.Rejection == nil {
				t.Fatalf("no rejection in the evidence: %+v", evidence)
			}
			if !slices.Equal(evidence.Rejection.Fields, []string{ipAddressField}) {
				t.Errorf("evidence rejection fields %q, want [%q]", evidence.Rejection.Fields, ipAddressField)
			}
			if !containsText(evidence.Warnings, `unknown field "`+ipAddressField+`"`) {
				t.Errorf("evidence warnings %q lack the server's warning for %s", evidence.Warnings, ipAddressField)
			}
			v := verdict.Derive(evidence)
			if v.Outcome != scenario.Rejected {
				t.Errorf("verdict %s, want rejected", v)
			}
			if err := verdict.Compare(s.Name, *s.Spec.Expect, v, evidence); err != nil {
				t.Errorf("verdict differs from the scenario's expectation: %v", err)
			}
		})
	}
	if ran == 0 {
		t.Fatal("no scenario expects a rejection")
	}
}

// shortTimeouts keep a failing Observe from waiting the cluster defaults.
func shortTimeouts() kind.Timeouts {
	t := kind.DefaultTimeouts()
	t.VMIReady, t.GuestReport, t.Delete, t.Poll = 10*time.Second, 10*time.Second, 10*time.Second, 500*time.Millisecond
	return t
}

// TestWaitVMIReadyOnAPIServer runs the provider's VMI wait against VMIs
// stored by the server, with the status virt-controller and virt-handler
// would write: Ready=True ends the wait with the VMI, phase Failed ends it
// early with a StateError. KubeVirt's VMI CRD has no status subresource, so
// an update of the whole object writes the status.
func TestWaitVMIReadyOnAPIServer(t *testing.T) {
	env := apiServer(t)
	client := kubeClient(t, env)
	c := client.Ctrl()
	ctx := context.Background()
	ns := newNamespace(t, c, "wait")

	var base *scenario.Scenario
	for _, s := range harnessScenarios(t) {
		if !expectsRejection(s) && s.VMI != nil {
			base = s
			break
		}
	}
	if base == nil {
		t.Fatal("no accepted scenario with a VMI")
	}
	newVMI := func(name string) *kubevirtv1.VirtualMachineInstance {
		vmi := &kubevirtv1.VirtualMachineInstance{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec:       *base.VMI.Spec.DeepCopy(),
		}
		if err := c.Create(ctx, vmi, ctrlclient.FieldValidation(metav1.FieldValidationStrict)); err != nil {
			t.Fatalf("create VMI %s: %v", name, err)
		}
		return vmi
	}

	t.Run("Ready", func(t *testing.T) {
		vmi := newVMI("ready")
		vmi.Status.Phase = kubevirtv1.Running
		vmi.Status.NodeName = "node-a"
		vmi.Status.Conditions = []kubevirtv1.VirtualMachineInstanceCondition{{
			Type: kubevirtv1.VirtualMachineInstanceReady, Status: corev1.ConditionTrue,
		}}
		if err := c.Update(ctx, vmi); err != nil {
			t.Fatalf("update VMI status: %v", err)
		}
		got, err := kind.WaitVMIReady(ctx, c, nil, ns, "ready", 20*time.Second, 200*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status.Phase != kubevirtv1.Running || got.Status.NodeName != "node-a" {
			t.Errorf("returned VMI in phase %q on node %q, want Running on node-a", got.Status.Phase, got.Status.NodeName)
		}
	})

	t.Run("Failed", func(t *testing.T) {
		vmi := newVMI("failed")
		vmi.Status.Phase = kubevirtv1.Failed
		if err := c.Update(ctx, vmi); err != nil {
			t.Fatalf("update VMI status: %v", err)
		}
		_, err := kind.WaitVMIReady(ctx, c, nil, ns, "failed", 20*time.Second, 200*time.Millisecond)
		var stateErr *kind.StateError
		if !errors.As(err, &stateErr) {
			t.Fatalf("error %v, want a StateError", err)
		}
		if !strings.Contains(stateErr.State, "VMI phase Failed") {
			t.Errorf("state %q does not name phase Failed", stateErr.State)
		}
	})

	t.Run("Missing", func(t *testing.T) {
		_, err := kind.WaitVMIReady(ctx, c, nil, ns, "missing", time.Second, 200*time.Millisecond)
		var waitErr *kind.WaitError
		if !errors.As(err, &waitErr) {
			t.Fatalf("error %v, want a WaitError", err)
		}
		if !strings.Contains(waitErr.LastState, "does not exist") {
			t.Errorf("last state %q does not say the VMI is missing", waitErr.LastState)
		}
	})
}

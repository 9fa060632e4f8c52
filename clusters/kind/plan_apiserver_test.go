package kind_test

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	ctrlclient "sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vmnet-e2e/vmnet-e2e/clusters/kind"
	"github.com/vmnet-e2e/vmnet-e2e/framework/scenario"
)

// TestPlanObjectsOnAPIServer sends every object of the kind dry-run plan
// for all files under scenarios/ (`vmnet plan --provider kind`) to the
// server with dryRun=All and fieldValidation=Strict: the KubeVirt CR, the
// macvtap-cni device plugin ConfigMap and each scenario's NADs and VM with
// the evidence part joined. All must be accepted except the VMs of
// scenarios that expect a rejection, which must be rejected for the
// ipAddress field alone. The KubeVirt CR is then applied for real the way
// Prepare applies it, after the CRD wait Prepare runs.
//
// NOTE: three things are not checked here. The kind cluster config is
// kind's own type, not an API object. The plan names the URLs of the
// Multus, KubeVirt operator and macvtap-cni manifests, which Prepare
// downloads and this test does not. What KubeVirt's admission webhooks
// check goes unchecked because virt-api does not run.
func TestPlanObjectsOnAPIServer(t *testing.T) {
	env := apiServer(t)
	client := kubeClient(t, env)
	c := client.Ctrl()
	ctx := context.Background()

	all, err := scenario.LoadDir(scenariosDir)
	if err != nil {
		t.Fatal(err)
	}
	plan := harnessPlan(t, all)

	t.Run("KubeVirtCR", func(t *testing.T) {
		cr := plan.KubeVirtCR.DeepCopy()
		ensureNamespace(t, c, cr.GetNamespace())
		// Create fills its argument with the server's response, so each
		// request gets its own copy.
		if err := dryRunStrict(ctx, c, cr.DeepCopy()); err != nil {
			t.Fatalf("KubeVirt CR rejected: %v", err)
		}

		// the Prepare path: CRD wait, then server-side apply
		if err := kind.WaitCRDEstablished(ctx, c, nil, "kubevirts.kubevirt.io", 30*time.Second, 200*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if err := client.ApplyServerSide(ctx, []*unstructured.Unstructured{cr.DeepCopy()}); err != nil {
			t.Fatalf("server-side apply of the KubeVirt CR: %v", err)
		}
		stored := &unstructured.Unstructured{}
		stored.SetGroupVersionKind(cr.GroupVersionKind())
		if err := c.Get(ctx, ctrlclient.ObjectKeyFromObject(cr), stored); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(stored.Object["spec"], cr.Object["spec"]) {
			t.Errorf("stored KubeVirt spec %v differs from the applied %v", stored.Object["spec"], cr.Object["spec"])
		}
	})

	t.Run("MacvtapConfigMap", func(t *testing.T) {
		if plan.MacvtapConfigMap == nil {
			t.Fatal("the plan has no macvtap-cni ConfigMap, though scenarios/macvtap requests macvtap resources")
		}
		if err := dryRunStrict(ctx, c, plan.MacvtapConfigMap.DeepCopy()); err != nil {
			t.Fatalf("macvtap-cni ConfigMap rejected: %v", err)
		}
	})

	for i, sp := range plan.Scenarios {
		s := all[i]
		t.Run("scenario/"+sp.Name, func(t *testing.T) {
			if len(sp.Objects) == 0 {
				t.Fatal("plan has no objects")
			}
			for _, obj := range sp.Objects {
				err := dryRunStrict(ctx, c, obj.DeepCopy())
				rejectedVM := expectsRejection(s) && obj.GetKind() == "VirtualMachine"
				switch {
				case rejectedVM && err == nil:
					t.Errorf("%s %s accepted, want rejected for %s", obj.GetKind(), obj.GetName(), ipAddressField)
				case rejectedVM:
					fields := strictFields(t, err)
					if !slices.Equal(fields, []string{ipAddressField}) {
						t.Errorf("%s %s rejected for %q, want [%q]: %v", obj.GetKind(), obj.GetName(), fields, ipAddressField, err)
					}
				case err != nil:
					t.Errorf("%s %s rejected: %v", obj.GetKind(), obj.GetName(), err)
				}
			}
		})
	}
}

// dryRunStrict creates obj with dryRun=All and fieldValidation=Strict:
// validated, defaulted and admitted, never stored.
func dryRunStrict(ctx context.Context, c ctrlclient.Client, obj ctrlclient.Object) error {
	return c.Create(ctx, obj, ctrlclient.DryRunAll, ctrlclient.FieldValidation(metav1.FieldValidationStrict))
}

// strictFields returns the field paths of a strict decoding error, parsed by
// the provider's parser, and fails the test for any other error.
func strictFields(t *testing.T, err error) []string {
	t.Helper()
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		t.Fatalf("not an API error: %v", err)
	}
	fields, ok := kind.StrictFields(status.Status().Message)
	if !ok {
		t.Fatalf("not a strict decoding error: %v", err)
	}
	return fields
}

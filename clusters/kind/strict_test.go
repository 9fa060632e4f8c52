package kind

import (
	"fmt"
	"net/http"
	"slices"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Messages in the form the API server sends them in a 400 BadRequest
// Status: the custom resource decoder's `unknown field "%s"` entries and the
// JSON decoder's strconv.Quote'd ones, joined with ", ".
const (
	vmiStrictMessage = `VirtualMachineInstance in version "v1" cannot be handled as a VirtualMachineInstance: strict decoding error: unknown field "spec.networks[0].ipAddress"`
	vmStrictMessage  = `VirtualMachine in version "v1" cannot be handled as a VirtualMachine: strict decoding error: unknown field "spec.template.spec.networks[0].ipAddress", unknown field "spec.template.spec.networks[0].gateway"`
	podStrictMessage = `Pod in version "v1" cannot be handled as a Pod: strict decoding error: duplicate field "metadata.name", unknown field "spec.containers[0].imagePolicy", unknown field "metadata.annotations[\"a\\\"b\"]"`
)

func TestStrictFields(t *testing.T) {
	cases := []struct {
		message string
		want    []string
	}{
		{vmiStrictMessage, []string{"spec.networks[0].ipAddress"}},
		{vmStrictMessage, []string{"spec.template.spec.networks[0].ipAddress", "spec.template.spec.networks[0].gateway"}},
		{podStrictMessage, []string{"metadata.name", "spec.containers[0].imagePolicy", `metadata.annotations["a\"b"]`}},
	}
	for _, c := range cases {
		got, ok := StrictFields(c.message)
		if !ok || !slices.Equal(got, c.want) {
			t.Errorf("StrictFields(%q) = %q, %v; want %q", c.message, got, ok, c.want)
		}
	}

	if _, ok := StrictFields(`admission webhook "virtualmachine-validator.kubevirt.io" denied the request: spec.template.spec.networks[0] must have a name`); ok {
		t.Error("a webhook denial was taken for a strict decoding error")
	}
}

func statusError(code int32, reason metav1.StatusReason, message string) error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: code, Reason: reason, Message: message}}
}

func TestRejectionFromStatusError(t *testing.T) {
	vm := &unstructured.Unstructured{}
	vm.SetKind("VirtualMachine")
	vm.SetName("vm1")

	r := rejectionFrom(vm, fmt.Errorf("create: %w", statusError(http.StatusBadRequest, metav1.StatusReasonBadRequest, vmStrictMessage)))
	if r == nil {
		t.Fatal("no Rejection from a strict BadRequest")
	}
	if r.Object != "VirtualMachine/vm1" || r.Message != vmStrictMessage || len(r.Fields) != 2 {
		t.Errorf("Rejection = %+v", r)
	}

	if r := rejectionFrom(vm, statusError(http.StatusUnprocessableEntity, metav1.StatusReasonInvalid, vmStrictMessage)); r != nil {
		t.Errorf("a 422 Invalid became a Rejection: %+v", r)
	}
	if r := rejectionFrom(vm, statusError(http.StatusBadRequest, metav1.StatusReasonBadRequest, "the server rejected our request for an unknown reason")); r != nil {
		t.Errorf("a BadRequest without strict decoding error became a Rejection: %+v", r)
	}
	if r := rejectionFrom(vm, nil); r != nil {
		t.Errorf("no error became a Rejection: %+v", r)
	}
}

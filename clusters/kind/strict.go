package kind

import (
	"errors"
	"regexp"
	"strconv"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/vmnet-e2e/vmnet-e2e/framework/scenario"
)

// strictField matches one entry of a strict decoding error. The API server
// joins the entries with ", " after "strict decoding error: "
// (k8s.io/apimachinery v0.35.3, pkg/runtime/error.go). Unknown fields of a
// custom resource such as a VirtualMachine are written `unknown field "%s"`
// (k8s.io/apiextensions-apiserver v0.35.0,
// pkg/apiserver/customresource_handler.go, schemaCoercingDecoder.Decode).
// Errors from the JSON decoder, duplicate fields among them, quote the path
// with strconv.Quote (sigs.k8s.io/json, kubernetes_patch.go). A path has no
// leading dot: spec.template.spec.networks[0].ipAddress.
var strictField = regexp.MustCompile(`(?:unknown|duplicate) field ("(?:[^"\\]|\\.)*")`)

const strictMarker = "strict decoding error: "

// StrictFields returns the field paths of a strict decoding error message,
// in the server's order, and whether the message is one.
func StrictFields(message string) ([]string, bool) {
	i := strings.Index(message, strictMarker)
	if i < 0 {
		return nil, false
	}
	var fields []string
	for _, m := range strictField.FindAllStringSubmatch(message[i+len(strictMarker):], -1) {
		path, err := strconv.Unquote(m[1])
		if err != nil {
			path = strings.Trim(m[1], `"`)
		}
		fields = append(fields, path)
	}
	return fields, true
}

// rejectionFrom returns the Rejection an API error from creating obj under
// fieldValidation=Strict stands for, or nil when err is not a strict
// decoding error (a webhook denial, a conflict, a lost connection).
func rejectionFrom(obj *unstructured.Unstructured, err error) *scenario.Rejection {
	var status apierrors.APIStatus
	if err == nil || !errors.As(err, &status) || !apierrors.IsBadRequest(err) {
		return nil
	}
	message := status.Status().Message
	fields, ok := StrictFields(message)
	if !ok {
		return nil
	}
	return &scenario.Rejection{Object: obj.GetKind() + "/" + obj.GetName(), Fields: fields, Message: message}
}

package scenario

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	kubevirtv1 "kubevirt.io/api/core/v1"
)

// unknownFields returns the paths of every field in doc that the Go type of
// obj does not declare, in the path form the API server writes
// ("spec.template.spec.networks[0].ipAddress"), in the server's order.
//
// Strict JSON decoding cannot find these for KubeVirt objects: kubevirt.io/api
// v1.9.0 gives VirtualMachineInstanceSpec, PodNetwork and DHCPOptions their own
// UnmarshalJSON, which decodes through a plain json.Unmarshal and so ignores
// unknown fields below spec. The API server instead prunes against the CRD's
// structural schema (k8s.io/apiextensions-apiserver pkg/apiserver/
// customresource_handler.go, unstructuredSchemaCoercer.apply, then
// schema/pruning PruneWithOptions, which sorts the paths). KubeVirt generates
// that schema from the same Go types, so walking the types by their json tags
// finds the same fields, with the exceptions in preservesUnknownFields.
func unknownFields(doc []byte, obj any) ([]string, error) {
	paths, _, err := unknownFieldsWithSuggestions(doc, obj)
	return paths, err
}

// unknownFieldsWithSuggestions also returns, for each unknown path whose
// name is close to a declared field of the same object, that field's name
// (a different case, or at most two edits away).
func unknownFieldsWithSuggestions(doc []byte, obj any) ([]string, map[string]string, error) {
	var value any
	if err := json.Unmarshal(doc, &value); err != nil {
		return nil, nil, err
	}
	w := &walker{suggestions: map[string]string{}}
	w.walk(value, reflect.TypeOf(obj), "")
	return serverOrder(w.paths), w.suggestions, nil
}

// walker collects unknown field paths and spelling suggestions.
type walker struct {
	paths       []string
	suggestions map[string]string
}

// serverOrder sorts paths in the order kube-apiserver reports them for a
// custom resource. The unknown fields of the top-level metadata come first:
// schema/objectmeta GetObjectMetaWithOptions finds them by strict decoding of
// the metadata, re-encoded with sorted keys. The pruned fields follow, sorted
// by schema/pruning PruneWithOptions. unstructuredSchemaCoercer.apply appends
// them in that order (k8s.io/apiextensions-apiserver v0.35.4,
// pkg/apiserver/customresource_handler.go).
func serverOrder(paths []string) []string {
	var metadata, pruned []string
	for _, p := range paths {
		if strings.HasPrefix(p, "metadata.") {
			metadata = append(metadata, p)
		} else {
			pruned = append(pruned, p)
		}
	}
	sort.Strings(metadata)
	sort.Strings(pruned)
	return append(metadata, pruned...)
}

// preservesUnknownFields lists the types whose CRD schema carries
// x-kubernetes-preserve-unknown-fields, from the kubebuilder markers in
// kubevirt.io/api v1.9.0: Clock (core/v1/schema.go) and the metadata of
// VirtualMachineInstanceTemplateSpec and DataVolumeTemplateSpec
// (core/v1/types.go), handled in walkStruct.
var preservesUnknownFields = map[reflect.Type]bool{
	reflect.TypeOf(kubevirtv1.Clock{}): true,
}

// preservedMetadataOwners are the structs whose embedded or named ObjectMeta
// keeps unknown fields.
var preservedMetadataOwners = map[reflect.Type]bool{
	reflect.TypeOf(kubevirtv1.VirtualMachineInstanceTemplateSpec{}): true,
	reflect.TypeOf(kubevirtv1.DataVolumeTemplateSpec{}):             true,
}

// scalarTypes are encoded as JSON scalars by their own marshalers; any value
// is left to type validation, which this walker does not do.
var scalarTypes = map[reflect.Type]bool{
	reflect.TypeOf(metav1.Time{}):          true,
	reflect.TypeOf(metav1.MicroTime{}):     true,
	reflect.TypeOf(metav1.Duration{}):      true,
	reflect.TypeOf(resource.Quantity{}):    true,
	reflect.TypeOf(intstr.IntOrString{}):   true,
	reflect.TypeOf(runtime.RawExtension{}): true,
	reflect.TypeOf(metav1.FieldsV1{}):      true,
}

func (w *walker) walk(value any, t reflect.Type, path string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if scalarTypes[t] || preservesUnknownFields[t] {
		return
	}

	switch t.Kind() {
	case reflect.Struct:
		object, ok := value.(map[string]any)
		if !ok {
			return
		}
		w.walkStruct(object, t, path)

	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return
		}
		items, ok := value.([]any)
		if !ok {
			return
		}
		for i, item := range items {
			w.walk(item, t.Elem(), path+"["+strconv.Itoa(i)+"]")
		}

	case reflect.Map:
		object, ok := value.(map[string]any)
		if !ok {
			return
		}
		for key, item := range object {
			w.walk(item, t.Elem(), joinPath(path, key))
		}
	}
}

func (w *walker) walkStruct(object map[string]any, t reflect.Type, path string) {
	fields := map[string]reflect.StructField{}
	collectJSONFields(t, fields)

	for key, item := range object {
		field, ok := fields[key]
		if !ok {
			unknown := joinPath(path, key)
			w.paths = append(w.paths, unknown)
			if suggestion := closestField(key, fields); suggestion != "" {
				w.suggestions[unknown] = suggestion
			}
			continue
		}
		if key == "metadata" && preservedMetadataOwners[t] {
			continue
		}
		w.walk(item, field.Type, joinPath(path, key))
	}
}

// closestField returns the declared field name that key most likely
// misspells: the same name in another case, else one at most two edits away
// (and, for short keys, fewer edits than half their length).
func closestField(key string, fields map[string]reflect.StructField) string {
	best, bestDistance := "", 0
	for name := range fields {
		if strings.EqualFold(name, key) {
			return name
		}
		d := editDistance(strings.ToLower(key), strings.ToLower(name))
		if d > 2 || d*2 >= len(key) {
			continue
		}
		if best == "" || d < bestDistance || d == bestDistance && name < best {
			best, bestDistance = name, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	previous := make([]int, len(b)+1)
	for j := range previous {
		previous[j] = j
	}
	for i := 1; i <= len(a); i++ {
		current := make([]int, len(b)+1)
		current[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			current[j] = min(previous[j]+1, current[j-1]+1, previous[j-1]+cost)
		}
		previous = current
	}
	return previous[len(b)]
}

// collectJSONFields maps JSON names to fields, flattening inline and
// anonymous embedded structs the way encoding/json does.
func collectJSONFields(t reflect.Type, fields map[string]reflect.StructField) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")

		embedded := f.Anonymous && name == ""
		if embedded || strings.Contains(","+opts+",", ",inline,") {
			inner := f.Type
			for inner.Kind() == reflect.Pointer {
				inner = inner.Elem()
			}
			if inner.Kind() == reflect.Struct {
				collectJSONFields(inner, fields)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fields[name] = f
	}
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// strictDecodingMessage returns the error text kube-apiserver gives for
// unknown fields under fieldValidation=Strict, for example
// `VirtualMachine in version "v1" cannot be handled as a VirtualMachine:
// strict decoding error: unknown field "spec.x"` (apiserver
// pkg/endpoints/handlers/rest.go transformDecodeError, apimachinery
// pkg/runtime/error.go strictDecodingError).
func strictDecodingMessage(kind, version string, fields []string) string {
	var parts []string
	for _, f := range fields {
		parts = append(parts, fmt.Sprintf("unknown field %q", f))
	}
	return fmt.Sprintf("%s in version %q cannot be handled as a %s: strict decoding error: %s",
		kind, version, kind, strings.Join(parts, ", "))
}

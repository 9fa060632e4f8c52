package scenario

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// InputError is an error in what the user supplied: a file that is not YAML,
// an unsupported kind, a missing object. Commands exit with status 2 on it.
type InputError struct {
	Source string
	Err    error
}

func (e *InputError) Error() string {
	if e.Source == "" {
		return e.Err.Error()
	}
	return fmt.Sprintf("%s: %v", e.Source, e.Err)
}

func (e *InputError) Unwrap() error { return e.Err }

// IsInputError reports whether err, or an error it wraps, is an InputError.
func IsInputError(err error) bool {
	var ie *InputError
	return errors.As(err, &ie)
}

func inputErrorf(source, format string, args ...any) error {
	return &InputError{Source: source, Err: fmt.Errorf(format, args...)}
}

var (
	decodeScheme = runtime.NewScheme()
	// lenientSerializer decodes typed objects; unknownFields finds what the
	// API server would prune.
	lenientSerializer *kjson.Serializer
)

func init() {
	if err := kubevirtv1.AddToScheme(decodeScheme); err != nil {
		panic(err)
	}
	if err := nadv1.AddToScheme(decodeScheme); err != nil {
		panic(err)
	}
	lenientSerializer = kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, decodeScheme, decodeScheme,
		kjson.SerializerOptions{})
}

// LoadFile loads one scenario file.
func LoadFile(path string) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &InputError{Source: path, Err: fmt.Errorf("read scenario: %w", err)}
	}
	return Load(path, data)
}

// LoadFiles loads several files as one scenario, the way `kubectl apply -f A
// -f B` applies them together: a NAD in one file and the VM in another.
func LoadFiles(paths ...string) (*Scenario, error) {
	if len(paths) == 0 {
		return nil, inputErrorf("", "no manifest files given: pass at least one -f FILE")
	}
	var all bytes.Buffer
	for i, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, &InputError{Source: path, Err: fmt.Errorf("read manifest: %w", err)}
		}
		if i > 0 {
			all.WriteString("\n---\n")
		}
		all.Write(data)
	}
	return Load(strings.Join(paths, ","), all.Bytes())
}

// LoadDir loads every *.yaml file under dir (recursively), sorted by path.
func LoadDir(dir string) ([]*Scenario, error) {
	var paths []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
			paths = append(paths, path)
		}
		return nil
	})
	if err != nil {
		return nil, &InputError{Source: dir, Err: fmt.Errorf("list scenarios: %w", err)}
	}
	if len(paths) == 0 {
		return nil, inputErrorf(dir, "no scenario files (*.yaml) found")
	}
	sort.Strings(paths)

	var scenarios []*Scenario
	names := map[string]string{}
	for _, path := range paths {
		s, err := LoadFile(path)
		if err != nil {
			return nil, err
		}
		if other, ok := names[s.Name]; ok {
			return nil, inputErrorf(path, "scenario name %q is also used by %s: names must be unique", s.Name, other)
		}
		names[s.Name] = path
		scenarios = append(scenarios, s)
	}
	return scenarios, nil
}

// Load decodes a multi-document YAML scenario. source names the data in
// errors.
func Load(source string, data []byte) (*Scenario, error) {
	s := &Scenario{Source: source}
	var vmCount int

	docs, err := splitDocuments(data)
	if err != nil {
		return nil, &InputError{Source: source, Err: err}
	}
	for i, doc := range docs {
		if err := s.addDocument(source, i+1, doc, &vmCount); err != nil {
			return nil, err
		}
	}

	if vmCount == 0 {
		return nil, inputErrorf(source, "no VirtualMachine or VirtualMachineInstance (kubevirt.io/v1) found: a scenario needs exactly one")
	}
	if s.Name == "" {
		s.Name = nameFromSource(source)
	}
	if err := s.validate(); err != nil {
		return nil, &InputError{Source: source, Err: err}
	}
	return s, nil
}

// splitDocuments returns the non-empty YAML documents of data, converted to
// JSON with duplicate keys rejected as the API server rejects them.
func splitDocuments(data []byte) ([][]byte, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs [][]byte
	for n := 1; ; n++ {
		raw, err := reader.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: not valid YAML: %w", n, err)
		}
		if len(bytes.TrimSpace(stripComments(raw))) == 0 {
			continue
		}
		doc, err := yaml.YAMLToJSONStrict(raw)
		if err != nil {
			return nil, fmt.Errorf("document %d: not valid YAML: %w", n, err)
		}
		if bytes.Equal(bytes.TrimSpace(doc), []byte("null")) {
			continue
		}
		if !bytes.HasPrefix(bytes.TrimSpace(doc), []byte("{")) {
			return nil, fmt.Errorf("document %d: not a YAML mapping: a manifest starts with apiVersion and kind", n)
		}
		docs = append(docs, doc)
	}
	if len(docs) == 0 {
		return nil, errors.New("no YAML documents found")
	}
	return docs, nil
}

func stripComments(raw []byte) []byte {
	var out bytes.Buffer
	for _, line := range bytes.Split(raw, []byte("\n")) {
		trimmed := bytes.TrimSpace(line)
		if bytes.HasPrefix(trimmed, []byte("#")) || bytes.Equal(trimmed, []byte("---")) {
			continue
		}
		out.Write(line)
		out.WriteByte('\n')
	}
	return out.Bytes()
}

type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
}

// harnessFile is the harness section as written.
type harnessFile struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec Spec `json:"spec"`
}

func (s *Scenario) addDocument(source string, n int, doc []byte, vmCount *int) error {
	var meta typeMeta
	if err := yaml.Unmarshal(doc, &meta); err != nil {
		return inputErrorf(source, "document %d: cannot read apiVersion and kind: %v", n, err)
	}
	if meta.APIVersion == "" || meta.Kind == "" {
		return inputErrorf(source, "document %d: missing apiVersion or kind", n)
	}
	gv, err := schema.ParseGroupVersion(meta.APIVersion)
	if err != nil {
		return inputErrorf(source, "document %d: invalid apiVersion %q: %v", n, meta.APIVersion, err)
	}

	switch {
	case meta.Kind == Kind && gv.Group == "vmnet-e2e.dev":
		return s.addHarness(source, n, doc, meta)

	case meta.Kind == "NetworkAttachmentDefinition" && gv.Group == nadv1.SchemeGroupVersion.Group:
		if gv.Version != nadv1.SchemeGroupVersion.Version {
			return inputErrorf(source, "document %d: NetworkAttachmentDefinition %q has apiVersion %q: use %s", n, meta.Metadata.Name, meta.APIVersion, nadv1.SchemeGroupVersion)
		}
		nad := &nadv1.NetworkAttachmentDefinition{}
		if err := s.decodeStrict(source, n, doc, nad); err != nil {
			return err
		}
		defaultNamespace(&nad.ObjectMeta.Namespace)
		s.NADs = append(s.NADs, nad)

	case (meta.Kind == "VirtualMachine" || meta.Kind == "VirtualMachineInstance") && gv.Group == kubevirtv1.SchemeGroupVersion.Group:
		if gv.Version != kubevirtv1.SchemeGroupVersion.Version {
			return inputErrorf(source, "document %d: %s %q has apiVersion %q: use %s", n, meta.Kind, meta.Metadata.Name, meta.APIVersion, kubevirtv1.SchemeGroupVersion)
		}
		*vmCount++
		if *vmCount > 1 {
			return inputErrorf(source, "document %d: a second VirtualMachine or VirtualMachineInstance (%q): a scenario contains exactly one; split the file", n, meta.Metadata.Name)
		}
		if err := s.addVM(source, n, doc, meta.Kind); err != nil {
			return err
		}

	default:
		return inputErrorf(source, "document %d: unsupported object %s %q (apiVersion %s): a scenario contains NetworkAttachmentDefinitions (k8s.cni.cncf.io/v1), one VirtualMachine or VirtualMachineInstance (kubevirt.io/v1) and an optional %s (%s)",
			n, meta.Kind, meta.Metadata.Name, meta.APIVersion, Kind, APIVersion)
	}

	namespace := meta.Metadata.Namespace
	defaultNamespace(&namespace)
	s.Objects = append(s.Objects, Object{
		APIVersion: meta.APIVersion, Kind: meta.Kind,
		Namespace: namespace, Name: meta.Metadata.Name, JSON: doc,
	})
	return nil
}

func (s *Scenario) addHarness(source string, n int, doc []byte, meta typeMeta) error {
	if meta.APIVersion != APIVersion {
		return inputErrorf(source, "document %d: %s has apiVersion %q: use %s", n, Kind, meta.APIVersion, APIVersion)
	}
	if s.Name != "" {
		return inputErrorf(source, "document %d: a second %s section: a file contains at most one", n, Kind)
	}
	var h harnessFile
	if unknown, suggestions, err := unknownFieldsWithSuggestions(doc, &h); err == nil && len(unknown) > 0 {
		var hints []string
		for _, path := range unknown {
			if name, ok := suggestions[path]; ok {
				hints = append(hints, fmt.Sprintf("%s: did you mean %q?", path, name))
			}
		}
		hint := "check the spelling (fields: cni, binding, strategy, description, probe, peer, expect.outcome, expect.causes)"
		if len(hints) > 0 {
			hint = strings.Join(hints, "; ")
		}
		return inputErrorf(source, "document %d: unknown field(s) %s in the %s section: %s", n, strings.Join(unknown, ", "), Kind, hint)
	}
	if err := yaml.Unmarshal(doc, &h); err != nil {
		return inputErrorf(source, "document %d: invalid %s section: %v", n, Kind, err)
	}
	if h.Metadata.Name == "" {
		return inputErrorf(source, "document %d: the %s section needs metadata.name", n, Kind)
	}
	s.Name = h.Metadata.Name
	s.Spec = h.Spec
	s.Harness = true
	return nil
}

func (s *Scenario) addVM(source string, n int, doc []byte, kind string) error {
	switch kind {
	case "VirtualMachine":
		vm := &kubevirtv1.VirtualMachine{}
		if err := s.decodeStrict(source, n, doc, vm); err != nil {
			return err
		}
		defaultNamespace(&vm.Namespace)
		s.VM = vm
		vmi, err := instanceFromVM(vm)
		if err != nil {
			return &InputError{Source: source, Err: fmt.Errorf("document %d: %w", n, err)}
		}
		s.VMI = vmi

	case "VirtualMachineInstance":
		vmi := &kubevirtv1.VirtualMachineInstance{}
		if err := s.decodeStrict(source, n, doc, vmi); err != nil {
			return err
		}
		defaultNamespace(&vmi.Namespace)
		s.VMI = vmi
	}
	return nil
}

// decodeStrict decodes doc into obj. Unknown fields become the scenario's
// Rejection (the API server's response under fieldValidation=Strict) and
// Warnings (its response under Warn, where it stores the object without
// them); any other decoding failure is an InputError.
func (s *Scenario) decodeStrict(source string, n int, doc []byte, obj runtime.Object) error {
	if _, _, err := lenientSerializer.Decode(doc, nil, obj); err != nil {
		return inputErrorf(source, "document %d: %v", n, err)
	}

	fields, suggestions, err := unknownFieldsWithSuggestions(doc, obj)
	if err != nil {
		return inputErrorf(source, "document %d: %v", n, err)
	}
	if len(fields) == 0 {
		return nil
	}

	meta, _ := typeMetaOf(doc)
	gv, _ := schema.ParseGroupVersion(meta.APIVersion)
	for _, f := range fields {
		s.Warnings = append(s.Warnings, fmt.Sprintf("unknown field %q", f))
	}
	message := strictDecodingMessage(meta.Kind, gv.Version, fields)
	object := meta.Kind + "/" + meta.Metadata.Name
	if meta.Metadata.Name == "" {
		object = meta.Kind + " (without metadata.name)"
	}
	if s.Rejection == nil {
		s.Rejection = &Rejection{Object: object, Fields: fields, Message: message}
	} else {
		s.Rejection.Fields = append(s.Rejection.Fields, fields...)
		s.Rejection.Message += "; " + message
	}
	for path, name := range suggestions {
		if s.Rejection.Suggestions == nil {
			s.Rejection.Suggestions = map[string]string{}
		}
		s.Rejection.Suggestions[path] = name
	}
	return nil
}

func typeMetaOf(doc []byte) (typeMeta, error) {
	var meta typeMeta
	err := yaml.Unmarshal(doc, &meta)
	return meta, err
}

func defaultNamespace(ns *string) {
	if *ns == "" {
		*ns = "default"
	}
}

func nameFromSource(source string) string {
	base := filepath.Base(strings.Split(source, ",")[0])
	return strings.TrimSuffix(strings.TrimSuffix(base, ".yaml"), ".yml")
}

// Package matrix reads clusters/matrix.yaml, the regression matrix: which
// scenarios run on which provider with which component versions. A cell is a
// provider, a version set (for kind) and a Ginkgo label filter. The package
// validates the file, counts the scenarios a cell selects with Ginkgo's own
// label filter parser, and turns a cell into the make command that runs it.
package matrix

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"

	"sigs.k8s.io/yaml"
)

// DefaultPath is the matrix file, relative to the repository root.
const DefaultPath = "clusters/matrix.yaml"

// Matrix is the decoded matrix file.
type Matrix struct {
	// Axes are the label values scenarios and filters may use.
	Axes Axes `json:"axes"`
	// GuestImages are the containerDisk images scenarios boot on kind.
	GuestImages []GuestImage `json:"guestImages"`
	// VersionSets are named overrides of clusters/versions.yaml.
	VersionSets []VersionSet `json:"versionSets"`
	// Cells are the runs.
	Cells []Cell `json:"cells"`
}

// Axes lists the values of the cni, binding and strategy labels.
type Axes struct {
	CNI      []string `json:"cni"`
	Binding  []string `json:"binding"`
	Strategy []string `json:"strategy"`
}

// GuestImage is a containerDisk image, pinned by digest when one is known.
type GuestImage struct {
	// Image is "<repository>:<tag>" as the scenario files write it.
	Image string `json:"image"`
	// Digest is "sha256:<hex>", or empty when it is not known yet.
	Digest string `json:"digest"`
}

// VersionSet overrides components of clusters/versions.yaml. A nil
// component keeps the file's value.
type VersionSet struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// KindNodeImage is "kindest/node:vX.Y.Z@sha256:<digest>".
	KindNodeImage string     `json:"kindNodeImage,omitempty"`
	KubeVirt      *Component `json:"kubevirt,omitempty"`
	Multus        *Component `json:"multus,omitempty"`
	CNIPlugins    *Component `json:"cniPlugins,omitempty"`
	MacvtapCNI    *Component `json:"macvtapCNI,omitempty"`
}

// Component is a release tag and, optionally, the sha256 of what the kind
// provider downloads for it: the operator manifest (KubeVirt), the DaemonSet
// manifest (Multus, macvtap-cni) or the archive for the nodes' architecture
// (CNI plugins).
type Component struct {
	Version string `json:"version"`
	SHA256  string `json:"sha256,omitempty"`
}

// Cell is one run of the matrix.
type Cell struct {
	// Name identifies the cell in make, CI job names, artifact names and
	// report columns.
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Provider is "local" or "kind".
	Provider string `json:"provider"`
	// Versions names a version set; kind cells only.
	Versions string `json:"versions,omitempty"`
	// LabelFilter is a Ginkgo label filter; empty selects every scenario.
	LabelFilter string `json:"labelFilter"`
	// Nightly puts the cell in the nightly workflow.
	Nightly bool `json:"nightly"`
}

// Load reads and validates a matrix file.
func Load(path string) (*Matrix, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("matrix: read %s: %w", path, err)
	}
	return Parse(path, data)
}

// Parse decodes and validates a matrix file; source names it in errors.
// Unknown fields are errors that name the field's path and the fields
// allowed there, so that a misspelt key cannot silently fall back to a
// default.
func Parse(source string, data []byte) (*Matrix, error) {
	doc, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, fmt.Errorf("matrix: %s is not valid YAML: %w", source, err)
	}
	if bytes.Equal(bytes.TrimSpace(doc), []byte("null")) {
		return nil, fmt.Errorf("matrix: %s is empty: it needs at least axes and cells", source)
	}

	var value any
	if err := json.Unmarshal(doc, &value); err != nil {
		return nil, fmt.Errorf("matrix: %s: %w", source, err)
	}
	if problems := unknownFields(value, reflect.TypeOf(Matrix{}), ""); len(problems) > 0 {
		return nil, fmt.Errorf("matrix: %s: %w", source, errors.Join(problems...))
	}

	var m Matrix
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("matrix: %s: %w", source, describeDecodeError(err))
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("matrix: %s: %w", source, err)
	}
	return &m, nil
}

// describeDecodeError rewrites encoding/json's type errors with the field
// path as the file writes it.
func describeDecodeError(err error) error {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) && typeErr.Field != "" {
		return fmt.Errorf("field %q has a %s value, want a %s", typeErr.Field, typeErr.Value, typeName(typeErr.Type))
	}
	return err
}

func typeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "boolean (true or false)"
	case reflect.String:
		return "string"
	case reflect.Slice:
		return "list"
	case reflect.Struct, reflect.Map, reflect.Pointer:
		return "mapping"
	}
	return t.String()
}

// Cell returns the cell called name.
func (m *Matrix) Cell(name string) (*Cell, error) {
	for i := range m.Cells {
		if m.Cells[i].Name == name {
			return &m.Cells[i], nil
		}
	}
	return nil, fmt.Errorf("matrix: no cell %q: use one of %v (make matrix lists them)", name, m.CellNames())
}

// CellNames returns the cell names in file order.
func (m *Matrix) CellNames() []string {
	names := make([]string, 0, len(m.Cells))
	for _, c := range m.Cells {
		names = append(names, c.Name)
	}
	return names
}

// VersionSet returns the version set called name.
func (m *Matrix) VersionSet(name string) (*VersionSet, bool) {
	for i := range m.VersionSets {
		if m.VersionSets[i].Name == name {
			return &m.VersionSets[i], true
		}
	}
	return nil, false
}

// GuestImage returns the entry for a containerDisk image.
func (m *Matrix) GuestImage(image string) (*GuestImage, bool) {
	for i := range m.GuestImages {
		if m.GuestImages[i].Image == image {
			return &m.GuestImages[i], true
		}
	}
	return nil, false
}

package matrix

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/onsi/ginkgo/v2/types"

	"github.com/vmnet-e2e/vmnet-e2e/clusters/providers"
	"github.com/vmnet-e2e/vmnet-e2e/framework/scenario"
)

var (
	// cellName allows what a make variable, a directory, a GitHub Actions
	// job name and an artifact name all accept.
	cellName   = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$`)
	releaseTag = regexp.MustCompile(`^v\d+\.\d+\.\d+$`)
	sha256Hex  = regexp.MustCompile(`^[0-9a-f]{64}$`)
	digest     = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	// axisValue allows what Ginkgo allows in a label value and what the
	// filter checks can read back: no operators, braces, quotes or spaces.
	axisValue = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
)

// Validate checks the matrix on its own: names, references between
// sections, version sets under the kind provider's rules, and label filters
// under Ginkgo's parser and against the axes. CheckScenarios checks it
// against the scenario files.
func (m *Matrix) Validate() error {
	var errs []error
	errs = append(errs, m.validateAxes()...)
	errs = append(errs, m.validateGuestImages()...)
	errs = append(errs, m.validateVersionSets()...)
	errs = append(errs, m.validateCells()...)
	return errors.Join(errs...)
}

func (m *Matrix) validateAxes() []error {
	var errs []error
	for _, axis := range []struct {
		key    string
		values []string
	}{
		{LabelCNI, m.Axes.CNI}, {LabelBinding, m.Axes.Binding}, {LabelStrategy, m.Axes.Strategy},
	} {
		if len(axis.values) == 0 {
			errs = append(errs, fmt.Errorf("axes.%s is empty: list the %s values the scenarios use", axis.key, axis.key))
		}
		seen := map[string]bool{}
		for i, v := range axis.values {
			switch {
			case !axisValue.MatchString(v):
				errs = append(errs, fmt.Errorf("axes.%s[%d] %q is not a valid label value: use lowercase letters, digits, '.', '_' and '-'", axis.key, i, v))
			case seen[v]:
				errs = append(errs, fmt.Errorf("axes.%s[%d] %q is listed twice", axis.key, i, v))
			}
			seen[v] = true
		}
	}
	return errs
}

func (m *Matrix) validateGuestImages() []error {
	var errs []error
	seen := map[string]bool{}
	for i, g := range m.GuestImages {
		field := fmt.Sprintf("guestImages[%d]", i)
		_, tag, hasTag := strings.Cut(lastPathElement(g.Image), ":")
		switch {
		case g.Image == "":
			errs = append(errs, fmt.Errorf("%s.image is empty: write <repository>:<tag>", field))
		case strings.Contains(g.Image, "@"):
			errs = append(errs, fmt.Errorf("%s.image %q contains a digest: write the tag in image and the digest in digest", field, g.Image))
		case !hasTag || tag == "":
			errs = append(errs, fmt.Errorf("%s.image %q has no tag: write <repository>:<tag> as the scenario files do", field, g.Image))
		case seen[g.Image]:
			errs = append(errs, fmt.Errorf("%s.image %q is listed twice", field, g.Image))
		}
		seen[g.Image] = true
		if g.Digest != "" && !digest.MatchString(g.Digest) {
			errs = append(errs, fmt.Errorf("%s.digest %q is not a digest: write sha256:<64 lowercase hex digits>, or leave it empty when it is not known", field, g.Digest))
		}
	}
	return errs
}

func lastPathElement(image string) string {
	if i := strings.LastIndex(image, "/"); i >= 0 {
		return image[i+1:]
	}
	return image
}

func (m *Matrix) validateVersionSets() []error {
	var errs []error
	seen := map[string]bool{}
	for i, v := range m.VersionSets {
		field := fmt.Sprintf("versionSets[%d]", i)
		before := len(errs)
		switch {
		case !cellName.MatchString(v.Name):
			errs = append(errs, fmt.Errorf("%s.name %q is not valid: use lowercase letters, digits, '.' and '-'", field, v.Name))
		case seen[v.Name]:
			errs = append(errs, fmt.Errorf("%s.name %q is used twice", field, v.Name))
		}
		seen[v.Name] = true

		for _, c := range []struct {
			name      string
			component *Component
		}{
			{"kubevirt", v.KubeVirt}, {"multus", v.Multus}, {"cniPlugins", v.CNIPlugins}, {"macvtapCNI", v.MacvtapCNI},
		} {
			if c.component == nil {
				continue
			}
			if !releaseTag.MatchString(c.component.Version) {
				errs = append(errs, fmt.Errorf("%s.%s.version %q is not a release tag: write vX.Y.Z", field, c.name, c.component.Version))
			}
			if c.component.SHA256 != "" && !sha256Hex.MatchString(c.component.SHA256) {
				errs = append(errs, fmt.Errorf("%s.%s.sha256 %q is not a sha256: write 64 lowercase hex digits, or leave it out", field, c.name, c.component.SHA256))
			}
		}
		// The kind provider's own rules run last, on a set whose fields are
		// well formed, so that each mistake is reported once.
		if len(errs) == before {
			if _, err := v.KindVersions(); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", field, err))
			}
		}
	}
	return errs
}

func (m *Matrix) validateCells() []error {
	if len(m.Cells) == 0 {
		return []error{errors.New("cells is empty: add at least one cell")}
	}
	var errs []error
	seen := map[string]bool{}
	for i, c := range m.Cells {
		field := fmt.Sprintf("cells[%d]", i)
		switch {
		case !cellName.MatchString(c.Name):
			errs = append(errs, fmt.Errorf("%s.name %q is not valid: use lowercase letters, digits, '.' and '-'", field, c.Name))
		case seen[c.Name]:
			errs = append(errs, fmt.Errorf("%s.name %q is used twice", field, c.Name))
		}
		seen[c.Name] = true
		field = fmt.Sprintf("cells[%d] (%s)", i, c.Name)

		switch c.Provider {
		case "kind":
			if c.Versions == "" {
				errs = append(errs, fmt.Errorf("%s has no versions: name a version set (for example %q)", field, "pinned"))
			} else if _, ok := m.VersionSet(c.Versions); !ok {
				errs = append(errs, fmt.Errorf("%s.versions %q is not a version set: use one of %v", field, c.Versions, m.versionSetNames()))
			}
		case "local":
			if c.Versions != "" {
				errs = append(errs, fmt.Errorf("%s.versions %q: the local provider takes no version overrides (it uses the host's packages); remove versions", field, c.Versions))
			}
		default:
			errs = append(errs, fmt.Errorf("%s.provider %q is not a provider: use one of %v", field, c.Provider, providers.Names))
		}

		if err := m.checkLabelFilter(c.LabelFilter); err != nil {
			errs = append(errs, fmt.Errorf("%s.labelFilter: %w", field, err))
		}
	}
	return errs
}

func (m *Matrix) versionSetNames() []string {
	var names []string
	for _, v := range m.VersionSets {
		names = append(names, v.Name)
	}
	return names
}

// checkLabelFilter parses a filter with Ginkgo and checks that every label
// it names is a known key with a value from the axes.
func (m *Matrix) checkLabelFilter(filter string) error {
	if strings.ContainsAny(filter, "'$") {
		return fmt.Errorf("%q contains ' or $: the Makefile passes the filter to Ginkgo in single quotes, where neither survives", filter)
	}
	if _, err := types.ParseLabelFilter(filter); err != nil {
		return fmt.Errorf("%q is not a Ginkgo label filter: %w", filter, err)
	}

	var errs []error
	for _, ref := range filterLabels(filter) {
		values, ok := m.axisValues(ref.key)
		switch {
		case !ok && ref.value == "" && !ref.keyOnly:
			errs = append(errs, fmt.Errorf("label %q has no key: scenarios carry only key:value labels, for example cni:%s", ref.key, firstOr(m.Axes.CNI, "macvlan")))
		case !ok:
			errs = append(errs, fmt.Errorf("label key %q is unknown: use %s, %s or %s", ref.key, LabelCNI, LabelBinding, LabelStrategy))
		case !ref.keyOnly && !slices.Contains(values, ref.value):
			errs = append(errs, fmt.Errorf("%s %q is not in axes.%s %v: fix the value or add it to the axes", ref.key, ref.value, ref.key, values))
		}
	}
	return errors.Join(errs...)
}

func (m *Matrix) axisValues(key string) ([]string, bool) {
	switch key {
	case LabelCNI:
		return m.Axes.CNI, true
	case LabelBinding:
		return m.Axes.Binding, true
	case LabelStrategy:
		return m.Axes.Strategy, true
	}
	return nil, false
}

func firstOr(values []string, fallback string) string {
	if len(values) > 0 {
		return values[0]
	}
	return fallback
}

// CheckScenarios checks the matrix against the specs among the scenario
// files (see Specs): every label of every spec is in the axes, every
// containerDisk image a spec boots is listed in guestImages, and every cell
// selects at least one spec.
func (m *Matrix) CheckScenarios(scenarios []*scenario.Scenario) error {
	var errs []error
	for _, s := range Specs(scenarios) {
		for _, label := range Labels(s) {
			key, value, _ := strings.Cut(label, ":")
			values, _ := m.axisValues(key)
			if !slices.Contains(values, value) {
				errs = append(errs, fmt.Errorf("scenario %s (%s) has label %s, but axes.%s %v does not list %q: add it to the axes in %s",
					s.Name, s.Source, label, key, values, value, DefaultPath))
			}
		}
		for _, image := range ContainerDiskImages(s) {
			if _, ok := m.GuestImage(image); !ok {
				errs = append(errs, fmt.Errorf("scenario %s (%s) boots containerDisk %s, which guestImages does not list: add it with its digest, or an empty digest when unknown",
					s.Name, s.Source, image))
			}
		}
	}
	for _, c := range m.Cells {
		selected, err := Select(c.LabelFilter, scenarios)
		if err != nil {
			errs = append(errs, fmt.Errorf("cell %s: %w", c.Name, err))
			continue
		}
		if len(selected) == 0 {
			errs = append(errs, fmt.Errorf("cell %s: label filter %q selects no scenario: fix the filter or remove the cell", c.Name, c.LabelFilter))
		}
	}
	return errors.Join(errs...)
}

// ContainerDiskImages returns the containerDisk images of a scenario's VMI,
// sorted and without duplicates.
func ContainerDiskImages(s *scenario.Scenario) []string {
	if s.VMI == nil {
		return nil
	}
	var images []string
	for _, v := range s.VMI.Spec.Volumes {
		if v.ContainerDisk != nil && v.ContainerDisk.Image != "" && !slices.Contains(images, v.ContainerDisk.Image) {
			images = append(images, v.ContainerDisk.Image)
		}
	}
	slices.Sort(images)
	return images
}

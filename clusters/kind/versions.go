package kind

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/vmnet-e2e/vmnet-e2e/clusters"
)

// Versions are the pinned components the provider installs. They come from
// clusters/versions.yaml (LoadVersions), which describes every field.
type Versions struct {
	Kind       KindVersions     `json:"kind"`
	KubeVirt   KubeVirtVersions `json:"kubevirt"`
	Multus     ManifestVersions `json:"multus"`
	CNIPlugins CNIPlugins       `json:"cniPlugins"`
	MacvtapCNI ManifestVersions `json:"macvtapCNI"`
}

// KindVersions pins the kind node image.
type KindVersions struct {
	// NodeImage is "kindest/node:<tag>@sha256:<digest>".
	NodeImage string `json:"nodeImage"`
}

// KubeVirtVersions pins the KubeVirt operator release.
type KubeVirtVersions struct {
	Version        string `json:"version"`
	OperatorURL    string `json:"operatorURL"`
	OperatorSHA256 string `json:"operatorSHA256"`
}

// ManifestVersions pins a component installed from a manifest file whose
// image the harness replaces.
type ManifestVersions struct {
	Version        string `json:"version"`
	ManifestURL    string `json:"manifestURL"`
	ManifestSHA256 string `json:"manifestSHA256"`
	Image          string `json:"image"`
}

// CNIPlugins pins the containernetworking/plugins release archive.
type CNIPlugins struct {
	Version    string `json:"version"`
	ArchiveURL string `json:"archiveURL"`
	// SHA256 maps an architecture (amd64, arm64) to the archive's sha256.
	SHA256 map[string]string `json:"sha256"`
}

// Environment variables that override versions.yaml, as its comments name
// them.
const (
	EnvNodeImage             = "VMNET_E2E_KIND_NODE_IMAGE"
	EnvKubeVirtVersion       = "VMNET_E2E_KUBEVIRT_VERSION"
	EnvKubeVirtOperatorSHA   = "VMNET_E2E_KUBEVIRT_OPERATOR_SHA256"
	EnvMultusVersion         = "VMNET_E2E_MULTUS_VERSION"
	EnvMultusManifestSHA     = "VMNET_E2E_MULTUS_MANIFEST_SHA256"
	EnvCNIPluginsVersion     = "VMNET_E2E_CNI_PLUGINS_VERSION"
	EnvCNIPluginsSHA         = "VMNET_E2E_CNI_PLUGINS_SHA256"
	EnvMacvtapCNIVersion     = "VMNET_E2E_MACVTAP_CNI_VERSION"
	EnvMacvtapCNIManifestSHA = "VMNET_E2E_MACVTAP_CNI_MANIFEST_SHA256"
)

// LoadVersions returns clusters/versions.yaml with the environment's
// overrides applied, validated.
func LoadVersions() (Versions, error) {
	v, err := ParseVersions(clusters.VersionsYAML)
	if err != nil {
		return Versions{}, err
	}
	v = v.WithOverrides(os.LookupEnv)
	if err := v.Validate(); err != nil {
		return Versions{}, err
	}
	return v, nil
}

// ParseVersions decodes a versions file. Unknown keys are errors, so that a
// misspelt key cannot silently leave a default in place.
func ParseVersions(data []byte) (Versions, error) {
	var v Versions
	if err := yaml.UnmarshalStrict(data, &v); err != nil {
		return Versions{}, fmt.Errorf("kind: parse versions file: %w", err)
	}
	return v, nil
}

// WithOverrides returns v with the overrides lookup finds (os.LookupEnv in
// LoadVersions). A version override without its sha256 override clears the
// pinned sha256, which belongs to the old version.
func (v Versions) WithOverrides(lookup func(string) (string, bool)) Versions {
	get := func(name string) (string, bool) {
		value, ok := lookup(name)
		value = strings.TrimSpace(value)
		return value, ok && value != ""
	}
	overrideVersion := func(version, sha *string, versionEnv, shaEnv string) {
		if value, ok := get(versionEnv); ok && value != *version {
			*version = value
			*sha = ""
		}
		if value, ok := get(shaEnv); ok {
			*sha = strings.ToLower(value)
		}
	}

	if value, ok := get(EnvNodeImage); ok {
		v.Kind.NodeImage = value
	}
	overrideVersion(&v.KubeVirt.Version, &v.KubeVirt.OperatorSHA256, EnvKubeVirtVersion, EnvKubeVirtOperatorSHA)
	overrideVersion(&v.Multus.Version, &v.Multus.ManifestSHA256, EnvMultusVersion, EnvMultusManifestSHA)
	overrideVersion(&v.MacvtapCNI.Version, &v.MacvtapCNI.ManifestSHA256, EnvMacvtapCNIVersion, EnvMacvtapCNIManifestSHA)

	// The CNI plugins carry one sha256 per architecture. The override sets
	// the one of the nodes' architecture, which is this host's, because kind
	// nodes are containers on it.
	sums := map[string]string{}
	for arch, sum := range v.CNIPlugins.SHA256 {
		sums[arch] = sum
	}
	if value, ok := get(EnvCNIPluginsVersion); ok && value != v.CNIPlugins.Version {
		v.CNIPlugins.Version = value
		sums = map[string]string{}
	}
	if value, ok := get(EnvCNIPluginsSHA); ok {
		sums[hostArch()] = strings.ToLower(value)
	}
	v.CNIPlugins.SHA256 = sums
	return v
}

var (
	releaseTag   = regexp.MustCompile(`^v\d+\.\d+\.\d+$`)
	sha256Hex    = regexp.MustCompile(`^[0-9a-f]{64}$`)
	pinnedImage  = regexp.MustCompile(`^[^@\s]+:v\d+\.\d+\.\d+@sha256:[0-9a-f]{64}$`)
	floatingTags = []string{":latest", ":snapshot", ":stable", ":main", ":master"}
)

// Validate checks that every component is pinned: release tags of the form
// vX.Y.Z, the node image by digest, images by a tag that is not floating, and
// every sha256 that is set well formed.
func (v Versions) Validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}

	check(pinnedImage.MatchString(v.Kind.NodeImage),
		"kind.nodeImage %q is not pinned: write kindest/node:vX.Y.Z@sha256:<digest> (%s)", v.Kind.NodeImage, EnvNodeImage)

	for _, c := range []struct{ name, version, env string }{
		{"kubevirt", v.KubeVirt.Version, EnvKubeVirtVersion},
		{"multus", v.Multus.Version, EnvMultusVersion},
		{"cniPlugins", v.CNIPlugins.Version, EnvCNIPluginsVersion},
		{"macvtapCNI", v.MacvtapCNI.Version, EnvMacvtapCNIVersion},
	} {
		check(releaseTag.MatchString(c.version), "%s.version %q is not a release tag: write vX.Y.Z (%s)", c.name, c.version, c.env)
	}

	for _, s := range []struct{ name, sum string }{
		{"kubevirt.operatorSHA256", v.KubeVirt.OperatorSHA256},
		{"multus.manifestSHA256", v.Multus.ManifestSHA256},
		{"macvtapCNI.manifestSHA256", v.MacvtapCNI.ManifestSHA256},
	} {
		check(s.sum == "" || sha256Hex.MatchString(s.sum), "%s %q is not a sha256: write 64 lowercase hex digits or leave it empty", s.name, s.sum)
	}
	for arch, sum := range v.CNIPlugins.SHA256 {
		check(sha256Hex.MatchString(sum), "cniPlugins.sha256.%s %q is not a sha256: write 64 lowercase hex digits", arch, sum)
	}

	for _, u := range []struct{ name, url string }{
		{"kubevirt.operatorURL", v.KubeVirt.OperatorURL},
		{"multus.manifestURL", v.Multus.ManifestURL},
		{"cniPlugins.archiveURL", v.CNIPlugins.ArchiveURL},
		{"macvtapCNI.manifestURL", v.MacvtapCNI.ManifestURL},
	} {
		check(strings.HasPrefix(u.url, "https://") && strings.Contains(u.url, "{version}"),
			"%s %q must be an https URL containing {version}", u.name, u.url)
	}

	for _, img := range []struct{ name, image string }{
		{"multus.image", v.Multus.Image},
		{"macvtapCNI.image", v.MacvtapCNI.Image},
	} {
		floating := false
		for _, tag := range floatingTags {
			floating = floating || strings.Contains(img.image, tag)
		}
		check(img.image != "" && !floating && strings.Contains(img.image, ":"),
			"%s %q is not pinned: name a release tag, for example :{version}", img.name, img.image)
	}

	if len(errs) > 0 {
		return fmt.Errorf("kind: versions: %w", errors.Join(errs...))
	}
	return nil
}

// expand replaces {version} and {arch} in a URL or image template.
func expand(template, version, arch string) string {
	return strings.NewReplacer("{version}", version, "{arch}", arch).Replace(template)
}

// OperatorURL returns the KubeVirt operator manifest URL.
func (v Versions) OperatorURL() string {
	return expand(v.KubeVirt.OperatorURL, v.KubeVirt.Version, "")
}

// MultusManifestURL returns the Multus thick plugin manifest URL.
func (v Versions) MultusManifestURL() string {
	return expand(v.Multus.ManifestURL, v.Multus.Version, "")
}

// MultusImage returns the Multus image that replaces the manifest's.
func (v Versions) MultusImage() string { return expand(v.Multus.Image, v.Multus.Version, "") }

// CNIPluginsURL returns the CNI plugins archive URL for arch.
func (v Versions) CNIPluginsURL(arch string) string {
	return expand(v.CNIPlugins.ArchiveURL, v.CNIPlugins.Version, arch)
}

// MacvtapManifestURL returns the macvtap-cni manifest URL.
func (v Versions) MacvtapManifestURL() string {
	return expand(v.MacvtapCNI.ManifestURL, v.MacvtapCNI.Version, "")
}

// MacvtapImage returns the macvtap-cni image that replaces the manifest's.
func (v Versions) MacvtapImage() string {
	return expand(v.MacvtapCNI.Image, v.MacvtapCNI.Version, "")
}

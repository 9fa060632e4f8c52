package matrix

import (
	"fmt"
	"sort"
	"strings"

	"github.com/vmnet-e2e/vmnet-e2e/clusters"
	"github.com/vmnet-e2e/vmnet-e2e/clusters/kind"
)

// Env returns the environment variables that apply the set to
// clusters/versions.yaml, named as that file and clusters/kind name them.
// An empty set returns an empty map.
func (v VersionSet) Env() map[string]string {
	env := map[string]string{}
	if v.KindNodeImage != "" {
		env[kind.EnvNodeImage] = v.KindNodeImage
	}
	for _, c := range []struct {
		component          *Component
		versionEnv, shaEnv string
	}{
		{v.KubeVirt, kind.EnvKubeVirtVersion, kind.EnvKubeVirtOperatorSHA},
		{v.Multus, kind.EnvMultusVersion, kind.EnvMultusManifestSHA},
		{v.CNIPlugins, kind.EnvCNIPluginsVersion, kind.EnvCNIPluginsSHA},
		{v.MacvtapCNI, kind.EnvMacvtapCNIVersion, kind.EnvMacvtapCNIManifestSHA},
	} {
		if c.component == nil {
			continue
		}
		env[c.versionEnv] = c.component.Version
		if c.component.SHA256 != "" {
			env[c.shaEnv] = c.component.SHA256
		}
	}
	return env
}

// KindVersions returns clusters/versions.yaml with the set applied and
// validated by the kind provider's own rules (kind.Versions.Validate), so
// that a set the provider would refuse fails here, before a CI job starts.
func (v VersionSet) KindVersions() (kind.Versions, error) {
	base, err := kind.ParseVersions(clusters.VersionsYAML)
	if err != nil {
		return kind.Versions{}, err
	}
	env := v.Env()
	resolved := base.WithOverrides(func(name string) (string, bool) {
		value, ok := env[name]
		return value, ok
	})
	if err := resolved.Validate(); err != nil {
		return kind.Versions{}, fmt.Errorf("version set %q applied to clusters/versions.yaml: %w", v.Name, err)
	}
	return resolved, nil
}

// VersionSummary returns the component versions of a kind.Versions in one
// line, with "*" after each one that differs from clusters/versions.yaml.
func VersionSummary(v kind.Versions) string {
	base, err := kind.ParseVersions(clusters.VersionsYAML)
	if err != nil {
		// The embedded file is validated by clusters/kind's own tests;
		// without it no version is marked.
		base = v
	}
	mark := func(got, pinned string) string {
		if got != pinned {
			return got + "*"
		}
		return got
	}
	return strings.Join([]string{
		"KubeVirt " + mark(v.KubeVirt.Version, base.KubeVirt.Version),
		"Multus " + mark(v.Multus.Version, base.Multus.Version),
		"CNI plugins " + mark(v.CNIPlugins.Version, base.CNIPlugins.Version),
		"macvtap-cni " + mark(v.MacvtapCNI.Version, base.MacvtapCNI.Version),
		"node " + mark(nodeTag(v.Kind.NodeImage), nodeTag(base.Kind.NodeImage)),
	}, ", ")
}

// nodeTag returns the tag of "kindest/node:v1.37.0@sha256:...".
func nodeTag(image string) string {
	ref, _, _ := strings.Cut(image, "@")
	if i := strings.LastIndex(ref, ":"); i >= 0 && !strings.Contains(ref[i:], "/") {
		return ref[i+1:]
	}
	return ref
}

// sortedEnv returns env as sorted NAME=value pairs.
func sortedEnv(env map[string]string) []string {
	pairs := make([]string, 0, len(env))
	for name, value := range env {
		pairs = append(pairs, name+"="+value)
	}
	sort.Strings(pairs)
	return pairs
}

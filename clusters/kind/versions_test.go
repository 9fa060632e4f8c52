package kind

import (
	"strings"
	"testing"

	"sigs.k8s.io/kind/pkg/apis/config/defaults"

	"github.com/vmnet-e2e/vmnet-e2e/clusters"
)

func loadVersionsFile(t *testing.T) Versions {
	t.Helper()
	v, err := ParseVersions(clusters.VersionsYAML)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestVersionsFileLoads(t *testing.T) {
	v := loadVersionsFile(t)
	if err := v.Validate(); err != nil {
		t.Fatalf("clusters/versions.yaml does not validate: %v", err)
	}
}

func TestVersionsFilePinsEveryComponent(t *testing.T) {
	v := loadVersionsFile(t)

	for name, version := range map[string]string{
		"kubevirt": v.KubeVirt.Version, "multus": v.Multus.Version,
		"cniPlugins": v.CNIPlugins.Version, "macvtapCNI": v.MacvtapCNI.Version,
	} {
		if !releaseTag.MatchString(version) {
			t.Errorf("%s.version = %q, want a release tag vX.Y.Z", name, version)
		}
	}
	if v.Kind.NodeImage != defaults.Image {
		t.Errorf("kind.nodeImage = %q, want sigs.k8s.io/kind's default image %q (update clusters/versions.yaml with the kind module)", v.Kind.NodeImage, defaults.Image)
	}
	for _, arch := range []string{"amd64", "arm64"} {
		if !sha256Hex.MatchString(v.CNIPlugins.SHA256[arch]) {
			t.Errorf("cniPlugins.sha256.%s = %q, want the published sha256", arch, v.CNIPlugins.SHA256[arch])
		}
	}
	for name, sum := range map[string]string{"multus": v.Multus.ManifestSHA256, "macvtapCNI": v.MacvtapCNI.ManifestSHA256} {
		if !sha256Hex.MatchString(sum) {
			t.Errorf("%s.manifestSHA256 = %q, want a sha256", name, sum)
		}
	}
	if got, want := v.MultusImage(), "ghcr.io/k8snetworkplumbingwg/multus-cni:v4.3.0-thick"; got != want {
		t.Errorf("MultusImage() = %q, want %q", got, want)
	}
	if got, want := v.CNIPluginsURL("arm64"), "https://github.com/containernetworking/plugins/releases/download/v1.9.1/cni-plugins-linux-arm64-v1.9.1.tgz"; got != want {
		t.Errorf("CNIPluginsURL(arm64) = %q, want %q", got, want)
	}
}

func TestVersionsFileNamesEveryEnvVariable(t *testing.T) {
	for _, env := range []string{
		EnvNodeImage, EnvKubeVirtVersion, EnvKubeVirtOperatorSHA, EnvMultusVersion, EnvMultusManifestSHA,
		EnvCNIPluginsVersion, EnvCNIPluginsSHA, EnvMacvtapCNIVersion, EnvMacvtapCNIManifestSHA,
	} {
		if !strings.Contains(string(clusters.VersionsYAML), env) {
			t.Errorf("clusters/versions.yaml does not name the override %s in its comments", env)
		}
	}
}

func TestVersionsOverrides(t *testing.T) {
	base := loadVersionsFile(t)
	sum := strings.Repeat("ab", 32)
	env := map[string]string{
		EnvKubeVirtVersion:     "v1.8.4",
		EnvMultusVersion:       "v4.2.4",
		EnvMultusManifestSHA:   strings.ToUpper(sum),
		EnvCNIPluginsVersion:   "v1.8.0",
		EnvCNIPluginsSHA:       sum,
		EnvNodeImage:           "kindest/node:v1.36.1@sha256:" + sum,
		EnvMacvtapCNIVersion:   "  ",
		EnvKubeVirtOperatorSHA: "",
	}
	got := base.WithOverrides(func(k string) (string, bool) { v, ok := env[k]; return v, ok })

	if got.KubeVirt.Version != "v1.8.4" || got.KubeVirt.OperatorSHA256 != "" {
		t.Errorf("kubevirt = %+v, want version v1.8.4 and no sha256", got.KubeVirt)
	}
	if got.Multus.Version != "v4.2.4" || got.Multus.ManifestSHA256 != sum {
		t.Errorf("multus = %+v, want version v4.2.4 and the overriding sha256, lower-cased", got.Multus)
	}
	if got.CNIPlugins.Version != "v1.8.0" || len(got.CNIPlugins.SHA256) != 1 || got.CNIPlugins.SHA256[hostArch()] != sum {
		t.Errorf("cniPlugins = %+v, want version v1.8.0 with only the %s sha256 from the environment", got.CNIPlugins, hostArch())
	}
	if got.Kind.NodeImage != env[EnvNodeImage] {
		t.Errorf("nodeImage = %q, want %q", got.Kind.NodeImage, env[EnvNodeImage])
	}
	if got.MacvtapCNI != base.MacvtapCNI {
		t.Errorf("a blank override changed macvtapCNI to %+v", got.MacvtapCNI)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("overridden versions do not validate: %v", err)
	}
	if base.KubeVirt.Version != "v1.9.0" {
		t.Errorf("WithOverrides changed its receiver: kubevirt.version = %q", base.KubeVirt.Version)
	}
}

func TestVersionsOverrideKeepsShaOfSameVersion(t *testing.T) {
	base := loadVersionsFile(t)
	got := base.WithOverrides(func(k string) (string, bool) {
		if k == EnvMultusVersion {
			return base.Multus.Version, true
		}
		return "", false
	})
	if got.Multus.ManifestSHA256 != base.Multus.ManifestSHA256 {
		t.Errorf("overriding multus with its pinned version dropped the sha256: %q", got.Multus.ManifestSHA256)
	}
}

func TestLoadVersionsReadsEnvironment(t *testing.T) {
	t.Setenv(EnvKubeVirtVersion, "v1.8.1")
	v, err := LoadVersions()
	if err != nil {
		t.Fatal(err)
	}
	if v.KubeVirt.Version != "v1.8.1" {
		t.Errorf("kubevirt.version = %q, want v1.8.1 from %s", v.KubeVirt.Version, EnvKubeVirtVersion)
	}
}

func TestLoadVersionsRejectsFloatingOverride(t *testing.T) {
	t.Setenv(EnvMultusVersion, "snapshot")
	_, err := LoadVersions()
	if err == nil || !strings.Contains(err.Error(), "multus.version") {
		t.Fatalf("LoadVersions() error = %v, want one naming multus.version", err)
	}
}

func TestVersionsValidateRejectsUnpinned(t *testing.T) {
	cases := map[string]func(*Versions){
		"latest kubevirt":           func(v *Versions) { v.KubeVirt.Version = "latest" },
		"node image without digest": func(v *Versions) { v.Kind.NodeImage = "kindest/node:v1.37.0" },
		"short sha256":              func(v *Versions) { v.Multus.ManifestSHA256 = "abc" },
		"floating multus image":     func(v *Versions) { v.Multus.Image = "ghcr.io/k8snetworkplumbingwg/multus-cni:snapshot-thick" },
		"latest macvtap image":      func(v *Versions) { v.MacvtapCNI.Image = "quay.io/kubevirt/macvtap-cni:latest" },
		"http URL":                  func(v *Versions) { v.KubeVirt.OperatorURL = "http://example.invalid/{version}/op.yaml" },
		"URL without version":       func(v *Versions) { v.CNIPlugins.ArchiveURL = "https://example.invalid/plugins.tgz" },
		"bad CNI sha256":            func(v *Versions) { v.CNIPlugins.SHA256 = map[string]string{"amd64": "zz"} },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			v := loadVersionsFile(t)
			mutate(&v)
			if err := v.Validate(); err == nil {
				t.Errorf("Validate() accepted %s", name)
			}
		})
	}
}

func TestParseVersionsRejectsUnknownKey(t *testing.T) {
	_, err := ParseVersions([]byte("kubevirt:\n  verison: v1.9.0\n"))
	if err == nil {
		t.Fatal("ParseVersions accepted the misspelt key verison")
	}
}

package kind

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	"github.com/vmnet-e2e/vmnet-e2e/framework/scenario"
)

// CNIBinDir is the directory of kubelet's CNI plugins in a kind node, in
// which Multus also looks for the delegates it runs.
const CNIBinDir = "/opt/cni/bin"

// kindPlugins are the CNI plugins the kind node image already ships, built
// from containernetworking/plugins v1.9.1 (kind v0.33.0,
// images/base/Dockerfile). kindnet uses them, so the provider leaves them
// alone.
var kindPlugins = map[string]bool{"host-local": true, "loopback": true, "ptp": true, "portmap": true}

// otherInstallers are plugin types another component installs.
var otherInstallers = map[string]string{"macvtap": "macvtap-cni's DaemonSet"}

// PluginTypes returns every CNI plugin type the scenarios' NADs name: each
// plugin of a config or conflist and each IPAM type, sorted.
func PluginTypes(scenarios []*scenario.Scenario) ([]string, error) {
	seen := map[string]bool{}
	for _, s := range scenarios {
		for _, nad := range s.NADs {
			types, err := configPluginTypes(nad.Spec.Config)
			if err != nil {
				return nil, fmt.Errorf("kind: scenario %s: NAD %s/%s: %w", s.Name, nad.Namespace, nad.Name, err)
			}
			for _, t := range types {
				seen[t] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for t := range seen {
		out = append(out, t)
	}
	sort.Strings(out)
	return out, nil
}

func configPluginTypes(config string) ([]string, error) {
	type plugin struct {
		Type string `json:"type"`
		IPAM struct {
			Type string `json:"type"`
		} `json:"ipam"`
	}
	var top struct {
		plugin
		Plugins []plugin `json:"plugins"`
	}
	if err := json.Unmarshal([]byte(config), &top); err != nil {
		return nil, fmt.Errorf("spec.config is not valid JSON: %w", err)
	}
	plugins := top.Plugins
	if top.Type != "" {
		plugins = append([]plugin{top.plugin}, plugins...)
	}
	var types []string
	for _, p := range plugins {
		for _, t := range []string{p.Type, p.IPAM.Type} {
			if t != "" {
				types = append(types, t)
			}
		}
	}
	return types, nil
}

// PluginsToInstall splits types into the plugins the provider copies from
// the CNI plugins archive and the ones it leaves to the node image or to
// another component, with the reason.
func PluginsToInstall(types []string) (install []string, skipped map[string]string) {
	skipped = map[string]string{}
	for _, t := range types {
		switch {
		case kindPlugins[t]:
			skipped[t] = "shipped by the kind node image"
		case otherInstallers[t] != "":
			skipped[t] = "installed by " + otherInstallers[t]
		default:
			install = append(install, t)
		}
	}
	return install, skipped
}

// SelectPlugins reads a CNI plugins release archive (.tgz, binaries at its
// root) and returns an uncompressed tar holding only the named binaries,
// mode 0755, ready for `tar -x -C /opt/cni/bin` in a node. It fails when the
// archive lacks one of them.
func SelectPlugins(archive io.Reader, names []string) ([]byte, error) {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}

	gz, err := gzip.NewReader(archive)
	if err != nil {
		return nil, fmt.Errorf("kind: CNI plugins archive is not gzip: %w", err)
	}
	defer gz.Close()
	in := tar.NewReader(gz)

	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	found := map[string]bool{}
	for {
		hdr, err := in.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("kind: read CNI plugins archive: %w", err)
		}
		name := path.Base(path.Clean(hdr.Name))
		if hdr.Typeflag != tar.TypeReg || !want[name] || found[name] {
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: hdr.Size, Typeflag: tar.TypeReg}); err != nil {
			return nil, fmt.Errorf("kind: write plugin %s: %w", name, err)
		}
		if _, err := io.Copy(tw, in); err != nil {
			return nil, fmt.Errorf("kind: copy plugin %s: %w", name, err)
		}
		found[name] = true
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("kind: finish plugin tar: %w", err)
	}

	var missing []string
	for _, n := range names {
		if !found[n] {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("kind: the CNI plugins archive has no %s: the NADs name a plugin this release does not ship", strings.Join(missing, ", "))
	}
	return out.Bytes(), nil
}

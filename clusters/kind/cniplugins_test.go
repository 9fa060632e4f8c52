package kind

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/vmnet-e2e/vmnet-e2e/framework/scenario"
)

// pluginArchive builds a .tgz laid out like a CNI plugins release: binaries
// at the root, written "./name".
func pluginArchive(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	if err := tw.WriteHeader(&tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		body := files[name]
		if err := tw.WriteHeader(&tar.Header{Name: "./" + name, Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(body))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestSelectPlugins(t *testing.T) {
	archive := pluginArchive(t, map[string]string{"macvlan": "M", "bridge": "B", "static": "S", "LICENSE": "L"})
	out, err := SelectPlugins(bytes.NewReader(archive), []string{"macvlan", "static"})
	if err != nil {
		t.Fatal(err)
	}

	got := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(out))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		got[hdr.Name] = string(body)
		if hdr.Mode != 0o755 {
			t.Errorf("%s mode = %o, want 755", hdr.Name, hdr.Mode)
		}
	}
	if len(got) != 2 || got["macvlan"] != "M" || got["static"] != "S" {
		t.Errorf("selected = %v, want macvlan and static only, named without ./", got)
	}
}

func TestSelectPluginsMissing(t *testing.T) {
	archive := pluginArchive(t, map[string]string{"macvlan": "M"})
	_, err := SelectPlugins(bytes.NewReader(archive), []string{"macvlan", "whereabouts"})
	if err == nil || !strings.Contains(err.Error(), "whereabouts") {
		t.Fatalf("error = %v, want one naming whereabouts", err)
	}
}

func TestPluginTypesAndInstallSet(t *testing.T) {
	s := loadScenario(t, macvlanScenario)
	s.NADs = append(s.NADs, nadWith("chained", `{"cniVersion":"1.0.0","plugins":[{"type":"bridge","bridge":"br-x","ipam":{"type":"host-local"}},{"type":"tuning"}]}`, nil))
	types, err := PluginTypes([]*scenario.Scenario{s, loadScenario(t, macvtapScenario)})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"bridge", "host-local", "macvlan", "macvtap", "tuning"}; !slices.Equal(types, want) {
		t.Errorf("PluginTypes = %v, want %v", types, want)
	}

	install, skipped := PluginsToInstall(types)
	if want := []string{"bridge", "macvlan", "tuning"}; !slices.Equal(install, want) {
		t.Errorf("install = %v, want %v", install, want)
	}
	if !strings.Contains(skipped["host-local"], "kind node image") || !strings.Contains(skipped["macvtap"], "macvtap-cni") {
		t.Errorf("skipped = %v, want host-local left to the node image and macvtap to macvtap-cni", skipped)
	}
}

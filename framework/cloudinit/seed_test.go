package cloudinit

import (
	"context"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	k8scorev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	v1 "kubevirt.io/api/core/v1"
)

func noCloudVMI(name string, source *v1.CloudInitNoCloudSource) *v1.VirtualMachineInstance {
	return &v1.VirtualMachineInstance{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: v1.VirtualMachineInstanceSpec{
			Domain: v1.DomainSpec{Firmware: &v1.Firmware{UUID: "5d307ca9-b3ef-428c-8861-06e72d69f223"}},
			Volumes: []v1.Volume{
				{Name: "containerdisk", VolumeSource: v1.VolumeSource{ContainerDisk: &v1.ContainerDiskSource{Image: "debian"}}},
				{Name: "cloudinitdisk", VolumeSource: v1.VolumeSource{CloudInitNoCloud: source}},
			},
		},
	}
}

// isoFiles extracts every file of an ISO with xorriso and returns the volume
// ID and the files by name.
func isoFiles(t *testing.T, iso string) (string, map[string][]byte) {
	t.Helper()
	out, err := exec.Command("xorriso", "-indev", iso, "-pvd_info").CombinedOutput()
	if err != nil {
		t.Fatalf("xorriso -pvd_info: %v: %s", err, out)
	}
	volumeID := ""
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "Volume Id    :"); ok {
			volumeID = strings.TrimSpace(v)
		}
	}

	dir := t.TempDir()
	if out, err := exec.Command("xorriso", "-osirrox", "on", "-indev", iso, "-extract", "/", dir).CombinedOutput(); err != nil {
		t.Fatalf("xorriso -extract: %v: %s", err, out)
	}
	files := map[string][]byte{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = data
	}
	return volumeID, files
}

func requireXorriso(t *testing.T) {
	t.Helper()
	for _, bin := range []string{"xorriso", "xorrisofs"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not found: install it with `apt-get install xorriso`", bin)
		}
	}
}

func TestWriteSeedISO(t *testing.T) {
	requireXorriso(t)
	userData := "#cloud-config\npassword: fedora\nchpasswd: { expire: False }\n"
	networkData := "version: 2\nethernets:\n  enp2s0:\n    addresses: [192.0.2.10/24]\n"
	vmi := noCloudVMI("vm1.example", &v1.CloudInitNoCloudSource{UserData: userData, NetworkData: networkData})

	iso, err := WriteSeed(context.Background(), t.TempDir(), vmi)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(iso) != SeedFileName {
		t.Errorf("seed file %s, want %s", filepath.Base(iso), SeedFileName)
	}

	label, files := isoFiles(t, iso)
	if label != "cidata" {
		t.Errorf("volume ID %q, want cidata", label)
	}
	if len(files) != 3 {
		t.Errorf("ISO contains %d files (%v), want user-data, meta-data and network-config", len(files), keysOf(files))
	}
	if got := string(files["user-data"]); got != userData {
		t.Errorf("user-data %q, want %q", got, userData)
	}
	if got := string(files["network-config"]); got != networkData {
		t.Errorf("network-config %q, want %q", got, networkData)
	}
	wantMeta := `{"instance-id":"5d307ca9-b3ef-428c-8861-06e72d69f223","local-hostname":"vm1"}`
	if got := string(files["meta-data"]); got != wantMeta {
		t.Errorf("meta-data %s, want %s", got, wantMeta)
	}
}

func TestWriteSeedWithoutNetworkData(t *testing.T) {
	requireXorriso(t)
	vmi := noCloudVMI("vm2", &v1.CloudInitNoCloudSource{UserDataBase64: base64.StdEncoding.EncodeToString([]byte("#!/bin/sh\ntrue\n"))})
	iso, err := WriteSeed(context.Background(), t.TempDir(), vmi)
	if err != nil {
		t.Fatal(err)
	}
	_, files := isoFiles(t, iso)
	if _, ok := files["network-config"]; ok {
		t.Errorf("ISO has a network-config file although the VMI sets no networkData")
	}
	if got := string(files["user-data"]); got != "#!/bin/sh\ntrue\n" {
		t.Errorf("user-data from userDataBase64 %q, want the decoded script", got)
	}
}

func TestWriteSeedJoinsHarness(t *testing.T) {
	requireXorriso(t)
	userData := "#cloud-config\nruncmd: [true]\n"
	vmi := noCloudVMI("vm3", &v1.CloudInitNoCloudSource{UserData: userData, NetworkData: "version: 2\n"})
	iso, err := WriteSeed(context.Background(), t.TempDir(), vmi, WithHarnessScript([]byte(harness)))
	if err != nil {
		t.Fatal(err)
	}
	_, files := isoFiles(t, iso)
	got := string(files["user-data"])
	if !strings.Contains(got, userData) || !strings.Contains(got, harness) {
		t.Errorf("user-data does not carry both the user's cloud-config and the harness:\n%s", got)
	}
	if string(files["network-config"]) != "version: 2\n" {
		t.Errorf("network-config changed by the harness: %q", files["network-config"])
	}
}

func TestSeedNetworkDataOnly(t *testing.T) {
	seed, err := SeedFromVMI(noCloudVMI("vm4", &v1.CloudInitNoCloudSource{NetworkData: "version: 2\n"}))
	if err != nil {
		t.Fatal(err)
	}
	if len(seed.UserData) != 0 {
		t.Errorf("user-data %q, want empty as KubeVirt writes it", seed.UserData)
	}
}

func TestSeedRejects(t *testing.T) {
	cases := map[string]*v1.VirtualMachineInstance{
		"secret ref": noCloudVMI("vm", &v1.CloudInitNoCloudSource{
			UserDataSecretRef: &k8scorev1.LocalObjectReference{Name: "userdata"},
		}),
		"no data":    noCloudVMI("vm", &v1.CloudInitNoCloudSource{}),
		"bad base64": noCloudVMI("vm", &v1.CloudInitNoCloudSource{UserDataBase64: "not base64!"}),
		"no volume":  {ObjectMeta: metav1.ObjectMeta{Name: "vm"}},
	}
	for name, vmi := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := SeedFromVMI(vmi); err == nil {
				t.Errorf("accepted")
			}
		})
	}
}

func TestHostname(t *testing.T) {
	long := strings.Repeat("a", 70)
	cases := []struct {
		name, hostname, want string
	}{
		{"vm1", "", "vm1"},
		{"vm1.example.com", "", "vm1"},
		{long, "", long[:63]},
		{"vm1", "custom", "custom"},
	}
	for _, c := range cases {
		vmi := &v1.VirtualMachineInstance{ObjectMeta: metav1.ObjectMeta{Name: c.name}, Spec: v1.VirtualMachineInstanceSpec{Hostname: c.hostname}}
		if got := Hostname(vmi); got != c.want {
			t.Errorf("Hostname(name %q, hostname %q) = %q, want %q", c.name, c.hostname, got, c.want)
		}
	}
}

func TestInstanceIDWithoutFirmware(t *testing.T) {
	vmi := &v1.VirtualMachineInstance{ObjectMeta: metav1.ObjectMeta{Name: "vm"}}
	first, second := InstanceID(vmi), InstanceID(vmi)
	if len(first) != 36 || first == second {
		t.Errorf("InstanceID without firmware = %q then %q, want a new random UUID each time", first, second)
	}
}

func keysOf(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

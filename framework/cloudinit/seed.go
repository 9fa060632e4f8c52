// Package cloudinit writes the NoCloud seed that KubeVirt attaches to a VMI as
// its cloudinitdisk, joins a harness script to the user's user-data without
// changing what cloud-init does with the user's parts, and parses networkData
// the way cloud-init reads it.
//
// Source: kubevirt/kubevirt v1.9.0, pkg/cloud-init/cloud-init.go
// (ReadCloudInitVolumeDataSource, readCloudInitData, GenerateLocalData,
// defaultIsoFunc) and pkg/util/net/dns/sanitize.go (SanitizeHostname).
package cloudinit

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"
	"k8s.io/apimachinery/pkg/util/validation"
	v1 "kubevirt.io/api/core/v1"
)

// SeedFileName is the name virt-launcher gives the NoCloud ISO
// (pkg/cloud-init/cloud-init.go, noCloudFile).
const SeedFileName = "noCloud.iso"

// VolumeLabel is the ISO9660 volume ID that cloud-init's NoCloud datasource
// looks for (KubeVirt passes "cidata" to xorrisofs -volid).
const VolumeLabel = "cidata"

// isoTimeout is how long virt-launcher lets xorrisofs run before it kills it
// (defaultIsoFunc: time.After(10 * time.Second)).
const isoTimeout = 10 * time.Second

// Seed is the content of the three files of a NoCloud seed, as they will be
// written into the ISO.
type Seed struct {
	UserData []byte
	MetaData []byte
	// NetworkConfig is nil when the VMI sets no networkData; KubeVirt then
	// writes no network-config file at all.
	NetworkConfig []byte
	// VolumeName is the VMI volume that holds the CloudInitNoCloud source.
	VolumeName string
}

// NoCloudMetadata is the JSON document KubeVirt writes as meta-data; the field
// order and omitempty tags decide the bytes of the file.
// Source: kubevirt/kubevirt v1.9.0, pkg/cloud-init/cloud-init.go (NoCloudMetadata).
type NoCloudMetadata struct {
	InstanceType  string            `json:"instance-type,omitempty"`
	InstanceID    string            `json:"instance-id"`
	LocalHostname string            `json:"local-hostname,omitempty"`
	PublicSSHKeys map[string]string `json:"public-keys,omitempty"`
}

type seedOptions struct {
	harnessScript []byte
	xorrisofs     string
}

// SeedOption changes how a seed is built.
type SeedOption func(*seedOptions)

// WithHarnessScript joins script (a "#!" shell script) to the VMI's user-data
// with JoinUserData. Without this option the user-data is written byte for
// byte as KubeVirt writes it.
func WithHarnessScript(script []byte) SeedOption {
	return func(o *seedOptions) { o.harnessScript = script }
}

// WithXorrisofs sets the xorrisofs binary; the default is "xorrisofs" from
// PATH, the binary virt-launcher runs.
func WithXorrisofs(path string) SeedOption {
	return func(o *seedOptions) { o.xorrisofs = path }
}

// SeedFromVMI returns the files KubeVirt would put into the VMI's NoCloud
// seed. It reads the first volume with a cloudInitNoCloud source, as
// ReadCloudInitVolumeDataSource does.
//
// Secret references (userDataSecretRef, networkDataSecretRef) and SSH keys
// from accessCredentials need the Kubernetes API, which the local provider
// does not have, so they are rejected.
func SeedFromVMI(vmi *v1.VirtualMachineInstance, opts ...SeedOption) (*Seed, error) {
	o := seedOptions{xorrisofs: "xorrisofs"}
	for _, opt := range opts {
		opt(&o)
	}
	if vmi == nil {
		return nil, errors.New("cloudinit: VMI is nil")
	}

	volume, err := noCloudVolume(vmi)
	if err != nil {
		return nil, err
	}
	source := volume.CloudInitNoCloud
	if source.UserDataSecretRef != nil || source.NetworkDataSecretRef != nil {
		return nil, fmt.Errorf("cloudinit: volume %q of VMI %q uses a secret reference, which the local provider cannot resolve: put the data inline in userData/networkData (or the Base64 fields)", volume.Name, vmi.Name)
	}
	for _, cred := range vmi.Spec.AccessCredentials {
		if cred.SSHPublicKey != nil && cred.SSHPublicKey.PropagationMethod.NoCloud != nil {
			return nil, fmt.Errorf("cloudinit: VMI %q propagates SSH keys through NoCloud from a secret, which the local provider cannot read: remove spec.accessCredentials or use the kind provider", vmi.Name)
		}
	}

	userData, networkData, err := readNoCloudData(source)
	if err != nil {
		return nil, fmt.Errorf("cloudinit: volume %q of VMI %q: %w", volume.Name, vmi.Name, err)
	}

	metaData, err := json.Marshal(NoCloudMetadata{
		InstanceType:  instanceType(vmi),
		InstanceID:    InstanceID(vmi),
		LocalHostname: Hostname(vmi),
	})
	if err != nil {
		return nil, fmt.Errorf("cloudinit: encode meta-data of VMI %q: %w", vmi.Name, err)
	}

	if o.harnessScript != nil {
		userData, err = JoinUserData(userData, o.harnessScript)
		if err != nil {
			return nil, fmt.Errorf("cloudinit: VMI %q: %w", vmi.Name, err)
		}
	}

	seed := &Seed{UserData: userData, MetaData: metaData, VolumeName: volume.Name}
	if len(networkData) > 0 {
		seed.NetworkConfig = networkData
	}
	return seed, nil
}

// WriteSeed writes the VMI's NoCloud seed as dir/noCloud.iso and returns its
// path. Like virt-launcher it stages the files and the ISO, runs xorrisofs
// with KubeVirt's flags and a 10 s limit, then renames the ISO into place.
func WriteSeed(ctx context.Context, dir string, vmi *v1.VirtualMachineInstance, opts ...SeedOption) (string, error) {
	o := seedOptions{xorrisofs: "xorrisofs"}
	for _, opt := range opts {
		opt(&o)
	}
	seed, err := SeedFromVMI(vmi, opts...)
	if err != nil {
		return "", err
	}

	iso := filepath.Join(dir, SeedFileName)
	if err := seed.WriteISO(ctx, iso, o.xorrisofs); err != nil {
		return "", err
	}
	return iso, nil
}

// WriteISO writes the seed as an ISO9660 image at path.
func (s *Seed) WriteISO(ctx context.Context, path, xorrisofs string) error {
	if xorrisofs == "" {
		xorrisofs = "xorrisofs"
	}
	dataDir, err := os.MkdirTemp(filepath.Dir(path), ".cidata-")
	if err != nil {
		return fmt.Errorf("cloudinit: create staging directory beside %s: %w", path, err)
	}
	defer os.RemoveAll(dataDir)

	// virt-launcher writes the files with mode 0600; Rock Ridge records the
	// mode, so it is part of the ISO's bytes.
	files := []struct {
		name string
		data []byte
	}{
		{"user-data", s.UserData},
		{"meta-data", s.MetaData},
	}
	if len(s.NetworkConfig) > 0 {
		files = append(files, struct {
			name string
			data []byte
		}{"network-config", s.NetworkConfig})
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dataDir, f.name), f.data, 0o600); err != nil {
			return fmt.Errorf("cloudinit: write %s: %w", f.name, err)
		}
	}

	staging := path + ".staging"
	_ = os.Remove(staging)
	if err := runXorrisofs(ctx, xorrisofs, staging, VolumeLabel, dataDir); err != nil {
		_ = os.Remove(staging)
		return err
	}
	if err := os.Rename(staging, path); err != nil {
		_ = os.Remove(staging)
		return fmt.Errorf("cloudinit: rename %s to %s: %w", staging, path, err)
	}
	return nil
}

// runXorrisofs runs xorrisofs with the arguments of virt-launcher's
// defaultIsoFunc: -output, -volid, -joliet, -rock, -partition_cyl_align on.
func runXorrisofs(ctx context.Context, binary, output, volumeID, inDir string) error {
	ctx, cancel := context.WithTimeout(ctx, isoTimeout)
	defer cancel()

	args := []string{
		"-output", output,
		"-volid", volumeID,
		"-joliet",
		"-rock",
		"-partition_cyl_align", "on",
		inDir,
	}
	cmd := exec.CommandContext(ctx, binary, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return fmt.Errorf("cloudinit: %s not found: install it with `apt-get install xorriso`", binary)
		}
		if ctx.Err() == context.DeadlineExceeded {
			return fmt.Errorf("cloudinit: %s timed out after %s writing %s: %s", binary, isoTimeout, output, tail(stderr.String(), 2000))
		}
		return fmt.Errorf("cloudinit: %s %s failed: %w: %s", binary, strings.Join(args, " "), err, tail(stderr.String(), 2000))
	}
	return nil
}

// InstanceID returns the meta-data instance-id KubeVirt derives from the VMI:
// spec.domain.firmware.uuid. For a VMI without a firmware section
// virt-launcher takes a new random UUID (cloudInitUUIDFromVMI), and so does
// this function. With a firmware section but no UUID it returns "".
//
// NOTE: a VMI created from a VM normally carries a firmware UUID, because
// virt-api's VM mutator sets a random one and virt-controller falls back to
// a SHA-1 UUID of the VM name (pkg/virt-controller/watch/vm/firmware.go,
// CalculateLegacyUUID). Callers that model a VM set it on the VMI first.
func InstanceID(vmi *v1.VirtualMachineInstance) string {
	if vmi.Spec.Domain.Firmware == nil {
		return uuid.NewString()
	}
	return string(vmi.Spec.Domain.Firmware.UUID)
}

// Hostname returns the meta-data local-hostname: the VMI name up to its first
// dot, cut to 63 characters, unless spec.hostname is set, which wins.
func Hostname(vmi *v1.VirtualMachineInstance) string {
	hostname := strings.Split(vmi.Name, ".")[0]
	if len(hostname) > validation.DNS1123LabelMaxLength {
		hostname = hostname[:validation.DNS1123LabelMaxLength]
	}
	if vmi.Spec.Hostname != "" {
		hostname = vmi.Spec.Hostname
	}
	return hostname
}

// instanceType returns the instance-type meta-data field: the cluster
// instancetype annotation, else the namespaced one.
func instanceType(vmi *v1.VirtualMachineInstance) string {
	if t := vmi.Annotations[v1.ClusterInstancetypeAnnotation]; t != "" {
		return t
	}
	return vmi.Annotations[v1.InstancetypeAnnotation]
}

// noCloudVolume returns the first volume with a cloud-init source, like
// ReadCloudInitVolumeDataSource. A config drive found first is rejected
// because KubeVirt would then build a config drive, not a NoCloud seed.
func noCloudVolume(vmi *v1.VirtualMachineInstance) (*v1.Volume, error) {
	for i := range vmi.Spec.Volumes {
		volume := &vmi.Spec.Volumes[i]
		if volume.CloudInitNoCloud != nil {
			return volume, nil
		}
		if volume.CloudInitConfigDrive != nil {
			return nil, fmt.Errorf("cloudinit: volume %q of VMI %q is a cloudInitConfigDrive, which the local provider does not build: use cloudInitNoCloud", volume.Name, vmi.Name)
		}
	}
	return nil, fmt.Errorf("cloudinit: VMI %q has no cloudInitNoCloud volume: add one with userData or networkData", vmi.Name)
}

// readNoCloudData picks each of user and network data from the raw field when
// it is set, else from the Base64 field, as readRawOrBase64Data does.
func readNoCloudData(source *v1.CloudInitNoCloudSource) (userData, networkData []byte, err error) {
	userData, err = rawOrBase64(source.UserData, source.UserDataBase64)
	if err != nil {
		return nil, nil, fmt.Errorf("invalid userDataBase64: %w", err)
	}
	networkData, err = rawOrBase64(source.NetworkData, source.NetworkDataBase64)
	if err != nil {
		return nil, nil, fmt.Errorf("invalid networkDataBase64: %w", err)
	}
	if len(userData) == 0 && len(networkData) == 0 {
		return nil, nil, errors.New("userDataBase64, userData, networkDataBase64 or networkData is required for a cloud-init data source")
	}
	return userData, networkData, nil
}

func rawOrBase64(raw, encoded string) ([]byte, error) {
	if raw != "" {
		return []byte(raw), nil
	}
	if encoded != "" {
		return base64.StdEncoding.DecodeString(encoded)
	}
	return nil, nil
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

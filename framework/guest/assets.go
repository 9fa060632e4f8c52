package guest

import (
	"bytes"
	_ "embed"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// evidenceScript collects and prints the guest's evidence. The image carries
// it for the early evidence. The user-data harness part carries a copy for
// the final evidence, so guests built elsewhere print the same.
//
//go:embed assets/evidence.sh
var evidenceScript string

//go:embed assets/vmnet-e2e-early-evidence.service
var earlyEvidenceUnit string

const (
	evidencePath      = "/usr/local/lib/vmnet-e2e/evidence"
	earlyUnitName     = "vmnet-e2e-early-evidence.service"
	cloudInitCfgPath  = "/etc/cloud/cloud.cfg.d/90-vmnet-e2e.cfg"
	nonceKernelArg    = "vmnet_e2e.nonce"
	finalUnitName     = "vmnet-e2e-final-evidence"
	finalScriptHeader = "#!/bin/sh\n"
)

// buildVersion changes whenever the build steps change in a way the recipe
// and the image files do not show, so that cached images are rebuilt.
const buildVersion = 1

// imageFiles returns the files the harness writes into the root filesystem,
// by absolute path.
func (r Recipe) imageFiles() map[string]string {
	return map[string]string{
		// The kernel mounts the root from root=/dev/vda; the entry lets
		// systemd-remount-fs apply the options. Pass 0: no fsck on a
		// throwaway overlay.
		"/etc/fstab":    "/dev/vda / ext4 rw,errors=remount-ro 0 0\n",
		"/etc/hostname": "localhost\n",
		// A system locale, as an installed Debian has. Without it cloud-init's
		// locale module regenerates en_US.UTF-8, which Debian's locale-gen
		// ignores, and update-locale then fails, recording an error on every
		// boot (cloudinit/distros/debian.py, apply_locale). C.UTF-8 is
		// built into glibc 2.36.
		"/etc/default/locale":                  "LANG=C.UTF-8\n",
		"/etc/resolv.conf":                     "",
		cloudInitCfgPath:                       r.cloudInitConfig(),
		evidencePath:                           evidenceScript,
		"/etc/systemd/system/" + earlyUnitName: earlyEvidenceUnit,
	}
}

// cloudInitConfig pins the datasource and the renderer. Debian's cloud.cfg
// sets no renderers, so cloud-init 22.4.2 would take the first available
// from its default order (eni, sysconfig, netplan, ...; cloudinit/net/renderers.py),
// and eni wins whenever ifupdown is installed.
func (r Recipe) cloudInitConfig() string {
	renderer := r.Renderer.cloudInitRenderer()
	return fmt.Sprintf(`# Written by the vmnet-e2e image builder.
# Only the NoCloud seed (ISO labelled cidata) is a datasource here.
datasource_list: [NoCloud, None]
system_info:
  network:
    renderers: [%s]
    activators: [%s]
`, renderer, renderer)
}

// customizeScript returns the mmdebstrap customize hook that writes the image
// files and enables the units; $1 is the root filesystem.
func (r Recipe) customizeScript() string {
	var b strings.Builder
	b.WriteString("set -eu\nroot=\"$1\"\n")
	files := r.imageFiles()
	for _, path := range sortedKeys(files) {
		mode := "0644"
		if path == evidencePath {
			mode = "0755"
		}
		fmt.Fprintf(&b, "mkdir -p \"$root%s\"\n", dirOf(path))
		fmt.Fprintf(&b, "cat >\"$root%s\" <<'VMNET_E2E_FILE_END'\n%sVMNET_E2E_FILE_END\n", path, ensureNewline(files[path]))
		fmt.Fprintf(&b, "chmod %s \"$root%s\"\n", mode, path)
	}
	// The heredoc always ends the file with a newline; resolv.conf is meant
	// to be empty.
	b.WriteString(": >\"$root/etc/resolv.conf\"\n")

	b.WriteString("chroot \"$root\" systemctl enable " + earlyUnitName + "\n")
	switch r.Renderer {
	case RendererNetplan, RendererNetworkd:
		// Debian ships systemd-networkd disabled; enabling it also enables
		// systemd-networkd-wait-online.service (Also= in its [Install]).
		b.WriteString("chroot \"$root\" systemctl enable systemd-networkd.service\n")
	}
	return b.String()
}

// FinalEvidenceScript returns the harness part for user-data (see
// cloudinit.JoinUserData). cloud-init runs it in its final stage; it starts a
// transient unit and returns at once, so cloud-init is never held up. The unit
// waits for cloud-init to finish and prints the final evidence with nonce.
//
// `cloud-init status --wait` alone is not enough. In 22.4.2 it stops waiting
// as soon as any stage has recorded an error, because handle_status_args
// loops only while the status is "not run" or "running"
// (cloudinit/cmd/status.py). So the unit also waits for
// /run/cloud-init/result.json, which cloud-init writes after its last stage
// (cloudinit/cmd/main.py, status_wrapper).
func FinalEvidenceScript(nonce string) []byte {
	var b bytes.Buffer
	b.WriteString(finalScriptHeader)
	b.WriteString(`# vmnet-e2e harness part: prints the guest's final network evidence on the
# serial console once cloud-init has finished. It changes nothing in the
# guest's configuration.
dir=/run/vmnet-e2e
mkdir -p "$dir"
cat >"$dir/evidence" <<'VMNET_E2E_EVIDENCE_END'
`)
	b.WriteString(ensureNewline(evidenceScript))
	b.WriteString("VMNET_E2E_EVIDENCE_END\n")
	fmt.Fprintf(&b, `cat >"$dir/final" <<'VMNET_E2E_FINAL_END'
cloud-init status --wait >/dev/null 2>&1
i=0
while [ ! -e /run/cloud-init/result.json ] && [ "$i" -lt 3600 ]; do
	sleep 1
	i=$((i + 1))
done
exec /bin/sh /run/vmnet-e2e/evidence final %s
VMNET_E2E_FINAL_END
if [ -d /run/systemd/system ] && command -v systemd-run >/dev/null 2>&1 &&
	systemd-run --unit=%s --collect --no-block --quiet /bin/sh "$dir/final"; then
	exit 0
fi
setsid /bin/sh "$dir/final" </dev/null >/dev/null 2>&1 &
exit 0
`, nonce, finalUnitName)
	return b.Bytes()
}

var nonceRE = regexp.MustCompile(`^[0-9a-f]{16}$`)

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func dirOf(path string) string {
	i := strings.LastIndexByte(path, '/')
	if i <= 0 {
		return "/"
	}
	return path[:i]
}

func ensureNewline(s string) string {
	if s == "" || strings.HasSuffix(s, "\n") {
		return s
	}
	return s + "\n"
}

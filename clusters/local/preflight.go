package local

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// requiredPlugins are the CNI plugin binaries the scenarios call.
var requiredPlugins = []string{"macvlan", "bridge", "static", "host-local"}

// Preflight checks that this machine can run the local provider: root, qemu,
// xorrisofs, the CNI plugins and /dev/net/tun. The error lists every missing
// piece and the command that installs it.
func Preflight(cniBinDir string) error {
	var problems []string
	missingPackage := false

	if os.Geteuid() != 0 {
		problems = append(problems, "not running as root: the local provider creates network namespaces, tap devices and qemu guests; run the command as root (for example with sudo)")
	}
	for _, tool := range []struct{ binary, pkg string }{
		{"qemu-system-x86_64", "qemu-system-x86"},
		{"qemu-img", "qemu-utils"},
		{"xorrisofs", "xorriso"},
	} {
		if _, err := exec.LookPath(tool.binary); err != nil {
			problems = append(problems, fmt.Sprintf("%s not found in PATH: install Debian package %s", tool.binary, tool.pkg))
			missingPackage = true
		}
	}
	for _, plugin := range requiredPlugins {
		path := filepath.Join(cniBinDir, plugin)
		if _, err := os.Stat(path); err != nil {
			problems = append(problems, fmt.Sprintf("CNI plugin %s not found: install Debian package containernetworking-plugins", path))
			missingPackage = true
		}
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		problems = append(problems, "/dev/net/tun is missing: load the tun module (modprobe tun)")
	}

	if len(problems) > 0 {
		message := "local provider preflight failed:\n  - " + strings.Join(problems, "\n  - ")
		if missingPackage {
			message += "\nscripts/install-deps.sh installs the Debian packages."
		}
		return errors.New(message)
	}
	return nil
}

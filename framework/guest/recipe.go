// Package guest builds a Debian 12 guest image from Debian's archive and boots
// it under qemu (TCG) with the PCI layout libvirt gives a KubeVirt domain. The
// guest prints evidence of what it did with its network configuration on its
// serial console, and the package parses it.
//
// Nothing is downloaded but Debian packages: the root filesystem is made by
// mmdebstrap, turned into an ext4 disk without loop mounts (mkfs.ext4 -d) and
// booted directly from the extracted kernel and initrd.
package guest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
)

// Renderer is the network renderer cloud-init is pinned to in the image.
// cloud-init 22.4.2 writes different files, and the guest brings links up
// with different tools, for each.
type Renderer string

const (
	// RendererNetplan passes v2 config to netplan, which generates
	// systemd-networkd files (what Debian 12 cloud images do).
	RendererNetplan Renderer = "netplan"
	// RendererNetworkd has cloud-init write systemd-networkd files itself.
	RendererNetworkd Renderer = "networkd"
	// RendererIfupdown has cloud-init write /etc/network/interfaces.d (eni)
	// for ifupdown.
	RendererIfupdown Renderer = "ifupdown"
)

// cloudInitRenderer returns the name cloud-init uses in
// system_info.network.renderers (cloudinit/net/renderers.py, NAME_TO_RENDERER).
func (r Renderer) cloudInitRenderer() string {
	if r == RendererIfupdown {
		return "eni"
	}
	return string(r)
}

// Hook is a shell script run by mmdebstrap as a customize hook, with the root
// filesystem's path as $1, after the packages are installed.
type Hook struct {
	Name   string `json:"name"`
	Script string `json:"script"`
}

// Recipe describes a guest image. Every field, the hook scripts and the
// evidence unit baked into the image are part of its hash: changing any of
// them builds a new image.
type Recipe struct {
	// Suite is the Debian release, for example "bookworm".
	Suite string `json:"suite"`
	// Mirrors are sources.list lines handed to mmdebstrap.
	Mirrors []string `json:"mirrors"`
	// Variant is mmdebstrap's --variant.
	Variant string `json:"variant"`
	// Packages are installed with --include, on top of the variant.
	Packages []string `json:"packages"`
	// Kernel is the kernel package; its vmlinuz and initrd are extracted for
	// direct kernel boot.
	Kernel string `json:"kernel"`
	// Renderer pins cloud-init's network renderer.
	Renderer Renderer `json:"renderer"`
	// DiskSizeMiB is the size of the ext4 root disk (sparse).
	DiskSizeMiB int `json:"diskSizeMiB"`
	// Hooks run after the harness's own customization.
	Hooks []Hook `json:"hooks,omitempty"`
}

// DefaultRecipe returns the Debian 12 image the local provider boots, with
// cloud-init pinned to renderer ("" means netplan).
//
// The package set is what cloud-init's network handling needs and nothing
// more: systemd with udev (so NICs get predictable names such as enp1s0),
// cloud-init 22.4.2 and its Python, iproute2 and ping for the evidence and
// for debugging, and the cloud kernel, whose initrd already carries the
// virtio drivers. The renderer decides the rest: netplan.io for netplan,
// ifupdown for eni, nothing extra for networkd.
func DefaultRecipe(renderer Renderer) Recipe {
	if renderer == "" {
		renderer = RendererNetplan
	}
	packages := []string{
		"systemd-sysv", "udev", "dbus", "kmod",
		"cloud-init", "iproute2", "iputils-ping", "procps",
		"initramfs-tools",
	}
	switch renderer {
	case RendererNetplan:
		packages = append(packages, "netplan.io")
	case RendererIfupdown:
		packages = append(packages, "ifupdown")
	}
	return Recipe{
		Suite: "bookworm",
		Mirrors: []string{
			"deb http://deb.debian.org/debian bookworm main",
			"deb http://deb.debian.org/debian bookworm-updates main",
			"deb http://deb.debian.org/debian-security bookworm-security main",
		},
		Variant:     "minbase",
		Packages:    packages,
		Kernel:      "linux-image-cloud-amd64",
		Renderer:    renderer,
		DiskSizeMiB: 2048,
	}
}

// Validate reports a recipe that cannot build.
func (r Recipe) Validate() error {
	switch {
	case r.Suite == "":
		return fmt.Errorf("guest: recipe has no suite: set Suite, for example %q", "bookworm")
	case len(r.Mirrors) == 0:
		return fmt.Errorf("guest: recipe for %s has no mirrors", r.Suite)
	case r.Kernel == "":
		return fmt.Errorf("guest: recipe for %s has no kernel package: set Kernel, for example %q", r.Suite, "linux-image-cloud-amd64")
	case r.DiskSizeMiB < 512:
		return fmt.Errorf("guest: recipe disk size %d MiB is too small for a Debian root filesystem: use at least 1024", r.DiskSizeMiB)
	}
	switch r.Renderer {
	case RendererNetplan, RendererNetworkd, RendererIfupdown:
	default:
		return fmt.Errorf("guest: unknown renderer %q: use %q, %q or %q", r.Renderer, RendererNetplan, RendererNetworkd, RendererIfupdown)
	}
	for _, h := range r.Hooks {
		if h.Name == "" {
			return fmt.Errorf("guest: recipe has a hook without a name")
		}
	}
	return nil
}

// Hash returns the cache key of the image: the SHA-256 of the recipe, the
// files the harness writes into the image (cloud-init pinning, evidence
// script and unit) and the build steps' version.
func (r Recipe) Hash() string {
	packages := slices.Clone(r.Packages)
	slices.Sort(packages)
	key := struct {
		Recipe       Recipe            `json:"recipe"`
		Packages     []string          `json:"sortedPackages"`
		Files        map[string]string `json:"files"`
		BuildVersion int               `json:"buildVersion"`
	}{r, packages, r.imageFiles(), buildVersion}
	data, _ := json.Marshal(key)
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])[:16]
}

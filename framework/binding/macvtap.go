package binding

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/vmnet-e2e/vmnet-e2e/framework/kvnames"
	"github.com/vmnet-e2e/vmnet-e2e/framework/link"
	"github.com/vmnet-e2e/vmnet-e2e/framework/netns"
)

// MacvtapSpec describes one interface bound with KubeVirt's network binding
// plugin "macvtap" (domainAttachmentType: tap) on a macvtap-cni NAD.
type MacvtapSpec struct {
	// NetworkName is spec.networks[].name; the pod interface is pod<hash>.
	NetworkName string
	// DeviceName is the name the macvtap device plugin gives the link in the
	// node namespace before the CNI moves it, "<resource>Mvp<i>"
	// (pkg/deviceplugin/plugin.go); the default is "<lower>Mvp0".
	DeviceName string
	// Lower is the parent link in the node namespace (the device plugin's
	// lowerDevice).
	Lower string
	// Mode is the macvtap mode; empty means "bridge", the device plugin's
	// default.
	Mode string
	// MACAddress is spec.domain.devices.interfaces[].macAddress, which
	// reaches macvtap-cni as CNI_ARGS MAC=; empty keeps the kernel's random
	// MAC.
	MACAddress string
	// MTU is the NAD's "mtu"; 0 keeps the link's.
	MTU int
	// Promisc is the NAD's "promiscMode".
	Promisc bool
	// Owner and Group own /dev/tap<ifindex>; nil means 107, macvtap-cni's
	// defaults (KubevirtQemuUID, KubevirtQemuGID).
	Owner, Group *int
}

// MacvtapResult is the pod side after the macvtap binding.
type MacvtapResult struct {
	PodInterface string
	// MAC is the macvtap link's MAC as macvtap-cni reports it.
	MAC net.HardwareAddr
	MTU int
	// GuestMAC is the domain interface's MAC: spec macAddress, else the
	// macvtap link's.
	GuestMAC net.HardwareAddr
	Device   link.MacvtapDevice
	Steps    []Step
	Duration time.Duration
}

// AttachMacvtap creates the macvtap link as the macvtap device plugin does on
// Allocate (deleted first if present, created on Lower in the node namespace
// with the lower link's txqueuelen, set UP) and then redoes macvtap-cni's
// CNI ADD: move it into the pod namespace, set MTU, MAC and promiscuous mode
// as requested, rename it to pod<hash>, set it UP and chown /dev/tap<ifindex>.
//
// Source: kubevirt/macvtap-cni v0.13.1, pkg/deviceplugin/plugin.go
// (Allocate), pkg/util/netlink.go (CreateMacvtap, RecreateMacvtap,
// ConfigureInterface), pkg/cni/plugin.go (CmdAdd).
//
// NOTE: Debian ships no macvtap-cni binary, so its ADD is redone here with
// netlink instead of exec'ing the plugin through libcni. KubeVirt then hands
// the link to libvirt as an ethernet interface whose target is pod<hash>
// itself (pkg/network/domainspec/generators.go getTargetName); qemu gets the
// device as a tap fd, see OpenMacvtap.
func AttachMacvtap(node, pod *netns.Namespace, spec MacvtapSpec, log *slog.Logger) (*MacvtapResult, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	start := time.Now()
	if spec.NetworkName == "" {
		return nil, errors.New("binding: empty network name: set spec.networks[].name")
	}
	mode, err := macvtapMode(spec.Mode)
	if err != nil {
		return nil, err
	}
	var mac net.HardwareAddr
	if spec.MACAddress != "" {
		if mac, err = link.ParseMAC(spec.MACAddress); err != nil {
			return nil, fmt.Errorf("binding: spec.domain.devices.interfaces[].macAddress: %w", err)
		}
	}
	device := spec.DeviceName
	if device == "" {
		device = spec.Lower + "Mvp0"
	}
	if err := link.ValidateName(device); err != nil {
		return nil, fmt.Errorf("binding: macvtap device name (set MacvtapSpec.DeviceName): %w", err)
	}
	owner, group := NonRootUID, NonRootUID
	if spec.Owner != nil {
		owner = *spec.Owner
	}
	if spec.Group != nil {
		group = *spec.Group
	}

	nh, err := link.NewHandle(node)
	if err != nil {
		return nil, err
	}
	defer nh.Close()
	ph, err := link.NewHandle(pod)
	if err != nil {
		return nil, err
	}
	defer ph.Close()

	res := &MacvtapResult{PodInterface: kvnames.PodInterface(spec.NetworkName)}
	step := func(name string, fn func() error) error {
		t := time.Now()
		err := fn()
		res.Steps = append(res.Steps, Step{Name: name, Duration: time.Since(t)})
		if err != nil {
			return fmt.Errorf("binding: macvtap binding of network %q: %s: %w", spec.NetworkName, name, err)
		}
		return nil
	}

	// Device plugin Allocate: RecreateMacvtap in the node namespace.
	if err := step("create macvtap "+device+" on "+spec.Lower+" in netns "+node.Name, func() error {
		if err := link.Delete(nh, device); err != nil {
			return err
		}
		_, err := link.AddMacvtap(nh, device, spec.Lower, mode)
		return err
	}); err != nil {
		return nil, err
	}

	// CNI ADD: ConfigureInterface. On failure macvtap-cni deletes the link
	// under both names in the pod namespace, and CmdAdd deletes the device
	// name in the node namespace.
	err = step("move "+device+" into netns "+pod.Name+" as "+res.PodInterface, func() error {
		if err := link.MoveToNamespace(nh, device, pod); err != nil {
			return err
		}
		if spec.MTU != 0 {
			if err := link.SetMTU(ph, device, spec.MTU); err != nil {
				return err
			}
		}
		if mac != nil {
			if err := link.SetMAC(ph, device, mac); err != nil {
				return err
			}
		}
		if spec.Promisc {
			l, err := link.ByName(ph, device)
			if err != nil {
				return err
			}
			if err := ph.SetPromiscOn(l); err != nil {
				return fmt.Errorf("failed to enable promiscuous mode on %q: %w", device, err)
			}
		}
		if err := link.Rename(ph, device, res.PodInterface); err != nil {
			return err
		}
		return link.SetUp(ph, res.PodInterface)
	})
	if err != nil {
		_ = link.Delete(ph, device)
		_ = link.Delete(ph, res.PodInterface)
		_ = link.Delete(nh, device)
		return nil, err
	}

	if err := step("chown /dev/tap<ifindex>", func() error {
		dev, err := link.MacvtapDeviceOf(ph, res.PodInterface)
		if err != nil {
			return err
		}
		res.Device = dev
		if dev.Path == "" {
			// devtmpfs holds another device under /dev/tap<ifindex> (an
			// ifindex reused in another namespace); macvtap-cni would chown
			// that one. Leave it alone.
			log.Warn("no /dev node for macvtap device: skipping chown", "link", res.PodInterface, "ifindex", dev.Index, "major", dev.Major, "minor", dev.Minor)
			return nil
		}
		return os.Chown(dev.Path, owner, group)
	}); err != nil {
		return nil, err
	}

	l, err := link.ByName(ph, res.PodInterface)
	if err != nil {
		return nil, err
	}
	res.MAC = l.Attrs().HardwareAddr
	res.MTU = l.Attrs().MTU
	res.GuestMAC = mac
	if res.GuestMAC == nil {
		res.GuestMAC = res.MAC
	}
	res.Duration = time.Since(start)
	log.Info("macvtap binding applied", "netns", pod.Name, "network", spec.NetworkName, "link", res.PodInterface,
		"mac", res.MAC.String(), "lower", spec.Lower, "mode", spec.Mode, "duration", res.Duration)
	return res, nil
}

// DetachMacvtap redoes macvtap-cni's CNI DEL: delete pod<hash> in the pod
// namespace; a link that is already gone is not an error.
func DetachMacvtap(pod *netns.Namespace, networkName string) error {
	h, err := link.NewHandle(pod)
	if err != nil {
		return err
	}
	defer h.Close()
	return link.Delete(h, kvnames.PodInterface(networkName))
}

// OpenMacvtap opens the macvtap link pod<hash> for qemu's `-netdev tap,fd=N`.
func OpenMacvtap(pod *netns.Namespace, networkName string) (*os.File, link.MacvtapDevice, error) {
	h, err := link.NewHandle(pod)
	if err != nil {
		return nil, link.MacvtapDevice{}, err
	}
	defer h.Close()
	return link.OpenMacvtap(h, kvnames.PodInterface(networkName))
}

// macvtapMode maps macvtap-cni's mode names (pkg/util/netlink.go
// ModeFromString): "", "bridge", "private", "vepa".
func macvtapMode(s string) (netlink.MacvlanMode, error) {
	switch s {
	case "", "bridge":
		return netlink.MACVLAN_MODE_BRIDGE, nil
	case "private":
		return netlink.MACVLAN_MODE_PRIVATE, nil
	case "vepa":
		return netlink.MACVLAN_MODE_VEPA, nil
	}
	return 0, fmt.Errorf("binding: unknown macvtap mode: %q (use bridge, private or vepa)", s)
}

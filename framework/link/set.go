package link

import (
	"fmt"
	"net"

	"github.com/vmnet-e2e/vmnet-e2e/framework/netns"
)

// SetUp sets the link administratively UP, like `ip link set NAME up`.
func SetUp(h *Handle, name string) error {
	l, err := ByName(h, name)
	if err != nil {
		return err
	}
	if err := h.LinkSetUp(l); err != nil {
		return h.wrap("set up", name, err)
	}
	return nil
}

// SetDown sets the link administratively DOWN, like `ip link set NAME down`.
func SetDown(h *Handle, name string) error {
	l, err := ByName(h, name)
	if err != nil {
		return err
	}
	if err := h.LinkSetDown(l); err != nil {
		return h.wrap("set down", name, err)
	}
	return nil
}

// Rename renames a link, like `ip link set OLD name NEW`. The kernel refuses
// to rename a link that is UP (EBUSY).
func Rename(h *Handle, name, newName string) error {
	if err := ValidateName(newName); err != nil {
		return err
	}
	l, err := ByName(h, name)
	if err != nil {
		return err
	}
	if err := h.LinkSetName(l, newName); err != nil {
		return h.wrap("rename to "+newName, name, err)
	}
	return nil
}

// SetMAC sets the link's MAC, like `ip link set NAME address MAC`.
func SetMAC(h *Handle, name string, mac net.HardwareAddr) error {
	l, err := ByName(h, name)
	if err != nil {
		return err
	}
	if err := h.LinkSetHardwareAddr(l, mac); err != nil {
		return h.wrap("set address "+mac.String()+" on", name, err)
	}
	return nil
}

// SetMTU sets the link's MTU, like `ip link set NAME mtu MTU`.
func SetMTU(h *Handle, name string, mtu int) error {
	l, err := ByName(h, name)
	if err != nil {
		return err
	}
	if err := h.LinkSetMTU(l, mtu); err != nil {
		return h.wrap(fmt.Sprintf("set mtu %d on", mtu), name, err)
	}
	return nil
}

// SetMaster enslaves a link to a bridge, like `ip link set NAME master BRIDGE`.
func SetMaster(h *Handle, name, bridge string) error {
	l, err := ByName(h, name)
	if err != nil {
		return err
	}
	br, err := ByName(h, bridge)
	if err != nil {
		return err
	}
	if err := h.LinkSetMasterByIndex(l, br.Attrs().Index); err != nil {
		return h.wrap("set master "+bridge+" on", name, err)
	}
	return nil
}

// SetLearning switches MAC learning of a bridge port on or off, like
// `bridge link set dev NAME learning on|off`.
func SetLearning(h *Handle, port string, on bool) error {
	l, err := ByName(h, port)
	if err != nil {
		return err
	}
	if err := h.LinkSetLearning(l, on); err != nil {
		return h.wrap(fmt.Sprintf("set learning %v on bridge port", on), port, err)
	}
	return nil
}

// EnslaveWithoutLearning enslaves a link to a bridge and switches learning off
// on the new port, like `ip link set NAME master BRIDGE` followed by
// `bridge link set dev NAME learning off`.
func EnslaveWithoutLearning(h *Handle, name, bridge string) error {
	if err := SetMaster(h, name, bridge); err != nil {
		return err
	}
	return SetLearning(h, name, false)
}

// MoveToNamespace moves a link into another namespace, like `ip link set NAME
// netns TARGET`. The kernel keeps the ifindex unless the target namespace
// already uses it, and the link arrives DOWN.
func MoveToNamespace(h *Handle, name string, target *netns.Namespace) error {
	l, err := ByName(h, name)
	if err != nil {
		return err
	}
	fd, err := target.Handle()
	if err != nil {
		return err
	}
	defer fd.Close()
	if err := h.LinkSetNsFd(l, int(fd)); err != nil {
		return h.wrap("move to netns "+target.Name, name, err)
	}
	return nil
}

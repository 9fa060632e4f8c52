// Package link wraps the netlink calls the harness needs to build and inspect
// the data plane of a virt-launcher pod, one function per kernel object or
// attribute. Each function names the `ip`/`bridge` command it is equivalent to,
// acts inside the namespace of the Handle it is given, and returns errors that
// name the link and the namespace.
//
// NOTE: tap creation, /proc/sys writes, raw statistics and tap opening act on
// the calling thread's namespace in the kernel, not on a netlink socket's, so
// those functions enter the namespace with (*netns.Namespace).Do.
package link

import (
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"

	"github.com/vmnet-e2e/vmnet-e2e/framework/netns"
)

// MaxNameLength is IFNAMSIZ-1, the longest link name the kernel accepts.
const MaxNameLength = 15

// Handle is a netlink handle whose requests act inside Namespace. The
// namespace is kept beside the handle so that errors and reports can name it
// and so that thread-bound operations can enter it.
type Handle struct {
	*netlink.Handle
	Namespace *netns.Namespace
}

// NewHandle opens a netlink handle inside ns. The caller closes it with Close.
func NewHandle(ns *netns.Namespace) (*Handle, error) {
	h, err := ns.Netlink()
	if err != nil {
		return nil, err
	}
	return &Handle{Handle: h, Namespace: ns}, nil
}

// Close releases the handle's netlink sockets.
func (h *Handle) Close() {
	if h != nil && h.Handle != nil {
		h.Handle.Close()
	}
}

// NamespaceName returns the name of the handle's namespace for messages.
func (h *Handle) NamespaceName() string {
	if h.Namespace == nil {
		return "?"
	}
	return h.Namespace.Name
}

// ValidateName rejects a link name the kernel would reject: empty, longer
// than IFNAMSIZ-1 (15) bytes, ".", "..", or holding '/', ':' or whitespace
// (net/core/dev.c dev_valid_name).
func ValidateName(name string) error {
	switch {
	case name == "":
		return errors.New("link: empty link name")
	case len(name) > MaxNameLength:
		return fmt.Errorf("link: link name %q is %d bytes, over the kernel limit of %d (IFNAMSIZ-1): use a shorter name", name, len(name), MaxNameLength)
	case name == "." || name == "..":
		return fmt.Errorf("link: invalid link name %q", name)
	}
	for _, c := range name {
		if c == '/' || c == ':' || c == ' ' || c == '\t' || c == '\n' || c == 0 {
			return fmt.Errorf("link: invalid link name %q: '/', ':', whitespace and NUL are not allowed", name)
		}
	}
	return nil
}

// ParseMAC parses a unicast Ethernet MAC address and rejects multicast ones,
// which the kernel refuses as a link address (EADDRNOTAVAIL).
func ParseMAC(s string) (net.HardwareAddr, error) {
	mac, err := net.ParseMAC(s)
	if err != nil {
		return nil, fmt.Errorf("link: invalid MAC address %q: %w (use six colon-separated hex octets, for example 02:00:00:00:00:01)", s, err)
	}
	if len(mac) != 6 {
		return nil, fmt.Errorf("link: MAC address %q has %d octets, want 6 (Ethernet)", s, len(mac))
	}
	if mac[0]&1 == 1 {
		return nil, fmt.Errorf("link: MAC address %q is a multicast address (lowest bit of the first octet set): use a unicast address such as 02:%s", s, mac.String()[3:])
	}
	return mac, nil
}

// ByName returns the link called name, like `ip link show NAME`.
func ByName(h *Handle, name string) (netlink.Link, error) {
	l, err := h.LinkByName(name)
	if err != nil {
		var notFound netlink.LinkNotFoundError
		if errors.As(err, &notFound) {
			return nil, &NotFoundError{Name: name, Namespace: h.NamespaceName()}
		}
		return nil, h.wrap("find", name, err)
	}
	return l, nil
}

// Exists reports whether a link called name exists in the handle's namespace.
func Exists(h *Handle, name string) (bool, error) {
	_, err := ByName(h, name)
	var notFound *NotFoundError
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &notFound):
		return false, nil
	}
	return false, err
}

// NotFoundError is returned when a link does not exist in a namespace.
type NotFoundError struct {
	Name      string
	Namespace string
}

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("link: %s not found in netns %s (check `ip -n %s link`)", e.Name, e.Namespace, e.Namespace)
}

// wrap adds the operation, link and namespace to a netlink error, whose own
// text is a bare errno such as "file exists".
func (h *Handle) wrap(op, name string, err error) error {
	return fmt.Errorf("link: %s %s in netns %s: %w", op, name, h.NamespaceName(), err)
}

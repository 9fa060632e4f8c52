// Package netns creates, enters and deletes named network namespaces, following
// the /run/netns convention of `ip netns`, so that `ip netns list` and
// `ip -n NAME ...` show what a run built.
//
// Every namespace this package creates is new and empty: nothing here moves,
// addresses or routes a link of the namespace the process started in.
package netns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	cnins "github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
)

// Dir is where `ip netns` keeps its bind mounts.
const Dir = "/run/netns"

// maxNameLength keeps names well inside NAME_MAX while leaving room to read
// them in `ip netns list`.
const maxNameLength = 64

// Namespace is a named network namespace bound under Dir.
type Namespace struct {
	Name string
	Path string
}

// Create makes a new named network namespace, like `ip netns add NAME`, and
// brings its loopback up. It fails if the name is taken, so that a run never
// adopts a namespace it did not create.
func Create(name string) (*Namespace, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}

	path := filepath.Join(Dir, name)
	if _, err := os.Stat(path); err == nil {
		return nil, fmt.Errorf("netns: namespace %q already exists at %s: choose another name or delete it with `ip netns del %s`", name, path, name)
	}

	// vishvananda/netns switches the calling thread into the new namespace, so
	// create it on a locked thread and switch back before unlocking.
	if err := onLockedThread(func() error {
		origin, err := vnetns.Get()
		if err != nil {
			return fmt.Errorf("netns: read current namespace: %w", err)
		}
		defer origin.Close()

		created, err := vnetns.NewNamed(name)
		if err != nil {
			return fmt.Errorf("netns: create %q: %w", name, err)
		}
		created.Close()

		if err := vnetns.Set(origin); err != nil {
			return fmt.Errorf("netns: return to the original namespace after creating %q: %w", name, err)
		}
		return nil
	}); err != nil {
		_ = vnetns.DeleteNamed(name)
		return nil, err
	}

	ns := &Namespace{Name: name, Path: path}
	if err := ns.setLoopbackUp(); err != nil {
		_ = ns.Delete()
		return nil, err
	}
	return ns, nil
}

// Open returns the named namespace if it exists.
func Open(name string) (*Namespace, error) {
	path := filepath.Join(Dir, name)
	if err := cnins.IsNSorErr(path); err != nil {
		return nil, fmt.Errorf("netns: %q is not a network namespace: %w", path, err)
	}
	return &Namespace{Name: name, Path: path}, nil
}

// ValidateName rejects names that `ip netns` would reject or that would
// escape Dir.
func ValidateName(name string) error {
	switch {
	case name == "":
		return errors.New("netns: empty namespace name")
	case len(name) > maxNameLength:
		return fmt.Errorf("netns: namespace name %q is %d bytes, over the limit of %d", name, len(name), maxNameLength)
	case strings.ContainsAny(name, "/\x00") || name == "." || name == "..":
		return fmt.Errorf("netns: invalid namespace name %q: use letters, digits, '-' and '_'", name)
	}
	return nil
}

// Do runs fn on an OS thread that has entered the namespace. Sockets and
// links that fn creates belong to the namespace, and so do child processes
// started from fn, because a forked child inherits the thread's namespace.
func (n *Namespace) Do(fn func() error) error {
	err := cnins.WithNetNSPath(n.Path, func(cnins.NetNS) error { return fn() })
	if err != nil {
		return fmt.Errorf("in netns %s: %w", n.Name, err)
	}
	return nil
}

// Netlink returns a netlink handle whose requests act inside the namespace
// without switching the calling thread. The caller closes it.
func (n *Namespace) Netlink() (*netlink.Handle, error) {
	h, err := vnetns.GetFromPath(n.Path)
	if err != nil {
		return nil, fmt.Errorf("netns: open %s: %w", n.Path, err)
	}
	defer h.Close()

	handle, err := netlink.NewHandleAt(h)
	if err != nil {
		return nil, fmt.Errorf("netns: netlink handle in %s: %w", n.Name, err)
	}
	return handle, nil
}

// Handle opens the namespace file; the caller closes the returned handle.
// Moving a link into the namespace (LinkSetNsFd) needs it.
func (n *Namespace) Handle() (vnetns.NsHandle, error) {
	h, err := vnetns.GetFromPath(n.Path)
	if err != nil {
		return vnetns.None(), fmt.Errorf("netns: open %s: %w", n.Path, err)
	}
	return h, nil
}

// Delete removes the namespace's bind mount, like `ip netns del NAME`. The
// kernel destroys the namespace, and every link in it, once nothing else holds
// it; veth peers in other namespaces disappear shortly after (asynchronously).
// Deleting a namespace that is already gone is not an error.
func (n *Namespace) Delete() error {
	if _, err := os.Stat(n.Path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := vnetns.DeleteNamed(n.Name); err != nil {
		return fmt.Errorf("netns: delete %q: %w", n.Name, err)
	}
	return nil
}

// Exists reports whether the namespace's bind mount is still present.
func (n *Namespace) Exists() bool {
	_, err := os.Stat(n.Path)
	return err == nil
}

func (n *Namespace) setLoopbackUp() error {
	h, err := n.Netlink()
	if err != nil {
		return err
	}
	defer h.Close()

	lo, err := h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("netns: find lo in %s: %w", n.Name, err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		return fmt.Errorf("netns: set lo up in %s: %w", n.Name, err)
	}
	return nil
}

// onLockedThread runs fn on a fresh goroutine locked to its OS thread. The
// goroutine exits without unlocking, so the Go runtime discards the thread
// instead of reusing one whose namespace fn may have left changed.
func onLockedThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		errc <- fn()
	}()
	return <-errc
}

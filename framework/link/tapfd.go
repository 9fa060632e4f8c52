package link

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vmnet-e2e/vmnet-e2e/framework/netns"
)

// OpenTap attaches to an existing tap device and returns its queue file, as
// qemu's `-netdev tap,fd=N` expects: /dev/net/tun with TUNSETIFF
// IFF_TAP|IFF_NO_PI, plus IFF_MULTI_QUEUE when the tap was created
// multi-queue (TUNSETIFF rejects a mismatch with EINVAL). Opening it gives the
// tap carrier; closing the last file takes the carrier away again (a
// persistent tap stays). The file stays bound to the device, so qemu can run
// in any namespace.
//
// NOTE: TUNSETIFF looks the device up in the namespace of the thread that
// opened /dev/net/tun, so both happen inside h.Namespace.Do. The file is
// blocking; hand it to a child process through exec.Cmd.ExtraFiles.
func OpenTap(h *Handle, name string) (*os.File, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	l, err := ByName(h, name)
	if err != nil {
		return nil, err
	}
	tuntap, ok := l.(*netlink.Tuntap)
	if !ok || tuntap.Mode != netlink.TUNTAP_MODE_TAP {
		return nil, h.wrap("open tap", name, fmt.Errorf("the link is a %s, not a tap device", l.Type()))
	}
	flags := uint16(unix.IFF_TAP | unix.IFF_NO_PI)
	if tuntap.Flags&netlink.TUNTAP_MULTI_QUEUE != 0 {
		flags |= unix.IFF_MULTI_QUEUE
	}

	var fd int
	err = h.Namespace.Do(func() error {
		var err error
		fd, err = unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open /dev/net/tun: %w", err)
		}
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			unix.Close(fd)
			return err
		}
		ifr.SetUint16(flags)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			unix.Close(fd)
			return fmt.Errorf("TUNSETIFF: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, h.wrap("open tap", name, err)
	}
	return os.NewFile(uintptr(fd), "tap:"+name), nil
}

// TapName returns the name of the tap or macvtap device f is attached to
// (TUNGETIFF).
func TapName(f *os.File) (string, error) {
	conn, err := f.SyscallConn()
	if err != nil {
		return "", err
	}
	var name string
	var ioctlErr error
	err = conn.Control(func(fd uintptr) {
		ifr, err := unix.NewIfreq("")
		if err != nil {
			ioctlErr = err
			return
		}
		if err := unix.IoctlIfreq(int(fd), unix.TUNGETIFF, ifr); err != nil {
			ioctlErr = err
			return
		}
		name = ifr.Name()
	})
	if err != nil {
		return "", err
	}
	if ioctlErr != nil {
		return "", fmt.Errorf("link: TUNGETIFF on %s: %w", f.Name(), ioctlErr)
	}
	return name, nil
}

// MacvtapDevice identifies the character device of a macvtap link.
type MacvtapDevice struct {
	// Index is the link's ifindex in its namespace; the kernel names the
	// device node /dev/tap<Index>.
	Index        int
	Major, Minor uint32
	// Path is the node that was opened: /dev/tap<Index> when its device
	// number matches, else a private node made for this open and removed
	// again.
	Path string
}

// OpenMacvtap opens the character device of a macvtap link for qemu's
// `-netdev tap,fd=N`. It reads the device number from
// /sys/class/net/<name>/macvtap/tap<N>/dev as seen from inside the link's
// namespace, then opens /dev/tap<N> when that node carries the same number.
//
// NOTE: sysfs shows the network namespace of the process that mounted it, not
// of the reading thread, so the read mounts a fresh sysfs in a private mount
// namespace on a thread that is discarded afterwards. devtmpfs names nodes
// tap<ifindex> across all namespaces, so two macvtaps with the same ifindex in
// different namespaces compete for one name; when /dev/tap<N> belongs to
// another device, a private node is made with mknod, opened and removed.
func OpenMacvtap(h *Handle, name string) (*os.File, MacvtapDevice, error) {
	if err := ValidateName(name); err != nil {
		return nil, MacvtapDevice{}, err
	}
	dev, err := readMacvtapDevice(h.Namespace, name)
	if err != nil {
		return nil, MacvtapDevice{}, h.wrap("find character device of macvtap", name, err)
	}
	want := unix.Mkdev(dev.Major, dev.Minor)

	path := fmt.Sprintf("/dev/tap%d", dev.Index)
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err == nil && st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == want {
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return nil, dev, h.wrap("open "+path+" of macvtap", name, err)
		}
		dev.Path = path
		return f, dev, nil
	}

	dir, err := os.MkdirTemp("", "vmnet-e2e-macvtap-")
	if err != nil {
		return nil, dev, h.wrap("open macvtap", name, err)
	}
	defer os.RemoveAll(dir)
	node := filepath.Join(dir, fmt.Sprintf("tap%d", dev.Index))
	if err := unix.Mknod(node, unix.S_IFCHR|0o600, int(want)); err != nil {
		return nil, dev, h.wrap(fmt.Sprintf("mknod %s (%d:%d) for macvtap", node, dev.Major, dev.Minor), name, err)
	}
	f, err := os.OpenFile(node, os.O_RDWR, 0)
	if err != nil {
		return nil, dev, h.wrap("open "+node+" of macvtap", name, err)
	}
	dev.Path = node
	return f, dev, nil
}

// readMacvtapDevice reads the ifindex and the macvtap device number of link
// name from a sysfs mounted inside ns.
func readMacvtapDevice(ns *netns.Namespace, name string) (MacvtapDevice, error) {
	type result struct {
		dev MacvtapDevice
		err error
	}
	done := make(chan result, 1)

	// The goroutine never unlocks its thread: the runtime then ends the
	// thread instead of reusing one whose mount and network namespaces were
	// changed.
	go func() {
		runtime.LockOSThread()
		dev, err := readMacvtapDeviceOnThread(ns, name)
		done <- result{dev, err}
	}()
	r := <-done
	return r.dev, r.err
}

func readMacvtapDeviceOnThread(ns *netns.Namespace, name string) (MacvtapDevice, error) {
	nsfd, err := ns.Handle()
	if err != nil {
		return MacvtapDevice{}, err
	}
	defer nsfd.Close()
	if err := unix.Setns(int(nsfd), unix.CLONE_NEWNET); err != nil {
		return MacvtapDevice{}, fmt.Errorf("setns %s: %w", ns.Name, err)
	}
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return MacvtapDevice{}, fmt.Errorf("unshare mount namespace: %w", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return MacvtapDevice{}, fmt.Errorf("make / private in the new mount namespace: %w", err)
	}

	dir, err := os.MkdirTemp("", "vmnet-e2e-sysfs-")
	if err != nil {
		return MacvtapDevice{}, err
	}
	defer os.Remove(dir)
	if err := unix.Mount("sysfs", dir, "sysfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return MacvtapDevice{}, fmt.Errorf("mount sysfs: %w", err)
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)

	base := filepath.Join(dir, "class/net", name)
	idx, err := os.ReadFile(filepath.Join(base, "ifindex"))
	if err != nil {
		return MacvtapDevice{}, err
	}
	var dev MacvtapDevice
	if dev.Index, err = strconv.Atoi(strings.TrimSpace(string(idx))); err != nil {
		return MacvtapDevice{}, fmt.Errorf("parse ifindex %q: %w", idx, err)
	}

	entries, err := os.ReadDir(filepath.Join(base, "macvtap"))
	if errors.Is(err, os.ErrNotExist) {
		return MacvtapDevice{}, fmt.Errorf("%s has no macvtap directory in sysfs: it is not a macvtap link", name)
	}
	if err != nil {
		return MacvtapDevice{}, err
	}
	if len(entries) != 1 {
		return MacvtapDevice{}, fmt.Errorf("%s/macvtap contains %d entries, want exactly one tapN", base, len(entries))
	}
	num, err := os.ReadFile(filepath.Join(base, "macvtap", entries[0].Name(), "dev"))
	if err != nil {
		return MacvtapDevice{}, err
	}
	if _, err := fmt.Sscanf(strings.TrimSpace(string(num)), "%d:%d", &dev.Major, &dev.Minor); err != nil {
		return MacvtapDevice{}, fmt.Errorf("parse device number %q: %w", num, err)
	}
	return dev, nil
}

// MacvtapDeviceOf returns the ifindex and device number of a macvtap link, read
// from a sysfs mounted inside the handle's namespace (see OpenMacvtap). Path is
// /dev/tap<Index> when that node carries the device's number, else empty.
func MacvtapDeviceOf(h *Handle, name string) (MacvtapDevice, error) {
	if err := ValidateName(name); err != nil {
		return MacvtapDevice{}, err
	}
	dev, err := readMacvtapDevice(h.Namespace, name)
	if err != nil {
		return MacvtapDevice{}, h.wrap("find character device of macvtap", name, err)
	}
	path := fmt.Sprintf("/dev/tap%d", dev.Index)
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err == nil && st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == unix.Mkdev(dev.Major, dev.Minor) {
		dev.Path = path
	}
	return dev, nil
}

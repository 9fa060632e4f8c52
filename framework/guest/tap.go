package guest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"unsafe"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/vmnet-e2e/vmnet-e2e/framework/netns"
)

// OpenTap opens the existing tap device name inside ns and returns the file
// qemu takes as `-netdev tap,fd=N`. The device is typically persistent and
// created by other code (netlink.Tuntap); the open follows its
// multi_queue flag, because TUNSETIFF rejects a mismatch with EINVAL. The
// descriptor stays bound to the device, so qemu can run in any namespace.
func OpenTap(ns *netns.Namespace, name string) (*os.File, error) {
	handle, err := ns.Netlink()
	if err != nil {
		return nil, err
	}
	defer handle.Close()

	link, err := handle.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("guest: find tap %q in netns %s: %w", name, ns.Name, err)
	}
	tuntap, ok := link.(*netlink.Tuntap)
	if !ok || tuntap.Mode != netlink.TUNTAP_MODE_TAP {
		return nil, fmt.Errorf("guest: link %q in netns %s is a %s, not a tap device", name, ns.Name, link.Type())
	}
	flags := uint16(unix.IFF_TAP | unix.IFF_NO_PI)
	if tuntap.Flags&netlink.TUNTAP_MULTI_QUEUE != 0 {
		flags |= unix.IFF_MULTI_QUEUE
	}

	var file *os.File
	// /dev/net/tun finds the device by name in the namespace of the process
	// that opened it, so open it inside ns.
	err = ns.Do(func() error {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open /dev/net/tun: %w", err)
		}
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			unix.Close(fd)
			return fmt.Errorf("tap name %q: %w", name, err)
		}
		ifr.SetUint16(flags)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			unix.Close(fd)
			return fmt.Errorf("TUNSETIFF %s: %w", name, err)
		}
		file = os.NewFile(uintptr(fd), "/dev/net/tun:"+name)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("guest: open tap %q: %w", name, err)
	}
	return file, nil
}

// TapName returns the name of the tap or macvtap device f is attached to
// (TUNGETIFF).
func TapName(f *os.File) (string, error) {
	var ifr [unix.IFNAMSIZ + 64]byte
	conn, err := f.SyscallConn()
	if err != nil {
		return "", err
	}
	var ioctlErr error
	err = conn.Control(func(fd uintptr) {
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, fd, unix.TUNGETIFF, uintptr(unsafe.Pointer(&ifr[0])))
		if errno != 0 {
			ioctlErr = errno
		}
	})
	if err != nil {
		return "", err
	}
	if ioctlErr != nil {
		return "", fmt.Errorf("guest: TUNGETIFF on %s: %w", f.Name(), ioctlErr)
	}
	name := string(ifr[:unix.IFNAMSIZ])
	if i := strings.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	return name, nil
}

// OpenMacvtap opens the character device of the macvtap link name inside ns,
// for qemu's `-netdev tap,fd=N`.
//
// The kernel names that device /dev/tap<ifindex>, but ifindexes are per
// namespace, so two namespaces can each have a tap5 and /dev holds only one
// node. OpenMacvtap therefore reads the device number from the namespace's
// own sysfs (/sys/class/net/<name>/macvtap/tap<ifindex>/dev), which needs a
// sysfs mounted inside the namespace, and opens a private device node made
// for it.
func OpenMacvtap(ns *netns.Namespace, name string) (*os.File, error) {
	handle, err := ns.Netlink()
	if err != nil {
		return nil, err
	}
	link, err := handle.LinkByName(name)
	handle.Close()
	if err != nil {
		return nil, fmt.Errorf("guest: find macvtap %q in netns %s: %w", name, ns.Name, err)
	}
	if link.Type() != "macvtap" {
		return nil, fmt.Errorf("guest: link %q in netns %s is a %s, not a macvtap", name, ns.Name, link.Type())
	}
	index := link.Attrs().Index

	devNumber, err := readNetnsSysfs(ns, fmt.Sprintf("class/net/%s/macvtap/tap%d/dev", name, index))
	if err != nil {
		return nil, fmt.Errorf("guest: read device number of macvtap %q in netns %s: %w", name, ns.Name, err)
	}
	var major, minor uint32
	if _, err := fmt.Sscanf(strings.TrimSpace(devNumber), "%d:%d", &major, &minor); err != nil {
		return nil, fmt.Errorf("guest: parse device number %q of macvtap %q: %w", devNumber, name, err)
	}

	dir, err := os.MkdirTemp("", "vmnet-e2e-macvtap-")
	if err != nil {
		return nil, fmt.Errorf("guest: create directory for the macvtap device node: %w", err)
	}
	defer os.RemoveAll(dir)
	node := filepath.Join(dir, fmt.Sprintf("tap%d", index))
	if err := unix.Mknod(node, unix.S_IFCHR|0o600, int(unix.Mkdev(major, minor))); err != nil {
		return nil, fmt.Errorf("guest: mknod %s (%d:%d) for macvtap %q: %w", node, major, minor, name, err)
	}
	file, err := os.OpenFile(node, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("guest: open macvtap %q device %d:%d: %w", name, major, minor, err)
	}
	return file, nil
}

// readNetnsSysfs reads a file from a sysfs mounted inside ns. The mount is
// made in a private mount namespace on a thread that is never reused: the
// goroutine exits with the thread locked, so the Go runtime discards it with
// its namespaces.
func readNetnsSysfs(ns *netns.Namespace, rel string) (string, error) {
	mountpoint, err := os.MkdirTemp("", "vmnet-e2e-sysfs-")
	if err != nil {
		return "", err
	}
	defer os.Remove(mountpoint)

	type result struct {
		data string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		data, err := func() (string, error) {
			if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
				return "", fmt.Errorf("unshare mount namespace: %w", err)
			}
			if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
				return "", fmt.Errorf("make mounts private: %w", err)
			}
			target, err := vnetns.GetFromPath(ns.Path)
			if err != nil {
				return "", fmt.Errorf("open %s: %w", ns.Path, err)
			}
			defer target.Close()
			if err := vnetns.Set(target); err != nil {
				return "", fmt.Errorf("enter netns %s: %w", ns.Name, err)
			}
			if err := unix.Mount("sysfs", mountpoint, "sysfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
				return "", fmt.Errorf("mount sysfs: %w", err)
			}
			defer unix.Unmount(mountpoint, unix.MNT_DETACH)
			data, err := os.ReadFile(filepath.Join(mountpoint, rel))
			if errors.Is(err, os.ErrNotExist) {
				return "", fmt.Errorf("%s not found in the namespace's sysfs", rel)
			}
			return string(data), err
		}()
		done <- result{data, err}
		// No UnlockOSThread: the thread dies with this goroutine.
	}()
	r := <-done
	return r.data, r.err
}

// OpenMacvtapDevice opens a macvtap character device by path, such as
// /dev/tap7 found through /sys/class/net/<link>/macvtap/.
//
// NOTE: /dev holds one node per name, while each namespace numbers its own
// links, so /dev/tap<ifindex> can belong to a macvtap in another namespace.
// OpenMacvtap avoids that by resolving the device number inside the link's
// namespace.
func OpenMacvtapDevice(path string) (*os.File, error) {
	file, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("guest: open macvtap device %s: %w", path, err)
	}
	return file, nil
}

package link

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// WriteSysctl writes a /proc/sys value inside the handle's namespace, like
// `ip netns exec NS sysctl -w KEY=VALUE`. key is dotted
// (net.ipv4.conf.all.arp_ignore) or slashed (net/ipv4/conf/all/arp_ignore).
//
// NOTE: the kernel resolves /proc/sys/net against the network namespace of
// the thread that opens the file, so the write happens inside Namespace.Do;
// the /proc mount itself is shared.
func WriteSysctl(h *Handle, key, value string) error {
	path, err := sysctlPath(key)
	if err != nil {
		return err
	}
	err = h.Namespace.Do(func() error {
		return os.WriteFile(path, []byte(value), 0o644)
	})
	if err != nil {
		return fmt.Errorf("link: write sysctl %s=%s in netns %s: %w", key, value, h.NamespaceName(), err)
	}
	return nil
}

// ReadSysctl reads a /proc/sys value inside the handle's namespace, like
// `ip netns exec NS sysctl -n KEY`.
func ReadSysctl(h *Handle, key string) (string, error) {
	path, err := sysctlPath(key)
	if err != nil {
		return "", err
	}
	var value []byte
	err = h.Namespace.Do(func() error {
		var err error
		value, err = os.ReadFile(path)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("link: read sysctl %s in netns %s: %w", key, h.NamespaceName(), err)
	}
	return strings.TrimSpace(string(value)), nil
}

// SetArpIgnore writes net.ipv4.conf.DEV.arp_ignore; dev may be "all".
func SetArpIgnore(h *Handle, dev string, mode int) error {
	return WriteSysctl(h, "net/ipv4/conf/"+dev+"/arp_ignore", fmt.Sprint(mode))
}

// SetDisableIPv6 writes net.ipv6.conf.DEV.disable_ipv6; dev may be "all".
func SetDisableIPv6(h *Handle, dev string, disable bool) error {
	v := "0"
	if disable {
		v = "1"
	}
	return WriteSysctl(h, "net/ipv6/conf/"+dev+"/disable_ipv6", v)
}

// sysctlPath maps a sysctl key to its file under /proc/sys and refuses keys
// outside net/, since only those are per namespace.
func sysctlPath(key string) (string, error) {
	slashed := key
	if !strings.Contains(key, "/") {
		slashed = strings.ReplaceAll(key, ".", "/")
	}
	clean := filepath.Clean("/" + slashed)
	if !strings.HasPrefix(clean, "/net/") {
		return "", fmt.Errorf("link: sysctl %q is not under net/: only net.* values are per network namespace", key)
	}
	return filepath.Join("/proc/sys", clean), nil
}

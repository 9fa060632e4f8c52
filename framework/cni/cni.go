// Package cni runs the real CNI plugin binaries for one network-selection
// element of a virt-launcher pod the way Multus v4.3.0 delegates to them,
// through containernetworking/cni's libcni, with the plugins forked inside the
// node namespace.
//
// Source: k8snetworkplumbingwg/multus-cni v4.3.0, pkg/multus/multus.go
// (DelegateAdd, DelegateDel, confAdd, conflistAdd, validateIfName) and
// pkg/types/conf.go (createRuntimeConf, newCNIRuntimeConf,
// mergeCNIRuntimeConfig).
package cni

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/vmnet-e2e/vmnet-e2e/framework/link"
	"github.com/vmnet-e2e/vmnet-e2e/framework/netns"
)

// DefaultBinDir is the directory where Debian's containernetworking-plugins
// package installs the plugin binaries.
const DefaultBinDir = "/usr/lib/cni"

// Pod identifies the virt-launcher pod sandbox a plugin attaches to.
type Pod struct {
	Namespace string
	Name      string
	UID       string
	// ContainerID is the sandbox ID the runtime passes as CNI_CONTAINERID;
	// Multus also sends it as K8S_POD_INFRA_CONTAINER_ID.
	ContainerID string
	// NetNS is the pod's network namespace (CNI_NETNS).
	NetNS *netns.Namespace
}

// Attachment is one network-selection element of the pod's
// k8s.v1.cni.cncf.io/networks annotation, resolved to its NAD.
type Attachment struct {
	// NADNamespace and NADName name the NetworkAttachmentDefinition.
	NADNamespace, NADName string
	// Config is the NAD's spec.config: one plugin configuration or a
	// configuration list.
	Config []byte
	// Interface is the element's "interface", KubeVirt's pod<hash>; it
	// becomes CNI_IFNAME.
	Interface string
	// MAC is the element's "mac" (KubeVirt copies
	// spec.domain.devices.interfaces[].macAddress there); empty when none.
	MAC string
}

// Result is the outcome of a successful ADD.
type Result struct {
	// CNI is the result converted to CNI spec 1.0.0.
	CNI *current.Result
	// Interface is the result's entry for the pod interface; nil when the
	// plugin reported none.
	Interface *current.Interface
	// MAC is the pod interface's MAC as the plugin reported it.
	MAC net.HardwareAddr
	// IPs are the addresses the plugin configured, with prefix length.
	IPs []netip.Prefix
	// Duration is the wall time of the ADD, IPAM included.
	Duration time.Duration
}

// Runner runs CNI ADD and DEL for attachments from inside a node namespace.
type Runner struct {
	node     *netns.Namespace
	binDirs  []string
	cacheDir string
	dataDir  string
	log      *slog.Logger
	cni      *libcni.CNIConfig
}

// Option configures a Runner.
type Option func(*Runner)

// WithBinDirs sets the directories searched for plugin binaries (CNI_PATH);
// the default is DefaultBinDir.
func WithBinDirs(dirs ...string) Option { return func(r *Runner) { r.binDirs = dirs } }

// WithLogger sets the logger; nil discards.
func WithLogger(log *slog.Logger) Option { return func(r *Runner) { r.log = log } }

// NewRunner returns a Runner that forks plugins inside node and keeps libcni's
// result cache (Multus uses /var/lib/cni/multus) and host-local's allocations
// under stateDir, normally the run's cleanup.Ledger.Dir().
func NewRunner(node *netns.Namespace, stateDir string, opts ...Option) (*Runner, error) {
	r := &Runner{
		node:     node,
		binDirs:  []string{DefaultBinDir},
		cacheDir: filepath.Join(stateDir, "cni", "cache"),
		dataDir:  filepath.Join(stateDir, "cni", "host-local"),
	}
	for _, opt := range opts {
		opt(r)
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	for _, d := range []string{r.cacheDir, r.dataDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("cni: create state directory %s: %w", d, err)
		}
	}
	r.cni = libcni.NewCNIConfigWithCacheDir(r.binDirs, r.cacheDir, &nsExec{ns: node, log: r.log})
	return r, nil
}

// CacheDir returns the libcni cache directory.
func (r *Runner) CacheDir() string { return r.cacheDir }

// DataDir returns the directory given to host-local as dataDir.
func (r *Runner) DataDir() string { return r.dataDir }

// Add runs CNI ADD for the attachment, as Multus's DelegateAdd does for a
// non-default network: it fails when the interface name is already taken in
// the pod, passes the requested MAC both as CNI_ARGS MAC= and as the "mac"
// capability (libcni forwards it in runtimeConfig only to plugins whose
// config declares "capabilities": {"mac": true}), and caches the result for
// DEL.
func (r *Runner) Add(ctx context.Context, pod Pod, att Attachment) (*Result, error) {
	start := time.Now()

	nc, rt, err := r.prepare(pod, att)
	if err != nil {
		return nil, err
	}

	// validateIfName in Multus: the interface name must be free in the pod.
	ph, err := link.NewHandle(pod.NetNS)
	if err != nil {
		return nil, err
	}
	inUse, err := link.Exists(ph, att.Interface)
	ph.Close()
	if err != nil {
		return nil, err
	}
	if inUse {
		return nil, fmt.Errorf("cni: cannot set %v interface name to %q: interface name %s already exists in netns %s: delete it or choose another network name", nc.pluginTypes(), att.Interface, att.Interface, pod.NetNS.Name)
	}

	r.log.Info("CNI ADD", "network", nc.Name, "plugins", nc.pluginTypes(), "ifname", att.Interface,
		"netns", pod.NetNS.Name, "mac", att.MAC, "node", r.node.Name)
	raw, err := r.run(ctx, nc, rt, true)
	if err != nil {
		return nil, r.explain(fmt.Errorf("cni: ADD %s for %s/%s interface %s: %w", r.nadName(att, nc), pod.Namespace, pod.Name, att.Interface, err), nc)
	}

	res, err := current.NewResultFromResult(raw)
	if err != nil {
		return nil, fmt.Errorf("cni: convert ADD result of %s: %w", r.nadName(att, nc), err)
	}
	out := &Result{CNI: res, Duration: time.Since(start)}
	for _, iface := range res.Interfaces {
		if iface.Name == att.Interface && iface.Sandbox != "" {
			out.Interface = iface
			if mac, err := net.ParseMAC(iface.Mac); err == nil {
				out.MAC = mac
			}
		}
	}
	for _, ip := range res.IPs {
		if p, err := link.PrefixFromIPNet(&ip.Address); err == nil {
			out.IPs = append(out.IPs, p)
		}
	}
	r.log.Info("CNI ADD done", "network", nc.Name, "ifname", att.Interface, "mac", out.MAC.String(), "ips", out.IPs, "duration", out.Duration)
	return out, nil
}

// Del runs CNI DEL for the attachment with the same configuration and runtime
// arguments as Add; libcni passes the cached ADD result as prevResult.
func (r *Runner) Del(ctx context.Context, pod Pod, att Attachment) error {
	nc, rt, err := r.prepare(pod, att)
	if err != nil {
		return err
	}
	r.log.Info("CNI DEL", "network", nc.Name, "ifname", att.Interface, "netns", pod.NetNS.Name)
	if _, err := r.run(ctx, nc, rt, false); err != nil {
		return fmt.Errorf("cni: DEL %s for %s/%s interface %s: %w", r.nadName(att, nc), pod.Namespace, pod.Name, att.Interface, err)
	}
	return nil
}

func (r *Runner) run(ctx context.Context, nc *netConf, rt *libcni.RuntimeConf, add bool) (types.Result, error) {
	config, err := nc.bytes()
	if err != nil {
		return nil, err
	}

	if nc.IsList {
		list, err := libcni.NetworkConfFromBytes(config)
		if err != nil {
			return nil, fmt.Errorf("parse configuration list: %w", err)
		}
		if add {
			return r.cni.AddNetworkList(ctx, list, rt)
		}
		return nil, r.cni.DelNetworkList(ctx, list, rt)
	}

	// Multus v4.3.0 confAdd uses libcni.ConfFromBytes, now an alias of
	// NetworkPluginConfFromBytes.
	conf, err := libcni.NetworkPluginConfFromBytes(config)
	if err != nil {
		return nil, fmt.Errorf("parse plugin configuration: %w", err)
	}
	if add {
		return r.cni.AddNetwork(ctx, conf, rt)
	}
	return nil, r.cni.DelNetwork(ctx, conf, rt)
}

// prepare validates the request and builds the runtime configuration as
// Multus's createRuntimeConf, newCNIRuntimeConf and DelegateAdd do.
func (r *Runner) prepare(pod Pod, att Attachment) (*netConf, *libcni.RuntimeConf, error) {
	if pod.NetNS == nil {
		return nil, nil, errors.New("cni: pod has no network namespace")
	}
	if pod.ContainerID == "" {
		return nil, nil, errors.New("cni: pod has no container ID: set Pod.ContainerID (the sandbox ID)")
	}
	if err := link.ValidateName(att.Interface); err != nil {
		return nil, nil, fmt.Errorf("cni: network-selection element interface: %w", err)
	}
	if att.MAC != "" {
		if _, err := net.ParseMAC(att.MAC); err != nil {
			return nil, nil, fmt.Errorf("cni: failed to parse mac address %q of the network-selection element: %w (KubeVirt copies spec.domain.devices.interfaces[].macAddress here: fix it there)", att.MAC, err)
		}
	}

	nc, err := parseNetConf(att.Config)
	if err != nil {
		return nil, nil, err
	}
	nc.setHostLocalDataDir(r.dataDir)

	rt := &libcni.RuntimeConf{
		ContainerID: pod.ContainerID,
		NetNS:       pod.NetNS.Path,
		IfName:      att.Interface,
		Args: [][2]string{
			{"IgnoreUnknown", "true"},
			{"K8S_POD_NAMESPACE", pod.Namespace},
			{"K8S_POD_NAME", pod.Name},
			{"K8S_POD_INFRA_CONTAINER_ID", pod.ContainerID},
			{"K8S_POD_UID", pod.UID},
		},
		CapabilityArgs: map[string]any{},
	}
	if att.MAC != "" {
		// DelegateAdd appends MAC to CNI_ARGS; mergeCNIRuntimeConfig puts it
		// in the "mac" capability.
		rt.Args = append(rt.Args, [2]string{"MAC", att.MAC})
		rt.CapabilityArgs["mac"] = att.MAC
	}
	return nc, rt, nil
}

// explain adds what the harness can see to a failed ADD: a master or bridge
// that does not exist in the node namespace.
func (r *Runner) explain(err error, nc *netConf) error {
	h, herr := link.NewHandle(r.node)
	if herr != nil {
		return err
	}
	defer h.Close()
	for _, m := range nc.masters() {
		if ok, _ := link.Exists(h, m); !ok {
			return fmt.Errorf("%w; the NAD config names master %q, which does not exist in node netns %s: set \"master\" to an existing link of the node (see `ip -n %s link`)", err, m, r.node.Name, r.node.Name)
		}
	}
	return err
}

func (r *Runner) nadName(att Attachment, nc *netConf) string {
	if att.NADName != "" {
		return fmt.Sprintf("NAD %s/%s (network %q)", att.NADNamespace, att.NADName, nc.Name)
	}
	return fmt.Sprintf("network %q", nc.Name)
}

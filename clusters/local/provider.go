// Package local is the embedded provider. In network namespaces it creates on
// this machine, it rebuilds the data plane Multus and KubeVirt build for a VM
// on a secondary network. It boots a real guest under qemu (TCG), configured
// by real cloud-init from a NoCloud seed.
//
// What runs for real: the CNI plugin binaries (Debian's
// containernetworking-plugins), the Linux bridge, macvlan, macvtap and tap
// drivers, qemu, the guest kernel, systemd-networkd and cloud-init. What is
// redone in Go, step for step with the KubeVirt v1.9.0 source it follows:
// Multus's CNI invocation (framework/cni), the bridge binding and the macvtap
// binding (framework/binding), and virt-launcher's DHCP server
// (framework/dhcp).
package local

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"

	"github.com/vmnet-e2e/vmnet-e2e/clusters"
	"github.com/vmnet-e2e/vmnet-e2e/framework/cleanup"
	"github.com/vmnet-e2e/vmnet-e2e/framework/guest"
	"github.com/vmnet-e2e/vmnet-e2e/framework/scenario"
)

var _ clusters.Provider = (*Provider)(nil)

// Provider runs scenarios in network namespaces on this machine.
type Provider struct {
	log          *slog.Logger
	progress     io.Writer
	artifactsDir string
	recipe       guest.Recipe
	cacheDir     string
	guestCPUs    int
	maxMemoryMiB int
	cniBinDir    string

	image *guest.Image
}

// Option configures a Provider.
type Option func(*Provider)

// WithLogger sets the logger; nil discards.
func WithLogger(log *slog.Logger) Option { return func(p *Provider) { p.log = log } }

// WithProgress sets where long steps (image build) write progress.
func WithProgress(w io.Writer) Option { return func(p *Provider) { p.progress = w } }

// WithArtifactsDir sets where each scenario's console log, link tables and
// guest evidence are kept; empty keeps none.
func WithArtifactsDir(dir string) Option { return func(p *Provider) { p.artifactsDir = dir } }

// WithRecipe sets the guest image recipe; the default is
// guest.DefaultRecipe(guest.RendererNetplan), what Debian and Ubuntu cloud
// images use.
func WithRecipe(r guest.Recipe) Option { return func(p *Provider) { p.recipe = r } }

// WithCacheDir sets the image cache directory.
func WithCacheDir(dir string) Option { return func(p *Provider) { p.cacheDir = dir } }

// WithGuestCPUs sets each guest's vCPUs (qemu -smp). The default, 1, lets two
// host cores run three TCG guests at once.
func WithGuestCPUs(n int) Option { return func(p *Provider) { p.guestCPUs = n } }

// WithCNIBinDir sets where the CNI plugin binaries are.
func WithCNIBinDir(dir string) Option { return func(p *Provider) { p.cniBinDir = dir } }

// New returns a local provider. VMNET_GUEST_CPUS overrides the vCPUs per
// guest.
func New(opts ...Option) (*Provider, error) {
	p := &Provider{
		recipe:       guest.DefaultRecipe(guest.RendererNetplan),
		guestCPUs:    1,
		maxMemoryMiB: 1024,
		cniBinDir:    "/usr/lib/cni",
	}
	if v := os.Getenv("VMNET_GUEST_CPUS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("local: VMNET_GUEST_CPUS=%q is not a positive number of vCPUs", v)
		}
		p.guestCPUs = n
	}
	for _, opt := range opts {
		opt(p)
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.progress == nil {
		p.progress = io.Discard
	}
	return p, nil
}

// Name returns "local".
func (p *Provider) Name() string { return "local" }

// Prepare checks the machine, removes what killed runs left behind, and
// builds or loads the guest image. It returns the image's recipe hash, which
// Attach checks.
func (p *Provider) Prepare(ctx context.Context) ([]byte, error) {
	if err := Preflight(p.cniBinDir); err != nil {
		return nil, err
	}
	if reaped, err := cleanup.Reap(ctx, p.log); err != nil {
		p.log.Warn("could not remove everything ended runs left behind", "error", err)
	} else if len(reaped) > 0 {
		p.log.Info("removed what ended runs left behind", "runs", reaped)
	}
	if err := p.loadImage(ctx); err != nil {
		return nil, err
	}
	return []byte(p.image.Hash), nil
}

// Attach loads the image Prepare built, for another parallel process.
func (p *Provider) Attach(ctx context.Context, data []byte) error {
	if err := Preflight(p.cniBinDir); err != nil {
		return err
	}
	if err := p.loadImage(ctx); err != nil {
		return err
	}
	if string(data) != p.image.Hash {
		return fmt.Errorf("local: this process loaded guest image %s but the first process prepared %s: run all processes with the same recipe", p.image.Hash, data)
	}
	return nil
}

// Teardown has nothing to undo: every scenario removes what it created, and
// the image stays cached.
func (p *Provider) Teardown(context.Context) error { return nil }

// Skip returns why the local provider cannot run s, or "".
func (p *Provider) Skip(s *scenario.Scenario) string {
	if s.Rejection != nil {
		return ""
	}
	for _, a := range s.Attachments() {
		switch a.Binding {
		case scenario.BindingBridge, scenario.BindingMacvtap, scenario.BindingMasquerade:
		default:
			return fmt.Sprintf("interface %q uses the %s binding, which the local provider does not rebuild (it rebuilds bridge and macvtap bindings on secondary networks)", a.Interface.Name, a.Binding)
		}
		if a.NAD == nil {
			continue
		}
		switch a.CNI.Type {
		case "macvlan", "bridge":
		case "macvtap":
			if a.Binding != scenario.BindingMacvtap {
				return fmt.Sprintf("interface %q puts a macvtap NAD under the %s binding; KubeVirt uses macvtap-cni only with the macvtap binding plugin", a.Interface.Name, a.Binding)
			}
		default:
			return fmt.Sprintf("NAD %s/%s uses the %s CNI plugin, which the local provider does not run (it runs macvlan, bridge and macvtap)", a.NAD.Namespace, a.NAD.Name, a.CNI.Type)
		}
	}
	if len(s.SecondaryAttachments()) == 0 {
		return "the VMI has no Multus network to probe"
	}
	return ""
}

func (p *Provider) loadImage(ctx context.Context) error {
	opts := []guest.ImageOption{guest.WithImageLogger(p.log), guest.WithProgress(p.progress)}
	if p.cacheDir != "" {
		opts = append(opts, guest.WithCacheDir(p.cacheDir))
	}
	image, err := guest.EnsureImage(ctx, p.recipe, opts...)
	if err != nil {
		return fmt.Errorf("local: guest image: %w", err)
	}
	p.image = image
	return nil
}

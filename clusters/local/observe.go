package local

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/vmnet-e2e/vmnet-e2e/clusters"
	"github.com/vmnet-e2e/vmnet-e2e/framework/binding"
	"github.com/vmnet-e2e/vmnet-e2e/framework/cleanup"
	"github.com/vmnet-e2e/vmnet-e2e/framework/cloudinit"
	"github.com/vmnet-e2e/vmnet-e2e/framework/cni"
	"github.com/vmnet-e2e/vmnet-e2e/framework/dhcp"
	"github.com/vmnet-e2e/vmnet-e2e/framework/guest"
	"github.com/vmnet-e2e/vmnet-e2e/framework/kvnames"
	"github.com/vmnet-e2e/vmnet-e2e/framework/link"
	"github.com/vmnet-e2e/vmnet-e2e/framework/netns"
	"github.com/vmnet-e2e/vmnet-e2e/framework/report"
	"github.com/vmnet-e2e/vmnet-e2e/framework/scenario"
	"github.com/vmnet-e2e/vmnet-e2e/framework/verdict"
)

// Time limits of one scenario run.
const (
	// networkEvidenceTimeout bounds the wait for the guest's early evidence.
	// On a 2-core machine it took 30 to 60 s for one TCG guest alone and up to
	// about 100 s with three at once, so the rest is margin for a loaded host.
	networkEvidenceTimeout = 5 * time.Minute
	// teardownTimeout bounds cleanup after the scenario's own context ended,
	// so that an interrupted run still removes what it built.
	teardownTimeout = 2 * time.Minute
)

// run is the state of one scenario run.
type run struct {
	p        *Provider
	s        *scenario.Scenario
	target   scenario.Target
	ledger   *cleanup.Ledger
	topo     *topology
	pod      *netns.Namespace
	podInfo  cni.Pod
	evidence *verdict.Evidence
	phases   *report.Phases
	// nics are the guest NICs in spec order.
	nics []guestNIC
	vm   *guest.VM
	// artifacts is the scenario's artifacts directory, "" when none is kept.
	artifacts string
}

// guestNIC is one VMI interface as the guest will see it.
type guestNIC struct {
	attachment scenario.Attachment
	tap        *os.File
	mac        net.HardwareAddr
	// podLink is the pod's end of the attachment, which every frame for the
	// guest passes: <hash>-nic for the bridge binding, the macvtap link
	// pod<hash> for the macvtap binding.
	podLink string
	// tapName is the tap or macvtap link name in the pod namespace.
	tapName string
}

// Observe runs one scenario and returns everything it saw. It builds the
// topology, runs CNI ADD as Multus would and applies the VMI's bindings as
// KubeVirt would. Then it boots the guest, waits until the guest reports its
// network configured, and probes the static IP from the external namespace.
// Everything it built is removed before it returns.
func (p *Provider) Observe(ctx context.Context, s *scenario.Scenario, phases *report.Phases) (ev *verdict.Evidence, err error) {
	ev = &verdict.Evidence{}
	if s.Rejection != nil {
		// The API server refuses the manifests: no pod, no guest.
		ev.Rejection = s.Rejection
		ev.Warnings = s.Warnings
		r := &run{p: p, s: s, evidence: ev}
		r.artifacts = p.scenarioArtifacts(s)
		r.saveArtifacts()
		return ev, nil
	}
	if p.image == nil {
		return nil, errors.New("local: Observe called before Prepare or Attach")
	}

	target, err := s.Target()
	if err != nil {
		return nil, &scenario.InputError{Source: s.Source, Err: err}
	}
	r := &run{p: p, s: s, target: target, evidence: ev, phases: phases}
	r.fillTargetEvidence()

	ledger, err := cleanup.NewLedger("vmnet-"+randomHex(4), p.log)
	if err != nil {
		return nil, err
	}
	r.ledger = ledger
	defer func() {
		// Tear down with a fresh context: ctx may be the reason we stop.
		teardownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), teardownTimeout)
		defer cancel()
		start := time.Now()
		if closeErr := ledger.Close(teardownCtx); closeErr != nil {
			err = errors.Join(err, fmt.Errorf("local: teardown of %s: %w", s.Name, closeErr))
		}
		phases.Record("teardown", time.Since(start))
	}()

	r.artifacts = p.scenarioArtifacts(s)

	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"topology", r.buildTopology},
		{"cni-add", r.addNetworks},
		{"binding", r.bindInterfaces},
		{"boot-to-network-evidence", r.bootGuest},
		{"probe", r.probe},
	}
	for _, step := range steps {
		if err := phases.Time(step.name, func() error { return step.fn(ctx) }); err != nil {
			r.saveArtifacts()
			return ev, fmt.Errorf("local: scenario %s, step %s: %w", s.Name, step.name, err)
		}
	}
	r.saveArtifacts()
	return ev, nil
}

func (r *run) fillTargetEvidence() {
	a := r.target.Attachment
	r.evidence.CNI = a.CNI.Type
	r.evidence.Binding = string(a.Binding)
	r.evidence.Network = a.Network.Name
	r.evidence.Probe = r.target.Address.String()
	r.evidence.Peer = r.target.Peer.String()
	r.evidence.Parent = parentOf(a)
}

// parentOf returns the node link an attachment's CNI plugin attaches to.
func parentOf(a scenario.Attachment) string {
	if a.CNI.Type == "bridge" {
		return a.CNI.Bridge
	}
	return a.CNI.Master
}

func (r *run) buildTopology(ctx context.Context) error {
	parents := map[string]bool{}
	for _, a := range r.s.SecondaryAttachments() {
		parent := parentOf(a)
		if err := link.ValidateName(parent); err != nil {
			return fmt.Errorf("NAD %s/%s names parent %q: %w", a.NAD.Namespace, a.NAD.Name, parent, err)
		}
		parents[parent] = true
	}
	var names []string
	for name := range parents {
		names = append(names, name)
	}
	sort.Strings(names)

	prefix := r.ledger.RunID()
	r.p.log.Info("building the node, external and pod namespaces", "scenario", r.s.Name, "run", prefix, "parents", names, "peer", r.target.Peer)
	topo, err := buildTopology(ctx, r.ledger, prefix, names, r.evidence.Parent, r.target.Peer)
	if err != nil {
		return err
	}
	r.topo = topo

	pod, err := createNamespace(r.ledger, prefix+"-pod")
	if err != nil {
		return err
	}
	r.pod = pod
	r.podInfo = cni.Pod{
		Namespace:   r.s.VMI.Namespace,
		Name:        "virt-launcher-" + r.s.VMI.Name + "-" + randomHex(3)[:5],
		UID:         string(r.s.VMI.UID),
		ContainerID: randomHex(32),
		NetNS:       pod,
	}
	if r.podInfo.UID == "" {
		r.podInfo.UID = randomHex(16)
	}
	return nil
}

// addNetworks runs CNI ADD for every Multus network in spec order, the way
// Multus v4.3.0 walks the pod's network-selection elements. The macvtap
// binding's link is made by binding.AttachMacvtap instead, because Debian has
// no macvtap-cni binary.
func (r *run) addNetworks(ctx context.Context) error {
	runner, err := cni.NewRunner(r.topo.Node, r.ledger.Dir(), cni.WithBinDirs(r.p.cniBinDir), cni.WithLogger(r.p.log))
	if err != nil {
		return err
	}

	for _, a := range r.s.SecondaryAttachments() {
		if a.Binding == scenario.BindingMacvtap {
			continue
		}
		att := cni.Attachment{
			NADNamespace: a.NAD.Namespace,
			NADName:      a.NAD.Name,
			Config:       []byte(a.NAD.Spec.Config),
			Interface:    kvnames.PodInterface(a.Network.Name),
			MAC:          a.Interface.MacAddress,
		}
		if _, err := runner.Add(ctx, r.podInfo, att); err != nil {
			return err
		}
		r.ledger.Track(cleanup.Resource{Kind: cleanup.KindStep, Name: "CNI DEL " + att.Interface}, func(ctx context.Context) error {
			return runner.Del(ctx, r.podInfo, att)
		})
	}
	return nil
}

// bindInterfaces applies each interface's binding, starts the DHCP server
// where KubeVirt would, and opens the guest NICs' taps.
func (r *run) bindInterfaces(ctx context.Context) error {
	for _, a := range r.s.Attachments() {
		var nic guestNIC
		var err error
		switch {
		case a.IsPodNetwork():
			nic, err = r.bindPodNetwork(a)
		case a.Binding == scenario.BindingMacvtap:
			nic, err = r.bindMacvtap(a)
		default:
			nic, err = r.bindBridge(a)
		}
		if err != nil {
			return err
		}
		r.nics = append(r.nics, nic)
		if a.Network.Name == r.target.Attachment.Network.Name {
			r.evidence.GuestMAC = nic.mac.String()
		}
	}
	return nil
}

// bindBridge applies KubeVirt's bridge binding and starts the DHCP server when
// the pod link had an IPv4 address.
func (r *run) bindBridge(a scenario.Attachment) (guestNIC, error) {
	networkIndex := a.NetworkIndex
	spec := binding.BridgeSpec{
		NetworkName:       a.Network.Name,
		InterfaceIndex:    a.Index,
		NetworkOrderIndex: &networkIndex,
		MACAddress:        a.Interface.MacAddress,
		Hostname:          dhcp.LauncherHostname(r.s.VMI.Name, r.s.VMI.Spec.Hostname),
		Subdomain:         r.s.VMI.Spec.Subdomain,
	}
	res, err := binding.ApplyBridge(r.pod, spec, r.p.log)
	if err != nil {
		return guestNIC{}, err
	}
	// virt-handler caches the pod link's IPv4 addresses at discovery and
	// reports them in status.interfaces (bridge binding drops IPv6 from the
	// cache: pkg/network/setup/netpod/discover.go).
	status := verdict.StatusInterface{Name: a.Network.Name, MAC: res.GuestMAC.String()}
	for _, p := range res.Addresses {
		if p.Addr().Is4() && p.Addr().IsGlobalUnicast() {
			status.IPAddresses = append(status.IPAddresses, p.Addr().String())
		}
	}
	r.evidence.ReportedStatus = append(r.evidence.ReportedStatus, status)

	if res.DHCP != nil {
		server, err := dhcp.Start(r.pod, res.Bridge, *res.DHCP, r.p.log)
		if err != nil {
			return guestNIC{}, fmt.Errorf("start the DHCP server on %s: %w", res.Bridge, err)
		}
		r.ledger.Track(cleanup.Resource{Kind: cleanup.KindStep, Name: "DHCP server on " + res.Bridge}, func(context.Context) error {
			return server.Stop()
		})
	}

	tap, err := r.openTap(res.Tap)
	if err != nil {
		return guestNIC{}, err
	}
	return guestNIC{attachment: a, tap: tap, mac: res.GuestMAC, podLink: res.BridgedNIC, tapName: res.Tap}, nil
}

// bindMacvtap makes the macvtap link as macvtap-cni's device plugin and CNI
// ADD do, and opens its character device for qemu.
func (r *run) bindMacvtap(a scenario.Attachment) (guestNIC, error) {
	spec := binding.MacvtapSpec{
		NetworkName: a.Network.Name,
		Lower:       a.CNI.Master,
		Mode:        a.CNI.Mode,
		MACAddress:  a.Interface.MacAddress,
	}
	res, err := binding.AttachMacvtap(r.topo.Node, r.pod, spec, r.p.log)
	if err != nil {
		return guestNIC{}, err
	}
	r.ledger.Track(cleanup.Resource{Kind: cleanup.KindStep, Name: "macvtap DEL " + res.PodInterface}, func(context.Context) error {
		return binding.DetachMacvtap(r.pod, a.Network.Name)
	})

	file, _, err := binding.OpenMacvtap(r.pod, a.Network.Name)
	if err != nil {
		return guestNIC{}, err
	}
	// macvtap-cni does no IPAM, so the pod cache holds no address.
	r.evidence.ReportedStatus = append(r.evidence.ReportedStatus, verdict.StatusInterface{Name: a.Network.Name, MAC: res.GuestMAC.String()})
	return guestNIC{attachment: a, tap: file, mac: res.GuestMAC, podLink: res.PodInterface, tapName: res.PodInterface}, nil
}

// bindPodNetwork gives the guest a NIC for the VMI's pod network so that the
// NICs after it get the names a KubeVirt guest gives them.
//
// NOTE: the masquerade binding of the pod network (NAT through k6t-eth0 and
// virt-launcher's DHCP) is not rebuilt: the NIC sits on a tap with nothing
// behind it. Scenarios probe only secondary networks.
func (r *run) bindPodNetwork(a scenario.Attachment) (guestNIC, error) {
	name := "tap0"
	h, err := link.NewHandle(r.pod)
	if err != nil {
		return guestNIC{}, err
	}
	defer h.Close()
	if err := link.AddTap(h, name, link.TapOptions{Owner: binding.NonRootUID, Group: binding.NonRootUID}); err != nil {
		return guestNIC{}, err
	}
	if err := link.SetUp(h, name); err != nil {
		return guestNIC{}, err
	}
	tap, err := r.openTap(name)
	if err != nil {
		return guestNIC{}, err
	}
	mac := a.MAC
	if mac == nil {
		// KubeVirt's masquerade binding gives the guest the pod's eth0 MAC
		// unless the spec sets one. A locally administered MAC replaces it
		// here because no eth0 exists.
		mac = net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x00, byte(a.Index + 1)}
	}
	return guestNIC{attachment: a, tap: tap, mac: mac, podLink: name, tapName: name}, nil
}

func (r *run) openTap(name string) (*os.File, error) {
	h, err := link.NewHandle(r.pod)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	tap, err := link.OpenTap(h, name)
	if err != nil {
		return nil, err
	}
	r.ledger.Track(cleanup.Resource{Kind: cleanup.KindStep, Name: "close tap " + name}, func(context.Context) error {
		return tap.Close()
	})
	return tap, nil
}

// bootGuest writes the NoCloud seed as virt-launcher would, with the
// harness's evidence script joined to the user-data, boots the guest and
// waits for its network evidence.
func (r *run) bootGuest(ctx context.Context) error {
	nonce := guest.NewNonce()
	seedDir := filepath.Join(r.ledger.Dir(), "seed")
	if err := os.MkdirAll(seedDir, 0o700); err != nil {
		return err
	}
	seed, err := cloudinit.WriteSeed(ctx, seedDir, r.s.VMI, cloudinit.WithHarnessScript(guest.FinalEvidenceScript(nonce)))
	if err != nil {
		return err
	}

	var nics []guest.NIC
	for _, n := range r.nics {
		nics = append(nics, guest.NIC{Tap: n.tap, MAC: n.mac})
	}
	cfg := guest.Config{
		Name:      r.s.VMI.Name,
		Image:     r.p.image,
		Seed:      seed,
		NICs:      nics,
		CPUs:      r.p.guestCPUs,
		MemoryMiB: r.memoryMiB(),
		Ledger:    r.ledger,
		Log:       r.p.log,
		Nonce:     nonce,
	}
	r.p.log.Info("booting the guest", "vmi", r.s.VMI.Name, "nics", len(nics), "cpus", cfg.CPUs, "memoryMiB", cfg.MemoryMiB)
	vm, err := guest.Start(ctx, cfg)
	if err != nil {
		return err
	}
	r.vm = vm

	evidence, err := vm.WaitEvidence(ctx, guest.StageNetwork, networkEvidenceTimeout)
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		// The verdict names the missing report as its cause; the run itself
		// goes on to probe.
		r.evidence.GuestError = err.Error()
		r.p.log.Warn("no network evidence from the guest", "vmi", r.s.VMI.Name, "error", err)
		return nil
	}
	r.evidence.Guest = clusters.GuestReport(evidence)
	return nil
}

// memoryMiB returns the VMI's guest memory, capped so that three TCG guests
// fit beside each other.
func (r *run) memoryMiB() int {
	memory := r.s.VMI.Spec.Domain.Memory
	if memory == nil || memory.Guest == nil {
		return 0
	}
	mib := int(memory.Guest.Value() / (1 << 20))
	if mib > r.p.maxMemoryMiB {
		mib = r.p.maxMemoryMiB
	}
	return mib
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// scenarioArtifacts returns the scenario's artifacts directory, or "" when
// the provider keeps none. saveArtifacts creates it.
func (p *Provider) scenarioArtifacts(s *scenario.Scenario) string {
	if p.artifactsDir == "" {
		return ""
	}
	return filepath.Join(p.artifactsDir, "local", s.Name)
}

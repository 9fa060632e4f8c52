package kind

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/vmnet-e2e/vmnet-e2e/framework/kvnames"
	"github.com/vmnet-e2e/vmnet-e2e/framework/netns"
	"github.com/vmnet-e2e/vmnet-e2e/framework/report"
	"github.com/vmnet-e2e/vmnet-e2e/framework/scenario"
	"github.com/vmnet-e2e/vmnet-e2e/framework/verdict"
)

// Observe implements clusters.Provider. It creates the scenario's objects as
// written (after joining the evidence part into the user-data) with
// fieldValidation=Strict, waits for the VMI, reads the guest's report from
// its serial console log, reads the launcher pod's links, probes from an
// endpoint on the parent's segment, and deletes what it created. It fills
// every Evidence field the local provider fills, with the same meaning.
func (p *Provider) Observe(ctx context.Context, s *scenario.Scenario, phases *report.Phases) (*verdict.Evidence, error) {
	p.mu.Lock()
	st := p.state
	p.mu.Unlock()
	if st == nil {
		return nil, errors.New("kind: Observe before Prepare or Attach")
	}
	if phases == nil {
		phases = &report.Phases{}
	}
	o := &observation{p: p, st: st, s: s, phases: phases, evidence: &verdict.Evidence{}}

	// one scenario at a time on the cluster
	unlock, err := st.lock.acquire(ctx, p.o.log)
	if err != nil {
		return nil, err
	}
	defer unlock()

	err = o.run(ctx)
	o.finish(context.WithoutCancel(ctx), err)
	if err != nil {
		return o.evidence, fmt.Errorf("kind: scenario %s: %w", s.Name, err)
	}
	return o.evidence, nil
}

// observation is the state of one Observe call.
type observation struct {
	p        *Provider
	st       *runState
	s        *scenario.Scenario
	phases   *report.Phases
	evidence *verdict.Evidence

	target    Target
	targetErr error
	objs      []*unstructured.Unstructured
	created   []*unstructured.Unstructured
	createdNS []string
	endpoint  *Endpoint
	vmi       *kubevirtv1.VirtualMachineInstance
	pod       string
	console   *syncBuffer
}

func (o *observation) run(ctx context.Context) error {
	e := o.evidence

	// what to probe (the server may still reject the scenario, so a missing
	// target is an error only once the objects exist)
	o.target, o.targetErr = o.p.o.resolver(o.s)
	if o.targetErr == nil {
		o.fillTarget()
	}

	// the objects, as the user wrote them, with the evidence part
	objs, err := scenarioObjects(o.s)
	if err != nil {
		return err
	}
	if _, err := joinEvidencePart(objs, o.p.o.joiner); err != nil {
		return err
	}
	o.objs = objs

	// create under Strict validation
	var res applyResult
	err = o.phases.Time("create", func() error {
		if err := o.ensureNamespaces(ctx); err != nil {
			return err
		}
		var err error
		res, err = o.st.client.createObjects(ctx, objs)
		o.created = res.Created
		return err
	})
	e.Warnings = append(e.Warnings, res.Warnings...)
	if err != nil {
		return err
	}
	if res.Rejection != nil {
		e.Rejection = res.Rejection
		o.recordWarnWarnings(ctx)
		return nil
	}
	if o.targetErr != nil {
		return o.targetErr
	}

	// the external endpoint on the parent's segment
	o.endpoint, err = o.st.wiring.ConnectEndpoint(ctx, o.st.ledger, o.st.runID, e.Parent, o.target.Peer)
	if err != nil {
		return err
	}

	// the VMI, Ready
	err = o.phases.Time("vmi-ready", func() error {
		var err error
		o.vmi, err = WaitVMIReady(ctx, o.st.client.ctrl, o.p.o.log, o.namespace(), o.vmiName(), o.p.o.timeouts.VMIReady, o.p.o.timeouts.Poll)
		if o.vmi != nil {
			o.pod = o.launcherPod(ctx)
		}
		return err
	})
	if err != nil {
		// The guest never ran, so no report can come. The state the wait saw
		// shows why.
		e.GuestError = err.Error()
		return err
	}
	if o.pod == "" {
		return fmt.Errorf("VMI %s/%s is Ready but no running launcher pod carries label %s=%s", o.namespace(), o.vmiName(), kubevirtv1.CreatedByLabel, o.vmi.UID)
	}
	e.GuestMAC = guestMAC(o.vmi, o.target)

	// the guest's own report, from its serial console
	if err := o.phases.Time("guest-report", func() error { return o.readGuestReport(ctx) }); err != nil {
		return err
	}

	// the launcher pod's links and the MACs on the parent
	if err := o.phases.Time("pod-links", func() error { return o.readLinks(ctx) }); err != nil {
		return err
	}

	// probes from outside the pod
	return o.phases.Time("probe", func() error { return o.probe(ctx) })
}

func (o *observation) fillTarget() {
	e, t := o.evidence, o.target
	e.CNI = t.Attachment.CNI.Type
	e.Binding = string(t.Attachment.Binding)
	e.Network = t.Attachment.Network.Name
	e.Probe = t.Probe.String()
	e.Peer = t.Peer.String()
	if t.Attachment.NAD != nil {
		if np, err := parentOf(t.Attachment.NAD, t.Attachment.CNI); err == nil {
			e.Parent = np.parent
		}
	}
}

func (o *observation) namespace() string {
	if o.s.VMI != nil {
		return o.s.VMI.Namespace
	}
	for _, obj := range o.objs {
		if obj.GetKind() == "VirtualMachine" || obj.GetKind() == "VirtualMachineInstance" {
			return obj.GetNamespace()
		}
	}
	return "default"
}

func (o *observation) vmiName() string {
	for _, obj := range o.objs {
		if obj.GetKind() == "VirtualMachine" || obj.GetKind() == "VirtualMachineInstance" {
			return obj.GetName()
		}
	}
	return ""
}

// ensureNamespaces creates the namespaces the objects name that do not
// exist yet, and finish deletes them again.
func (o *observation) ensureNamespaces(ctx context.Context) error {
	seen := map[string]bool{}
	for _, obj := range o.objs {
		name := obj.GetNamespace()
		if name == "" || seen[name] {
			continue
		}
		seen[name] = true
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
		err := o.st.client.ctrl.Create(ctx, ns)
		switch {
		case err == nil:
			o.createdNS = append(o.createdNS, name)
		case !apierrors.IsAlreadyExists(err):
			return fmt.Errorf("create namespace %s: %w", name, err)
		}
	}
	return nil
}

// recordWarnWarnings sends the objects again under Warn to learn the
// warnings the server gives instead of the rejection.
func (o *observation) recordWarnWarnings(ctx context.Context) {
	id, err := randomHex(3)
	if err != nil {
		o.p.o.log.Warn("no Warn pass", "error", err)
		return
	}
	scratch := "vmnet-warn-" + o.st.runID + "-" + id
	warnings, err := o.st.client.warnDryRun(ctx, o.objs, scratch)
	o.evidence.Warnings = append(o.evidence.Warnings, warnings...)
	if err != nil {
		// The dry run can fail for reasons other than fields, such as a
		// webhook that rejects dry runs. The warnings received still count.
		o.p.o.log.Warn("Warn dry run failed; warnings may be incomplete", "scenario", o.s.Name, "error", err)
	}
}

// launcherPod returns the name of the VMI's running launcher pod, the newest
// one when several exist (a migration target).
func (o *observation) launcherPod(ctx context.Context) string {
	pods, err := launcherPods(ctx, o.st.client.ctrl, o.vmi)
	if err != nil {
		return ""
	}
	for _, pod := range pods {
		if pod.Status.Phase == corev1.PodRunning {
			return pod.Name
		}
	}
	return ""
}

// guestMAC returns the MAC KubeVirt reports for the probed interface, or
// the spec's macAddress when the status has none yet.
func guestMAC(vmi *kubevirtv1.VirtualMachineInstance, t Target) string {
	for _, iface := range vmi.Status.Interfaces {
		if iface.Name == t.Attachment.Network.Name && iface.MAC != "" {
			return iface.MAC
		}
	}
	if t.Attachment.MAC != nil {
		return t.Attachment.MAC.String()
	}
	return ""
}

// readGuestReport follows the console log until the parser returns the
// guest's report or the wait ends. A missing report is evidence
// (GuestError), not an Observe failure.
func (o *observation) readGuestReport(ctx context.Context) error {
	if o.p.o.parser == nil {
		return errors.New("no EvidenceParser configured (use WithEvidenceParser)")
	}
	timeout := o.p.o.timeouts.GuestReport
	guestCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	stream, err := o.st.client.streamConsoleLog(guestCtx, o.namespace(), o.pod)
	if err != nil {
		return err
	}
	defer stream.Close()
	o.console = &syncBuffer{}
	o.p.o.log.Info("waiting for the guest's report on its serial console", "pod", o.pod, "timeout", timeout.String())

	guest, err := o.p.o.parser(io.TeeReader(stream, o.console))
	switch {
	case err == nil && guest != nil:
		o.evidence.Guest = guest
	case guestCtx.Err() != nil && ctx.Err() == nil:
		o.evidence.GuestError = fmt.Sprintf("no guest report within %s on container %s of pod %s/%s: %v", timeout, consoleLogContainer, o.namespace(), o.pod, err)
	case err != nil:
		if ctx.Err() != nil {
			return ctx.Err()
		}
		o.evidence.GuestError = fmt.Sprintf("guest report unreadable from container %s of pod %s/%s: %v", consoleLogContainer, o.namespace(), o.pod, err)
	default:
		o.evidence.GuestError = "the parser returned no report and no error"
	}
	return nil
}

// readLinks fills PodLinks from the compute container and ParentMACs from
// the node that runs the VMI and from the pod.
func (o *observation) readLinks(ctx context.Context) error {
	client, ns := o.st.client, o.namespace()
	linkJSON, err := client.execInPod(ctx, ns, o.pod, computeContainer, ipLinkJSON...)
	if err != nil {
		return err
	}
	addrJSON, err := client.execInPod(ctx, ns, o.pod, computeContainer, ipAddrJSON...)
	if err != nil {
		return err
	}
	if o.evidence.PodLinks, err = ParsePodLinks(linkJSON, addrJSON); err != nil {
		return err
	}

	// The linux-bridge plugin creates no macvlan or macvtap, so ParentMACs
	// stays nil, as its doc comment requires.
	if o.evidence.CNI != "macvlan" && o.evidence.CNI != "macvtap" {
		return nil
	}
	nodeNS, err := o.nodeNamespace(ctx)
	if err != nil {
		return err
	}
	onNode, parentIndex, err := nodeLinksOnParent(nodeNS, o.evidence.Parent)
	if err != nil {
		return err
	}
	macs := append([]string{}, onNode...)
	macs = append(macs, macsOnParent(o.evidence.PodLinks, o.evidence.Parent, parentIndex, false)...)
	o.evidence.ParentMACs = macs
	return nil
}

func (o *observation) nodeNamespace(ctx context.Context) (*netns.Namespace, error) {
	node := o.vmi.Status.NodeName
	path, err := o.p.resolveNode(o.st)(ctx, node)
	if err != nil {
		return nil, err
	}
	return &netns.Namespace{Name: node, Path: path}, nil
}

// nodeLinksOnParent returns the MACs of the macvlan and macvtap links whose
// lower link is parent in the node's namespace (macvtap-cni's device plugin
// creates its macvtap links there before the CNI moves one into the pod),
// and the parent's index.
func nodeLinksOnParent(node *netns.Namespace, parent string) ([]string, int, error) {
	h, err := node.Netlink()
	if err != nil {
		return nil, 0, fmt.Errorf("node %s: %w", node.Name, err)
	}
	defer h.Close()
	parentLink, err := h.LinkByName(parent)
	if err != nil {
		return nil, 0, fmt.Errorf("node %s: find parent %s: %w", node.Name, parent, err)
	}
	links, err := h.LinkList()
	if err != nil {
		return nil, 0, fmt.Errorf("node %s: list links: %w", node.Name, err)
	}
	var macs []string
	for _, l := range links {
		a := l.Attrs()
		if (l.Type() == "macvlan" || l.Type() == "macvtap") && a.ParentIndex == parentLink.Attrs().Index && a.NetNsID < 0 {
			macs = append(macs, a.HardwareAddr.String())
		}
	}
	return macs, parentLink.Attrs().Index, nil
}

// probe runs the prober from the endpoint.
func (o *observation) probe(ctx context.Context) error {
	if o.p.o.prober == nil {
		return errors.New("no Prober configured (use WithProber)")
	}
	e := o.evidence
	mac, err := net.ParseMAC(e.GuestMAC)
	if err != nil {
		return fmt.Errorf("guest MAC %q of network %q: %w", e.GuestMAC, e.Network, err)
	}

	podLink := kvnames.BridgedNIC(e.Network)
	if o.target.Attachment.Binding == scenario.BindingMacvtap {
		// The macvtap binding hands the pod link itself to qemu.
		podLink = kvnames.PodInterface(e.Network)
	}
	req := ProbeRequest{
		Namespace: o.endpoint.Namespace, Interface: o.endpoint.Interface, Peer: o.target.Peer,
		Target: o.target.Probe, GuestMAC: mac, PodLink: podLink,
		PodLinkReceived: o.podCounter(podLink, rxPackets),
	}
	if o.p.o.stats != nil {
		nodeNS, err := o.nodeNamespace(ctx)
		if err != nil {
			return err
		}
		parent := e.Parent
		req.ParentOtherhostDropped = func(context.Context) (uint64, error) { return o.p.o.stats(nodeNS, parent) }
	}

	result, err := o.p.o.prober.Probe(ctx, req)
	if err != nil {
		return fmt.Errorf("probe %s from %s: %w", o.target.Probe, o.target.Peer, err)
	}
	e.ARP, e.Echo, e.Unicast = result.ARP, result.Echo, result.Unicast
	return nil
}

type packetCounter int

const (
	rxPackets packetCounter = iota
	txPackets
)

// podCounter reads a link's packet counter in the compute container with
// `ip -s -j link show dev NAME`.
func (o *observation) podCounter(link string, which packetCounter) Counter {
	return func(ctx context.Context) (uint64, error) {
		out, err := o.st.client.execInPod(ctx, o.namespace(), o.pod, computeContainer, "ip", "-s", "-j", "link", "show", "dev", link)
		if err != nil {
			return 0, err
		}
		rx, tx, err := parseLinkPackets(out)
		if which == rxPackets {
			return rx, err
		}
		return tx, err
	}
}

// finish writes artifacts when asked, when Observe failed or when the
// verdict differs from the expectation, then deletes what the scenario
// created: the VM or VMI first, then, once its launcher pod is gone, the
// NADs, the endpoint and the namespaces Observe created.
func (o *observation) finish(ctx context.Context, runErr error) {
	log := o.p.o.log
	if o.wantArtifacts(runErr) {
		a := artifactSet{
			dir: filepath.Join(o.p.o.artifactsDir, o.s.Name), namespace: o.namespace(), vmi: o.vmiName(),
			pod: o.pod, evidence: o.evidence,
		}
		if o.s.VM != nil {
			a.vm = o.vmiName()
		}
		if o.console != nil {
			a.console = o.console.Bytes()
		}
		if runErr != nil {
			a.failure = runErr.Error()
		}
		if err := o.st.client.writeArtifacts(ctx, a); err != nil {
			log.Warn("some artifacts are missing", "scenario", o.s.Name, "dir", a.dir, "error", err)
		} else {
			log.Info("artifacts written", "scenario", o.s.Name, "dir", a.dir)
		}
	}

	_ = o.phases.Time("delete", func() error {
		err := o.deleteCreated(ctx)
		if err != nil {
			log.Warn("cleanup of scenario objects failed", "scenario", o.s.Name, "error", err)
		}
		return err
	})
	if err := o.endpoint.Close(ctx); err != nil {
		log.Warn("endpoint cleanup failed", "scenario", o.s.Name, "error", err)
	}
}

func (o *observation) wantArtifacts(runErr error) bool {
	switch {
	case o.p.o.artifactsAlways || runErr != nil:
		return true
	case o.s.Spec.Expect == nil:
		return false
	}
	return verdict.Compare(o.s.Name, *o.s.Spec.Expect, verdict.Derive(o.evidence), o.evidence) != nil
}

func (o *observation) deleteCreated(ctx context.Context) error {
	client, t := o.st.client, o.p.o.timeouts
	var kubevirtObjs, others []*unstructured.Unstructured
	for _, obj := range o.created {
		if obj.GetKind() == "VirtualMachine" || obj.GetKind() == "VirtualMachineInstance" {
			kubevirtObjs = append(kubevirtObjs, obj)
		} else {
			others = append(others, obj)
		}
	}

	var errs []error
	if err := client.deleteObjects(ctx, kubevirtObjs); err != nil {
		errs = append(errs, err)
	}
	if o.vmi != nil && o.vmi.UID != "" {
		labels := map[string]string{kubevirtv1.CreatedByLabel: string(o.vmi.UID)}
		if err := waitPodsGone(ctx, client.ctrl, o.p.o.log, o.namespace(), labels, t.Delete, t.Poll); err != nil {
			errs = append(errs, err)
		}
	}
	if err := client.deleteObjects(ctx, others); err != nil {
		errs = append(errs, err)
	}
	for _, name := range o.createdNS {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if err := client.ctrl.Delete(ctx, ns); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete namespace %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

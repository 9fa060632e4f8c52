package kind

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"

	"github.com/vmnet-e2e/vmnet-e2e/framework/kvnames"
	"github.com/vmnet-e2e/vmnet-e2e/framework/scenario"
)

// planRunID stands for the run ID in a plan made without one.
const planRunID = "RUN"

// Plan is every step a run takes, in order, with every version, URL,
// sha256 and object. NewPlan computes it from versions, scenarios and
// options alone: no Docker, no cluster, no network. Prepare executes the
// same plan, so the dry run shows what runs.
type Plan struct {
	ClusterName    string
	Keep           bool
	RunID          string
	Arch           string
	CacheDir       string
	ArtifactsDir   string
	KubeconfigPath string
	Emulation      Emulation
	Timeouts       Timeouts
	Versions       Versions

	Cluster *v1alpha4.Cluster
	Nodes   []string
	Parents []Parent
	Wiring  Wiring

	// Plugins are copied from the CNI plugins archive. SkippedPlugins maps
	// the other plugin types the NADs name to their provider.
	Plugins        []string
	SkippedPlugins map[string]string

	CNIPlugins Component
	Multus     Component
	// Macvtap is nil when no NAD requests a macvtap resource.
	Macvtap          *Component
	MacvtapConfigMap *unstructured.Unstructured
	KubeVirt         Component
	KubeVirtSettings KubeVirtSettings
	// KubeVirtCR is rendered with useEmulation as Emulation decides. Under
	// EmulationAuto it shows useEmulation: true, which Prepare drops when
	// the nodes have /dev/kvm.
	KubeVirtCR *unstructured.Unstructured

	Scenarios []ScenarioPlan
	// Notes are warnings about the versions or scenarios.
	Notes []string
}

// ScenarioPlan is the part of a plan for one scenario.
type ScenarioPlan struct {
	Name   string
	Source string
	// Skip is the reason the provider skips the scenario, or empty.
	Skip string
	// Objects are the documents the run creates, in file order, after the
	// evidence part was joined into the user-data.
	Objects []*unstructured.Unstructured
	// Joined reports whether the evidence part was added, and JoinNote gives
	// the reason when it was not.
	Joined   bool
	JoinNote string
	Target   Target
	// TargetError is the reason no probe target could be chosen.
	TargetError string
}

// NewPlan computes the plan of a run. The options that matter are the
// cluster name, keep, workers, run ID, arch, cache and artifacts
// directories, kubeconfig path, emulation, timeouts, the user-data joiner
// and the target resolver. WithVersions overrides v.
func NewPlan(v Versions, scenarios []*scenario.Scenario, opts ...Option) (*Plan, error) {
	o := buildOptions(opts)
	if o.versions != nil {
		v = *o.versions
	}
	if err := v.Validate(); err != nil {
		return nil, err
	}
	runID := o.runID
	if runID == "" {
		runID = planRunID
	}
	cacheDir := o.cacheDir
	if cacheDir == "" {
		dir, err := DefaultCacheDir()
		if err != nil {
			return nil, err
		}
		cacheDir = dir
	}

	p := &Plan{
		ClusterName: o.clusterName, Keep: o.keep, RunID: runID, Arch: o.arch,
		CacheDir: cacheDir, ArtifactsDir: o.artifactsDir, KubeconfigPath: o.kubeconfigPath,
		Emulation: o.emulation, Timeouts: o.timeouts, Versions: v,
	}

	// cluster and nodes
	cfg, err := ClusterConfig(v, o.clusterName, o.workers)
	if err != nil {
		return nil, err
	}
	p.Cluster, p.Nodes = cfg, NodeNames(cfg)

	// parent bridges and their wiring
	runnable := make([]*scenario.Scenario, 0, len(scenarios))
	for _, s := range scenarios {
		if unsupportedReason(s) == "" {
			runnable = append(runnable, s)
		}
	}
	if p.Parents, err = Parents(runnable); err != nil {
		return nil, err
	}
	if p.Wiring, err = PlanWiring(runID, p.Parents, p.Nodes); err != nil {
		return nil, err
	}

	// components
	types, err := PluginTypes(runnable)
	if err != nil {
		return nil, err
	}
	p.Plugins, p.SkippedPlugins = PluginsToInstall(types)
	p.CNIPlugins, p.Multus, p.KubeVirt = cniPluginsComponent(v, o.arch), multusComponent(v), kubevirtComponent(v)
	if resources := MacvtapResources(p.Parents); len(resources) > 0 {
		c := macvtapComponent(v)
		p.Macvtap = &c
		// The DaemonSet's namespace comes from the downloaded manifest.
		// macvtap-cni v0.13.1 uses "default", and Prepare reads it again.
		if p.MacvtapConfigMap, err = MacvtapConfigMap(macvtapNamespace, resources); err != nil {
			return nil, err
		}
	}
	p.KubeVirtSettings = KubeVirtSettingsFor(runnable, o.emulation != EmulationOff)
	p.KubeVirtCR = KubeVirtCR(v, p.KubeVirtSettings)
	if o.emulation != EmulationOff && emulationBroken(v.KubeVirt.Version) {
		p.Notes = append(p.Notes, fmt.Sprintf("KubeVirt %s cannot start VMs under software emulation (virt-handler fails to build cgroup device rules without /dev/kvm; fixed in v1.8.1): a run on nodes without /dev/kvm fails in Prepare", v.KubeVirt.Version))
	}

	// scenarios
	for _, s := range scenarios {
		sp, err := planScenario(s, o)
		if err != nil {
			return nil, err
		}
		p.Scenarios = append(p.Scenarios, sp)
	}
	return p, nil
}

// macvtapNamespace is the namespace of the DaemonSet in macvtap-cni
// v0.13.1's manifests/macvtap.yaml.
const macvtapNamespace = "default"

func planScenario(s *scenario.Scenario, o options) (ScenarioPlan, error) {
	sp := ScenarioPlan{Name: s.Name, Source: s.Source, Skip: unsupportedReason(s)}
	objs, err := scenarioObjects(s)
	if err != nil {
		return ScenarioPlan{}, err
	}
	sp.Objects = objs
	if sp.Skip != "" {
		return sp, nil
	}

	if o.joiner == nil {
		sp.JoinNote = "no UserDataJoiner configured: objects shown as written; a run fails without one"
	} else {
		joined, err := joinEvidencePart(objs, o.joiner)
		if err != nil {
			return ScenarioPlan{}, err
		}
		sp.Joined = joined
		if !joined {
			sp.JoinNote = "the user-data already carries the evidence part"
		}
	}

	if s.VMI != nil {
		target, err := o.resolver(s)
		if err != nil {
			sp.TargetError = err.Error()
		} else {
			sp.Target = target
		}
	}
	return sp, nil
}

func cniPluginsComponent(v Versions, arch string) Component {
	url := v.CNIPluginsURL(arch)
	c := Component{Name: "CNI plugins", Version: v.CNIPlugins.Version, URL: url, SHA256: v.CNIPlugins.SHA256[arch]}
	if c.SHA256 != "" {
		c.Check = "sha256 pinned in clusters/versions.yaml"
	} else {
		c.Check = "sha256 published at " + url + ".sha256"
	}
	return c
}

func multusComponent(v Versions) Component {
	return Component{
		Name: "Multus thick plugin", Version: v.Multus.Version, URL: v.MultusManifestURL(), SHA256: v.Multus.ManifestSHA256,
		Check: pinnedOrRecorded(v.Multus.ManifestSHA256),
		Changes: []string{
			"image of DaemonSet kube-system/kube-multus-ds (containers and init containers) -> " + v.MultusImage(),
			"memory limit of container kube-multus -> " + multusMemoryLimit,
		},
	}
}

func macvtapComponent(v Versions) Component {
	return Component{
		Name: "macvtap-cni", Version: v.MacvtapCNI.Version, URL: v.MacvtapManifestURL(), SHA256: v.MacvtapCNI.ManifestSHA256,
		Check:   pinnedOrRecorded(v.MacvtapCNI.ManifestSHA256),
		Changes: []string{"image of DaemonSet macvtap-cni (containers and init containers) -> " + v.MacvtapImage()},
	}
}

func kubevirtComponent(v Versions) Component {
	return Component{
		Name: "KubeVirt operator", Version: v.KubeVirt.Version, URL: v.OperatorURL(), SHA256: v.KubeVirt.OperatorSHA256,
		Check: pinnedOrRecorded(v.KubeVirt.OperatorSHA256),
	}
}

func pinnedOrRecorded(sum string) string {
	if sum != "" {
		return "sha256 pinned in clusters/versions.yaml"
	}
	return "no sha256 published: the first download's sha256 is recorded in the cache and later runs must match it"
}

// Write prints the plan as numbered steps, each with the equivalent
// commands, URLs, digests and objects.
func (p *Plan) Write(w io.Writer) error {
	pw := &planWriter{w: w}
	pw.line("# vmnet-e2e kind provider: dry run")
	pw.line("# Nothing is created, started or downloaded. A real run takes these steps in this order.")
	pw.line("")
	for _, note := range p.Notes {
		pw.line("NOTE: " + note)
	}
	if len(p.Notes) > 0 {
		pw.line("")
	}

	p.writePreflight(pw)
	p.writeCluster(pw)
	p.writeWiring(pw)
	p.writeCNIPlugins(pw)
	p.writeMultus(pw)
	p.writeMacvtap(pw)
	p.writeKubeVirt(pw)
	p.writeScenarios(pw)
	p.writeTeardown(pw)
	return pw.err
}

type planWriter struct {
	w   io.Writer
	err error
}

func (pw *planWriter) line(format string, args ...any) {
	if pw.err != nil {
		return
	}
	_, pw.err = fmt.Fprintf(pw.w, format+"\n", args...)
}

func (pw *planWriter) document(title string, objs ...*unstructured.Unstructured) {
	data, err := EncodeManifest(objs)
	if err != nil {
		pw.err = errors.Join(pw.err, err)
		return
	}
	pw.yaml(title, data)
}

func (pw *planWriter) yaml(title string, data []byte) {
	pw.line("   --- %s", title)
	for _, l := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		pw.line("   | %s", l)
	}
}

func (p *Plan) writePreflight(pw *planWriter) {
	pw.line("1. Preflight")
	pw.line("   docker info --format '{{.ServerVersion}}'    must answer within %s; the run must be root", p.Timeouts.Preflight)
	pw.line("")
}

func (p *Plan) writeCluster(pw *planWriter) {
	pw.line("2. Cluster %q (sigs.k8s.io/kind v0.33.0, pkg/cluster)", p.ClusterName)
	pw.line("   if Provider.List() has %q: reuse it, never delete it", p.ClusterName)
	pw.line("   else Provider.Create(%q, CreateWithV1Alpha4Config(config below), CreateWithWaitForReady(%s), CreateWithKubeconfigPath(%q))",
		p.ClusterName, p.Timeouts.ControlPlane, p.KubeconfigPath)
	pw.line("   node image %s", p.Versions.Kind.NodeImage)
	pw.line("   nodes %s", strings.Join(p.Nodes, ", "))
	pw.line("   write Provider.KubeConfig(%q, false) to %s", p.ClusterName, p.KubeconfigPath)
	pw.line("   wait up to %s for %d nodes Ready", p.Timeouts.Nodes, len(p.Nodes))
	data, err := MarshalClusterConfig(p.Cluster)
	if err != nil {
		pw.err = errors.Join(pw.err, err)
		return
	}
	pw.yaml("kind cluster config (kind.x-k8s.io/v1alpha4)", data)
	pw.line("")
}

func (p *Plan) writeWiring(pw *planWriter) {
	pw.line("3. Parent bridges, from the CI host as root (netlink; the equivalent ip commands are shown)")
	if len(p.Wiring.Segments) == 0 {
		pw.line("   none: no scenario names a parent")
		pw.line("")
		return
	}
	hub := p.Wiring.Hub
	pw.line("   ip netns add %s", hub)
	for _, seg := range p.Wiring.Segments {
		pw.line("   ip -n %s link add %s type bridge && ip -n %s link set %s up    # parent %s", hub, seg.HubBridge, hub, seg.HubBridge, seg.Parent)
		for _, user := range p.parentUsers(seg.Parent) {
			pw.line("      named by %s", user)
		}
	}
	for _, node := range p.Nodes {
		pw.line("   node %s: NODE_PID=$(docker inspect --format '{{.State.Pid}}' %s)", node, node)
		for _, seg := range p.Wiring.Segments {
			link, _ := seg.link(node)
			pw.line("      nsenter --net=/proc/$NODE_PID/ns/net ip link add %s type bridge    # unless it exists as a bridge", seg.Parent)
			pw.line("      ip -n %s link add %s master %s type veth peer name %s netns $NODE_PID", hub, link.HubVeth, seg.HubBridge, link.NodeVeth)
			pw.line("      ip -n %s link set %s up", hub, link.HubVeth)
			pw.line("      nsenter --net=/proc/$NODE_PID/ns/net ip link set %s master %s up; ... ip link set %s up", link.NodeVeth, seg.Parent, seg.Parent)
		}
	}
	pw.line("")
}

func (p *Plan) parentUsers(name string) []string {
	for _, parent := range p.Parents {
		if parent.Name == name {
			return parent.Users
		}
	}
	return nil
}

func (p *Plan) cachePath(url string) string {
	path, err := (&Cache{Dir: p.CacheDir}).pathFor(url)
	if err != nil {
		return "(invalid URL)"
	}
	return path
}

func (p *Plan) writeComponent(pw *planWriter, c Component) {
	pw.line("   download %s", c.URL)
	pw.line("      version %s; %s", c.Version, c.Check)
	if c.SHA256 != "" {
		pw.line("      sha256 %s", c.SHA256)
	}
	pw.line("      cached at %s", p.cachePath(c.URL))
	for _, change := range c.Changes {
		pw.line("   change: %s", change)
	}
}

func (p *Plan) writeCNIPlugins(pw *planWriter) {
	pw.line("4. CNI plugins into %s on every node", CNIBinDir)
	if len(p.Plugins) == 0 {
		pw.line("   nothing to install: the NADs name no plugin missing from the nodes")
	} else {
		p.writeComponent(pw, p.CNIPlugins)
		pw.line("   install %s from the archive (%s)", strings.Join(p.Plugins, ", "), p.Arch)
		for _, node := range p.Nodes {
			pw.line("      docker exec -i %s tar -x -C %s    # stdin: the selected binaries, mode 0755", node, CNIBinDir)
		}
	}
	skipped := make([]string, 0, len(p.SkippedPlugins))
	for t, reason := range p.SkippedPlugins {
		skipped = append(skipped, t+" ("+reason+")")
	}
	sort.Strings(skipped)
	for _, s := range skipped {
		pw.line("   left alone: %s", s)
	}
	pw.line("")
}

func (p *Plan) writeMultus(pw *planWriter) {
	pw.line("5. Multus %s, thick plugin", p.Multus.Version)
	p.writeComponent(pw, p.Multus)
	pw.line("   server-side apply, field manager %s", fieldOwner)
	pw.line("   wait up to %s for DaemonSet kube-system/kube-multus-ds to roll out", p.Timeouts.Rollout)
	pw.line("")
}

func (p *Plan) writeMacvtap(pw *planWriter) {
	if p.Macvtap == nil {
		pw.line("6. macvtap-cni: not installed, no NAD requests a %s resource", strings.TrimSuffix(scenario.MacvtapResourcePrefix, "/"))
		pw.line("")
		return
	}
	pw.line("6. macvtap-cni %s", p.Macvtap.Version)
	pw.line("   server-side apply the device plugin ConfigMap first (the DaemonSet reads it with envFrom):")
	pw.document("ConfigMap (rendered by the harness)", p.MacvtapConfigMap)
	p.writeComponent(pw, *p.Macvtap)
	pw.line("   server-side apply, field manager %s", fieldOwner)
	pw.line("   wait up to %s for DaemonSet %s/macvtap-cni to roll out", p.Timeouts.Rollout, macvtapNamespace)
	pw.line("")
}

func (p *Plan) writeKubeVirt(pw *planWriter) {
	pw.line("7. KubeVirt %s", p.KubeVirt.Version)
	p.writeComponent(pw, p.KubeVirt)
	pw.line("   server-side apply, field manager %s", fieldOwner)
	pw.line("   wait up to %s for Deployment %s/virt-operator to be Available", p.Timeouts.Rollout, KubeVirtNamespace)
	pw.line("   wait up to %s for CustomResourceDefinition kubevirts.kubevirt.io to be Established", p.Timeouts.Rollout)
	switch p.Emulation {
	case EmulationAuto:
		pw.line("   emulation auto: useEmulation stays only when `docker exec %s test -c /dev/kvm` fails", p.firstWorker())
	case EmulationOn:
		pw.line("   emulation on: useEmulation: true")
	case EmulationOff:
		pw.line("   emulation off: the nodes need /dev/kvm")
	}
	if p.KubeVirtSettings.NADResources && atLeast(p.Versions.KubeVirt.Version, 1, 9) {
		pw.line("   %s is disabled: a NAD requests a device plugin resource, and KubeVirt >= v1.9.0 enables this Beta gate by default", externalNetResourceInjection)
	}
	pw.document("KubeVirt CR (rendered by the harness; server-side apply)", p.KubeVirtCR)
	pw.line("   wait up to %s for KubeVirt %s/%s to be Available", p.Timeouts.KubeVirt, KubeVirtNamespace, KubeVirtName)
	pw.line("")
}

func (p *Plan) firstWorker() string {
	for i, n := range p.Cluster.Nodes {
		if n.Role == v1alpha4.WorkerRole {
			return p.Nodes[i]
		}
	}
	return p.Nodes[0]
}

func (p *Plan) writeScenarios(pw *planWriter) {
	pw.line("8. Scenarios, one at a time (parallel processes share a lock)")
	if len(p.Scenarios) == 0 {
		pw.line("   none")
	}
	for i, s := range p.Scenarios {
		pw.line("8.%d %s (%s)", i+1, s.Name, s.Source)
		if s.Skip != "" {
			pw.line("   skipped: %s", s.Skip)
			continue
		}
		p.writeTarget(pw, s)
		if s.JoinNote != "" {
			pw.line("   user-data: %s", s.JoinNote)
		} else {
			pw.line("   user-data: the evidence part is joined into the cloud-init userData")
		}
		pw.line("   create in file order with fieldValidation=Strict:")
		pw.document("objects", s.Objects...)
		pw.line("   on a strict decoding error: Evidence.Rejection from the server's message; the objects are sent again with")
		pw.line("      fieldValidation=Warn and dryRun=All in a scratch namespace for Evidence.Warnings; created objects are deleted")
		pw.line("   wait up to %s for the VMI to be Ready, then follow container %s of the launcher pod", p.Timeouts.VMIReady, consoleLogContainer)
		pw.line("   wait up to %s for the guest's evidence report on the console", p.Timeouts.GuestReport)
		pw.line("   in container %s: %s; %s", computeContainer, strings.Join(ipLinkJSON, " "), strings.Join(ipAddrJSON, " "))
		pw.line("   probe from the endpoint; read the parent's rx_otherhost_dropped in the VMI's node")
		pw.line("   artifacts to %s when Observe fails or the verdict differs from spec.expect",
			filepath.Join(p.ArtifactsDir, s.Name))
		pw.line("   delete the VM or VMI, wait up to %s for the launcher pod to be gone, delete the NADs, ip netns del the endpoint", p.Timeouts.Delete)
	}
	pw.line("")
}

func (p *Plan) writeTarget(pw *planWriter, s ScenarioPlan) {
	if s.TargetError != "" {
		pw.line("   probe target: none: %s", s.TargetError)
		return
	}
	t := s.Target
	network := t.Attachment.Network.Name
	pw.line("   probe %s on network %q (CNI %s, %s binding, pod link %s) from %s",
		t.Probe, network, t.Attachment.CNI.Type, t.Attachment.Binding, kvnames.PodInterface(network), t.Peer)
	if t.Attachment.NAD == nil {
		return
	}
	np, err := parentOf(t.Attachment.NAD, t.Attachment.CNI)
	if err != nil {
		return
	}
	seg, _ := p.Wiring.segment(np.parent)
	pw.line("   endpoint: ip netns add %s%s-ep<id>; ip -n %s link add e<id> master %s type veth peer name %s netns %s%s-ep<id>",
		hubNamespacePrefix, p.RunID, p.Wiring.Hub, seg.HubBridge, endpointInterface, hubNamespacePrefix, p.RunID)
	pw.line("      ip -n %s%s-ep<id> addr add %s dev %s; both ends up", hubNamespacePrefix, p.RunID, t.Peer, endpointInterface)
}

func (p *Plan) writeTeardown(pw *planWriter) {
	pw.line("9. Teardown")
	pw.line("   ip netns del %s    # destroys every veth pair of the wiring", p.Wiring.Hub)
	if p.Keep {
		pw.line("   keep cluster %q (WithKeep); delete the parent bridges the run created in its nodes", p.ClusterName)
	} else {
		pw.line("   Provider.Delete(%q, %q) unless the cluster existed before the run", p.ClusterName, p.KubeconfigPath)
	}
}

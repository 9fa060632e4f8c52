package kind

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/kind/pkg/cluster"
	"sigs.k8s.io/kind/pkg/cluster/nodes"
	"sigs.k8s.io/kind/pkg/cluster/nodeutils"

	"github.com/vmnet-e2e/vmnet-e2e/clusters"
	"github.com/vmnet-e2e/vmnet-e2e/framework/cleanup"
	"github.com/vmnet-e2e/vmnet-e2e/framework/scenario"
)

// Provider runs scenarios on a kind cluster with KubeVirt, Multus, the CNI
// plugins the scenarios name and, when needed, macvtap-cni.
type Provider struct {
	o        options
	versions Versions

	mu sync.Mutex
	// state is set by Prepare or Attach.
	state *runState
}

var _ clusters.Provider = (*Provider)(nil)

// runState is the state of a run, set up by Prepare or Attach.
type runState struct {
	runID   string
	plan    *Plan
	kind    *cluster.Provider
	client  *kubeClient
	wiring  Wiring
	ledger  *cleanup.Ledger
	ownLedg bool
	lock    scenarioLock
	// nodePaths caches each node's /proc/<pid>/ns/net, guarded by nodeMu.
	nodeMu    sync.Mutex
	nodePaths map[string]string

	// Only the process that ran Prepare sets these.
	built          *builtWiring
	createdCluster bool
}

// attachData is the data Prepare passes to the suite's other processes.
type attachData struct {
	DryRun         bool              `json:"dryRun,omitempty"`
	RunID          string            `json:"runID"`
	ClusterName    string            `json:"clusterName"`
	KubeconfigPath string            `json:"kubeconfigPath"`
	Wiring         Wiring            `json:"wiring"`
	NodePaths      map[string]string `json:"nodePaths"`
}

// New returns a provider. Without WithVersions it loads
// clusters/versions.yaml with the environment's overrides.
func New(opts ...Option) (*Provider, error) {
	o := buildOptions(opts)
	var v Versions
	if o.versions != nil {
		v = *o.versions
	} else {
		loaded, err := LoadVersions()
		if err != nil {
			return nil, err
		}
		v = loaded
	}
	if err := v.Validate(); err != nil {
		return nil, err
	}
	return &Provider{o: o, versions: v}, nil
}

// Name implements clusters.Provider.
func (p *Provider) Name() string { return "kind" }

// Skip implements clusters.Provider.
func (p *Provider) Skip(s *scenario.Scenario) string {
	if p.o.dryRun != nil {
		return "dry run: the plan was written, nothing runs"
	}
	if reason := unsupportedReason(s); reason != "" {
		return reason
	}
	p.mu.Lock()
	st := p.state
	p.mu.Unlock()
	if st == nil {
		return ""
	}
	for _, nad := range s.NADs {
		cni, _ := scenario.ParseCNIConfig(nad.Spec.Config)
		np, _ := parentOf(nad, cni)
		if _, ok := st.wiring.segment(np.parent); !ok {
			return fmt.Sprintf("parent %q is not wired: pass the scenario to WithScenarios so that Prepare wires it", np.parent)
		}
	}
	return ""
}

// Prepare implements clusters.Provider: it creates or reuses the cluster,
// wires the parent bridges, installs the CNI plugins, Multus, macvtap-cni
// when a NAD needs it, and KubeVirt. With WithDryRun it writes the plan and
// does nothing else. When a step fails it undoes the steps before it.
func (p *Provider) Prepare(ctx context.Context) ([]byte, error) {
	if p.o.dryRun != nil {
		plan, err := NewPlan(p.versions, p.o.scenarios, p.planOptions(p.o.runID)...)
		if err != nil {
			return nil, err
		}
		if err := plan.Write(p.o.dryRun); err != nil {
			return nil, fmt.Errorf("kind: write plan: %w", err)
		}
		return json.Marshal(attachData{DryRun: true})
	}

	// check Docker and root before creating anything
	if err := Preflight(ctx); err != nil {
		return nil, err
	}

	st, err := p.newRunState()
	if err != nil {
		return nil, err
	}
	data, err := p.prepare(ctx, st)
	if err != nil {
		p.o.log.Error("prepare failed, undoing its steps", "error", err)
		if rollbackErr := p.teardown(context.WithoutCancel(ctx), st); rollbackErr != nil {
			err = errors.Join(err, fmt.Errorf("kind: undo prepare: %w", rollbackErr))
		}
		return nil, err
	}

	p.mu.Lock()
	p.state = st
	p.mu.Unlock()
	return data, nil
}

func (p *Provider) planOptions(runID string) []Option {
	opts := []Option{
		WithClusterName(p.o.clusterName), WithKeep(p.o.keep), WithWorkers(p.o.workers), WithArtifactsDir(p.o.artifactsDir),
		WithKubeconfigPath(p.o.kubeconfigPath), WithEmulation(p.o.emulation), WithArch(p.o.arch), WithRunID(runID),
		WithTimeouts(p.o.timeouts), WithUserDataJoiner(p.o.joiner), WithTargetResolver(p.o.resolver),
	}
	if p.o.cacheDir != "" {
		opts = append(opts, WithCacheDir(p.o.cacheDir))
	}
	return opts
}

func (p *Provider) newRunState() (*runState, error) {
	runID := p.o.runID
	if runID == "" {
		id, err := randomHex(3)
		if err != nil {
			return nil, err
		}
		runID = "k" + id
	}
	st := &runState{
		runID:     runID,
		lock:      newScenarioLock(p.o.clusterName),
		nodePaths: map[string]string{},
		kind:      cluster.NewProvider(cluster.ProviderWithLogger(newKindLogger(p.o.log)), cluster.ProviderWithDocker()),
	}
	if err := p.openLedger(st, "kind-"+runID); err != nil {
		return nil, err
	}
	return st, nil
}

func (p *Provider) openLedger(st *runState, id string) error {
	if p.o.ledger != nil {
		st.ledger = p.o.ledger
		return nil
	}
	l, err := cleanup.NewLedger(id, p.o.log)
	if err != nil {
		return fmt.Errorf("kind: %w", err)
	}
	st.ledger, st.ownLedg = l, true
	return nil
}

func (p *Provider) prepare(ctx context.Context, st *runState) ([]byte, error) {
	log := p.o.log
	plan, err := NewPlan(p.versions, p.o.scenarios, p.planOptions(st.runID)...)
	if err != nil {
		return nil, err
	}
	st.plan = plan
	cache := &Cache{Dir: plan.CacheDir, Log: log}

	// create or reuse the cluster
	kindNodes, err := p.ensureCluster(ctx, st)
	if err != nil {
		return nil, err
	}
	if err := waitNodesReady(ctx, st.client.ctrl, log, len(kindNodes), p.o.timeouts.Nodes, p.o.timeouts.Poll); err != nil {
		return nil, err
	}

	// wire the parent bridges of the nodes that exist (a reused cluster may
	// have other nodes than the plan's)
	var nodeNames []string
	for _, n := range kindNodes {
		nodeNames = append(nodeNames, n.String())
	}
	slices.Sort(nodeNames)
	if st.wiring, err = PlanWiring(st.runID, plan.Parents, nodeNames); err != nil {
		return nil, err
	}
	st.built, err = st.wiring.Build(ctx, st.ledger, p.resolveNode(st), log)
	if err != nil {
		return nil, err
	}

	// components
	if err := p.installCNIPlugins(ctx, cache, plan, kindNodes); err != nil {
		return nil, err
	}
	if err := p.installMultus(ctx, st, cache, plan); err != nil {
		return nil, err
	}
	if plan.Macvtap != nil {
		if err := p.installMacvtap(ctx, st, cache, plan); err != nil {
			return nil, err
		}
	}
	if err := p.installKubeVirt(ctx, st, cache, plan, kindNodes); err != nil {
		return nil, err
	}

	return json.Marshal(attachData{
		RunID: st.runID, ClusterName: p.o.clusterName, KubeconfigPath: p.o.kubeconfigPath,
		Wiring: st.wiring, NodePaths: st.nodePaths,
	})
}

// ensureCluster reuses the cluster named by WithClusterName when it exists
// and creates it otherwise, writes its kubeconfig and connects to it.
func (p *Provider) ensureCluster(ctx context.Context, st *runState) ([]nodes.Node, error) {
	log, name := p.o.log, p.o.clusterName
	existing, err := st.kind.List()
	if err != nil {
		return nil, fmt.Errorf("kind: list clusters: %w", err)
	}
	if slices.Contains(existing, name) {
		log.Info("reusing kind cluster; it will not be deleted", "cluster", name)
	} else {
		log.Info("creating kind cluster", "cluster", name, "nodes", len(st.plan.Nodes), "image", p.versions.Kind.NodeImage)
		err := st.kind.Create(name,
			cluster.CreateWithV1Alpha4Config(st.plan.Cluster),
			cluster.CreateWithWaitForReady(p.o.timeouts.ControlPlane),
			cluster.CreateWithKubeconfigPath(p.o.kubeconfigPath),
			cluster.CreateWithDisplayUsage(false),
			cluster.CreateWithDisplaySalutation(false))
		if err != nil {
			return nil, fmt.Errorf("kind: create cluster %s: %w", name, err)
		}
		st.createdCluster = true
	}

	// write the kubeconfig and connect
	kubeconfig, err := st.kind.KubeConfig(name, false)
	if err != nil {
		return nil, fmt.Errorf("kind: kubeconfig of cluster %s: %w", name, err)
	}
	if err := writeKubeconfig(p.o.kubeconfigPath, kubeconfig); err != nil {
		return nil, err
	}
	if st.client, err = p.connect(kubeconfig); err != nil {
		return nil, err
	}

	kindNodes, err := st.kind.ListNodes(name)
	if err != nil {
		return nil, fmt.Errorf("kind: list nodes of cluster %s: %w", name, err)
	}
	return kindNodes, nil
}

func writeKubeconfig(path, kubeconfig string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("kind: create directory for kubeconfig %s: %w", path, err)
	}
	if err := os.WriteFile(path, []byte(kubeconfig), 0o600); err != nil {
		return fmt.Errorf("kind: write kubeconfig %s: %w", path, err)
	}
	return nil
}

func (p *Provider) connect(kubeconfig string) (*kubeClient, error) {
	cfg, err := clientcmd.RESTConfigFromKubeConfig([]byte(kubeconfig))
	if err != nil {
		return nil, fmt.Errorf("kind: parse kubeconfig: %w", err)
	}
	return newKubeClient(cfg, p.o.log)
}

// resolveNode returns a resolver that caches each node's namespace path.
func (p *Provider) resolveNode(st *runState) NodeNamespaceResolver {
	return func(ctx context.Context, node string) (string, error) {
		st.nodeMu.Lock()
		defer st.nodeMu.Unlock()
		if path, ok := st.nodePaths[node]; ok {
			return path, nil
		}
		path, err := DockerNodeNamespace(ctx, node)
		if err != nil {
			return "", err
		}
		st.nodePaths[node] = path
		return path, nil
	}
}

func (p *Provider) installCNIPlugins(ctx context.Context, cache *Cache, plan *Plan, kindNodes []nodes.Node) error {
	if len(plan.Plugins) == 0 {
		return nil
	}
	path, err := cache.Fetch(ctx, Download{
		URL: plan.CNIPlugins.URL, SHA256: plan.CNIPlugins.SHA256,
		PublishedSHA256URL: plan.CNIPlugins.URL + ".sha256", Env: EnvCNIPluginsSHA,
	})
	if err != nil {
		return err
	}
	archive, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("kind: open %s: %w", path, err)
	}
	defer archive.Close()
	selected, err := SelectPlugins(archive, plan.Plugins)
	if err != nil {
		return err
	}

	for _, node := range kindNodes {
		var out bytes.Buffer
		cmd := node.CommandContext(ctx, "tar", "-x", "-C", CNIBinDir).SetStdin(bytes.NewReader(selected)).SetStdout(&out).SetStderr(&out)
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("kind: install CNI plugins %v into %s:%s: %w: %s", plan.Plugins, node, CNIBinDir, err, bytes.TrimSpace(out.Bytes()))
		}
		p.o.log.Info("CNI plugins installed", "node", node.String(), "plugins", plan.Plugins, "version", plan.CNIPlugins.Version)
	}
	return nil
}

// fetchManifest downloads a component manifest and decodes it.
func fetchManifest(ctx context.Context, cache *Cache, c Component, env string) ([]*unstructured.Unstructured, error) {
	path, err := cache.Fetch(ctx, Download{URL: c.URL, SHA256: c.SHA256, Env: env})
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("kind: read %s: %w", path, err)
	}
	objs, err := DecodeManifest(data)
	if err != nil {
		return nil, fmt.Errorf("kind: %s %s (%s): %w", c.Name, c.Version, c.URL, err)
	}
	return objs, nil
}

func (p *Provider) installMultus(ctx context.Context, st *runState, cache *Cache, plan *Plan) error {
	objs, err := fetchManifest(ctx, cache, plan.Multus, EnvMultusManifestSHA)
	if err != nil {
		return err
	}
	if err := PatchMultus(objs, p.versions.MultusImage()); err != nil {
		return err
	}
	if err := st.client.applyServerSide(ctx, objs); err != nil {
		return err
	}
	return waitDaemonSetRolledOut(ctx, st.client.ctrl, p.o.log, "kube-system", "kube-multus-ds", p.o.timeouts.Rollout, p.o.timeouts.Poll)
}

func (p *Provider) installMacvtap(ctx context.Context, st *runState, cache *Cache, plan *Plan) error {
	objs, err := fetchManifest(ctx, cache, *plan.Macvtap, EnvMacvtapCNIManifestSHA)
	if err != nil {
		return err
	}
	namespace, err := PatchMacvtap(objs, p.versions.MacvtapImage())
	if err != nil {
		return err
	}

	// The DaemonSet reads the ConfigMap through envFrom when its pods
	// start, so the ConfigMap goes first, in the DaemonSet's namespace.
	cm := plan.MacvtapConfigMap.DeepCopy()
	cm.SetNamespace(namespace)
	if err := st.client.applyServerSide(ctx, []*unstructured.Unstructured{cm}); err != nil {
		return err
	}
	if err := st.client.applyServerSide(ctx, objs); err != nil {
		return err
	}
	return waitDaemonSetRolledOut(ctx, st.client.ctrl, p.o.log, namespace, "macvtap-cni", p.o.timeouts.Rollout, p.o.timeouts.Poll)
}

func (p *Provider) installKubeVirt(ctx context.Context, st *runState, cache *Cache, plan *Plan, kindNodes []nodes.Node) error {
	log, t := p.o.log, p.o.timeouts

	// decide on software emulation
	settings := plan.KubeVirtSettings
	if p.o.emulation == EmulationAuto {
		settings.UseEmulation = !nodesHaveKVM(ctx, kindNodes)
	}
	if settings.UseEmulation && emulationBroken(p.versions.KubeVirt.Version) {
		return fmt.Errorf("kind: KubeVirt %s cannot start VMs without /dev/kvm (virt-handler fails to build the VM's cgroup device rules; fixed in v1.8.1): set %s to v1.8.1 or later, or run on nodes with /dev/kvm",
			p.versions.KubeVirt.Version, EnvKubeVirtVersion)
	}
	log.Info("KubeVirt settings", "useEmulation", settings.UseEmulation, "macvtapBinding", settings.MacvtapBinding, "nadResources", settings.NADResources)

	// operator, then the CR
	objs, err := fetchManifest(ctx, cache, plan.KubeVirt, EnvKubeVirtOperatorSHA)
	if err != nil {
		return err
	}
	if err := st.client.applyServerSide(ctx, objs); err != nil {
		return err
	}
	if err := waitDeploymentAvailable(ctx, st.client.ctrl, log, KubeVirtNamespace, "virt-operator", t.Rollout, t.Poll); err != nil {
		return err
	}
	if err := waitCRDEstablished(ctx, st.client.ctrl, log, "kubevirts.kubevirt.io", t.Rollout, t.Poll); err != nil {
		return err
	}
	if err := st.client.applyServerSide(ctx, []*unstructured.Unstructured{KubeVirtCR(p.versions, settings)}); err != nil {
		return err
	}
	return waitKubeVirtAvailable(ctx, st.client.ctrl, log, t.KubeVirt, t.Poll)
}

// nodesHaveKVM reports whether every worker node has the /dev/kvm character
// device (the workers mount the host's /dev).
func nodesHaveKVM(ctx context.Context, kindNodes []nodes.Node) bool {
	workers, err := nodeutils.SelectNodesByRole(kindNodes, "worker")
	if err != nil || len(workers) == 0 {
		workers = kindNodes
	}
	for _, n := range workers {
		if err := n.CommandContext(ctx, "test", "-c", "/dev/kvm").Run(); err != nil {
			return false
		}
	}
	return true
}

// Attach implements clusters.Provider for the suite's other processes.
func (p *Provider) Attach(ctx context.Context, data []byte) error {
	var d attachData
	if err := json.Unmarshal(data, &d); err != nil {
		return fmt.Errorf("kind: attach: invalid data from Prepare: %w", err)
	}
	if d.DryRun {
		return nil
	}
	kubeconfig, err := os.ReadFile(d.KubeconfigPath)
	if err != nil {
		return fmt.Errorf("kind: attach: read kubeconfig: %w", err)
	}
	st := &runState{
		runID: d.RunID, wiring: d.Wiring, nodePaths: d.NodePaths, lock: newScenarioLock(d.ClusterName),
		kind: cluster.NewProvider(cluster.ProviderWithLogger(newKindLogger(p.o.log)), cluster.ProviderWithDocker()),
	}
	if st.nodePaths == nil {
		st.nodePaths = map[string]string{}
	}
	if err := p.openLedger(st, fmt.Sprintf("kind-%s-%d", d.RunID, os.Getpid())); err != nil {
		return err
	}
	if st.client, err = p.connect(string(kubeconfig)); err != nil {
		return err
	}
	p.mu.Lock()
	p.state = st
	p.mu.Unlock()
	return nil
}

// Teardown implements clusters.Provider: it deletes the run's host
// namespaces and, unless the cluster is kept or was reused, the cluster.
func (p *Provider) Teardown(ctx context.Context) error {
	p.mu.Lock()
	st := p.state
	p.state = nil
	p.mu.Unlock()
	if st == nil {
		return nil
	}
	return p.teardown(ctx, st)
}

func (p *Provider) teardown(ctx context.Context, st *runState) error {
	var errs []error
	keepCluster := !st.createdCluster || p.o.keep
	if st.built != nil {
		if err := st.built.Teardown(ctx, keepCluster); err != nil {
			errs = append(errs, err)
		}
	}
	if st.createdCluster && !p.o.keep {
		p.o.log.Info("deleting kind cluster", "cluster", p.o.clusterName)
		if err := st.kind.Delete(p.o.clusterName, p.o.kubeconfigPath); err != nil {
			errs = append(errs, fmt.Errorf("kind: delete cluster %s: %w", p.o.clusterName, err))
		}
	}
	if st.ownLedg {
		if err := st.ledger.Close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

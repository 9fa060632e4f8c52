package kind

import (
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"time"

	"github.com/vmnet-e2e/vmnet-e2e/framework/cleanup"
	"github.com/vmnet-e2e/vmnet-e2e/framework/scenario"
)

// DefaultClusterName is the name of the cluster the provider creates
// unless WithClusterName sets another.
const DefaultClusterName = "vmnet-e2e"

// DefaultArtifactsDir is the directory of per-scenario artifacts and of the
// kubeconfig.
const DefaultArtifactsDir = "artifacts/kind"

// Emulation is the policy for KubeVirt's software emulation
// (developerConfiguration.useEmulation).
type Emulation string

const (
	// EmulationAuto turns emulation on when a worker node has no /dev/kvm.
	EmulationAuto Emulation = "auto"
	// EmulationOn always sets useEmulation: true.
	EmulationOn Emulation = "on"
	// EmulationOff never sets it, so VMs need /dev/kvm on the nodes.
	EmulationOff Emulation = "off"
)

// Timeouts bound every wait of a run. Waits poll and, when they time out,
// fail with the last state they observed.
type Timeouts struct {
	// Preflight bounds `docker info`.
	Preflight time.Duration
	// ControlPlane bounds kind's own wait for the control plane
	// (CreateWithWaitForReady), and Nodes the wait for every node Ready.
	ControlPlane time.Duration
	Nodes        time.Duration
	// Rollout bounds each DaemonSet and Deployment rollout.
	Rollout time.Duration
	// KubeVirt bounds the wait for the KubeVirt CR's Available condition.
	KubeVirt time.Duration
	// VMIReady bounds the wait for the scenario's VMI to be Ready.
	VMIReady time.Duration
	// GuestReport bounds the wait for the guest's evidence on its serial
	// console, counted from VMI Ready. Guests boot under TCG on CI runners
	// without /dev/kvm, so this is long.
	GuestReport time.Duration
	// Delete bounds the wait for the launcher pod to be gone.
	Delete time.Duration
	// Poll is the interval between two observations of a wait.
	Poll time.Duration
}

// DefaultTimeouts are sized for a CI runner with 2 to 4 cores and no
// /dev/kvm.
// NOTE: these are estimates, because no run on such a runner has measured
// them yet.
func DefaultTimeouts() Timeouts {
	return Timeouts{
		Preflight:    5 * time.Second,
		ControlPlane: 5 * time.Minute,
		Nodes:        5 * time.Minute,
		Rollout:      5 * time.Minute,
		KubeVirt:     15 * time.Minute,
		VMIReady:     10 * time.Minute,
		GuestReport:  15 * time.Minute,
		Delete:       3 * time.Minute,
		Poll:         5 * time.Second,
	}
}

// Option configures the provider and the plan.
type Option func(*options)

type options struct {
	clusterName     string
	keep            bool
	workers         int
	versions        *Versions
	artifactsDir    string
	kubeconfigPath  string
	cacheDir        string
	log             *slog.Logger
	dryRun          io.Writer
	scenarios       []*scenario.Scenario
	emulation       Emulation
	arch            string
	runID           string
	timeouts        Timeouts
	ledger          *cleanup.Ledger
	artifactsAlways bool

	joiner   UserDataJoiner
	parser   EvidenceParser
	prober   Prober
	stats    StatsReader
	resolver TargetResolver
}

func defaultOptions() options {
	return options{
		clusterName:  DefaultClusterName,
		workers:      1,
		artifactsDir: DefaultArtifactsDir,
		emulation:    EmulationAuto,
		arch:         hostArch(),
		timeouts:     DefaultTimeouts(),
		resolver:     DefaultTargetResolver,
	}
}

func buildOptions(opts []Option) options {
	o := defaultOptions()
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	if o.kubeconfigPath == "" {
		o.kubeconfigPath = filepath.Join(o.artifactsDir, "kubeconfig")
	}
	return o
}

// WithClusterName names the cluster. When a kind cluster of that name
// exists, the provider reuses it and never deletes it.
func WithClusterName(name string) Option { return func(o *options) { o.clusterName = name } }

// WithKeep keeps the cluster the provider created at Teardown, for reuse by
// a later run with the same WithClusterName.
func WithKeep(keep bool) Option { return func(o *options) { o.keep = keep } }

// WithWorkers sets the number of worker nodes beside the one control plane
// (default 1). It applies only to a cluster the provider creates.
func WithWorkers(n int) Option { return func(o *options) { o.workers = n } }

// WithVersions replaces the versions LoadVersions returns.
func WithVersions(v Versions) Option { return func(o *options) { o.versions = &v } }

// WithArtifactsDir sets the artifacts directory (default artifacts/kind). It
// holds one directory per scenario, and the kubeconfig unless
// WithKubeconfigPath sets another path.
func WithArtifactsDir(dir string) Option { return func(o *options) { o.artifactsDir = dir } }

// WithArtifactsAlways writes a scenario's artifacts also when it passes.
// Without it they are written when Observe fails or when the verdict differs
// from the scenario's expectation.
func WithArtifactsAlways(always bool) Option { return func(o *options) { o.artifactsAlways = always } }

// WithKubeconfigPath sets where the cluster's kubeconfig is written (default
// <artifacts>/kubeconfig).
func WithKubeconfigPath(path string) Option { return func(o *options) { o.kubeconfigPath = path } }

// WithCacheDir sets the download cache (default
// os.UserCacheDir()/vmnet-e2e/kind).
func WithCacheDir(dir string) Option { return func(o *options) { o.cacheDir = dir } }

// WithLogger sets the logger, and nil discards logs.
func WithLogger(log *slog.Logger) Option { return func(o *options) { o.log = log } }

// WithDryRun makes Prepare write the plan to w and create nothing. Skip then
// skips every scenario.
func WithDryRun(w io.Writer) Option { return func(o *options) { o.dryRun = w } }

// WithScenarios names the scenarios the run will observe. Prepare needs them
// before the first Observe: they decide which parent bridges the nodes get,
// which CNI plugins are installed and how macvtap-cni is configured.
func WithScenarios(s []*scenario.Scenario) Option { return func(o *options) { o.scenarios = s } }

// WithEmulation sets when KubeVirt uses software emulation (default auto).
func WithEmulation(e Emulation) Option { return func(o *options) { o.emulation = e } }

// WithArch sets the nodes' architecture for the CNI plugins archive (default
// the host's: kind nodes are containers on it).
func WithArch(arch string) Option { return func(o *options) { o.arch = arch } }

// WithRunID sets the identifier in the names of the host namespaces a run
// creates. Prepare generates one when it is empty.
func WithRunID(id string) Option { return func(o *options) { o.runID = id } }

// WithTimeouts replaces DefaultTimeouts.
func WithTimeouts(t Timeouts) Option { return func(o *options) { o.timeouts = t } }

// WithLedger records host namespaces in l. Without it the provider opens its
// own ledger.
func WithLedger(l *cleanup.Ledger) Option { return func(o *options) { o.ledger = l } }

// WithUserDataJoiner sets how the evidence part is joined into user-data.
func WithUserDataJoiner(j UserDataJoiner) Option { return func(o *options) { o.joiner = j } }

// WithEvidenceParser sets the parser of the guest's serial console.
func WithEvidenceParser(p EvidenceParser) Option { return func(o *options) { o.parser = p } }

// WithProber sets the prober run in the external endpoint's namespace.
func WithProber(p Prober) Option { return func(o *options) { o.prober = p } }

// WithStatsReader sets how link counters are read in a node's namespace.
func WithStatsReader(s StatsReader) Option { return func(o *options) { o.stats = s } }

// WithTargetResolver replaces DefaultTargetResolver.
func WithTargetResolver(r TargetResolver) Option { return func(o *options) { o.resolver = r } }

// hostArch returns the architecture name the CNI plugins release uses for
// this host.
func hostArch() string { return runtime.GOARCH }

package apitest

import (
	"log/slog"
	"time"

	"github.com/vmnet-e2e/vmnet-e2e/framework/cleanup"
)

// Option configures Build, Cached and Start.
type Option func(*options)

type options struct {
	log          *slog.Logger
	ledger       *cleanup.Ledger
	toolsDir     string
	cacheDir     string
	nadCRD       string
	noNADCRD     bool
	crdFiles     []string
	startTimeout time.Duration
}

func buildOptions(opts []Option) options {
	o := options{startTimeout: 2 * time.Minute}
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	return o
}

// WithLogger sets the logger for build progress and start and stop steps.
// Nil discards.
func WithLogger(log *slog.Logger) Option { return func(o *options) { o.log = log } }

// WithLedger records the processes and the data directory in l, so that
// cleanup.Reap removes them after a run that was killed. Without it Start
// opens a ledger of its own when it can (as root) and otherwise keeps the
// record in memory only.
func WithLedger(l *cleanup.Ledger) Option { return func(o *options) { o.ledger = l } }

// WithToolsDir names the repository's tools directory (default: found from
// the working directory upwards, see FindToolsDir).
func WithToolsDir(dir string) Option { return func(o *options) { o.toolsDir = dir } }

// WithCacheDir names the directory of built programs and generated CRDs
// (default: DefaultCacheDir).
func WithCacheDir(dir string) Option { return func(o *options) { o.cacheDir = dir } }

// WithNADCRD installs the NetworkAttachmentDefinition CRD from path instead
// of the one in the NAD client module's artifacts directory.
func WithNADCRD(path string) Option { return func(o *options) { o.nadCRD = path } }

// WithoutNADCRD installs no NetworkAttachmentDefinition CRD.
func WithoutNADCRD() Option { return func(o *options) { o.noNADCRD = true } }

// WithCRDFiles installs the CRDs in these YAML files too.
func WithCRDFiles(paths ...string) Option {
	return func(o *options) { o.crdFiles = append(o.crdFiles, paths...) }
}

// WithStartTimeout bounds starting etcd and kube-apiserver and installing
// the CRDs, building excluded (default 2 minutes).
func WithStartTimeout(d time.Duration) Option { return func(o *options) { o.startTimeout = d } }

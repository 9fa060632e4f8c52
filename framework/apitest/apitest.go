// Package apitest runs a real kube-apiserver, backed by a real etcd, on
// 127.0.0.1 with KubeVirt's CustomResourceDefinitions as KubeVirt's operator
// generates them and the NetworkAttachmentDefinition CRD. Tests use it to get
// the API server's own response to an object: whether strict field validation
// accepts it, the unknown fields it names, the warnings under Warn.
//
// The programs and the CRDs come from the Go modules under tools/ and are
// built on first use into a cache (see Build). Nothing is downloaded except
// Go modules. Only the API server runs: no controllers, no scheduler, no
// kubelet, no KubeVirt components and so no KubeVirt admission webhooks.
package apitest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/vmnet-e2e/vmnet-e2e/framework/cleanup"
)

// Env is a running control plane. Stop it with Stop.
type Env struct {
	// Artifacts are the programs and CRDs it runs with.
	Artifacts *Artifacts
	// CRDs are the names of the installed CRDs, all Established.
	CRDs []string

	log     *slog.Logger
	config  *rest.Config
	dataDir string
	track   *tracker

	etcd, apiserver *process

	stopOnce sync.Once
	stopErr  error
}

// Start builds what the cache lacks (see Build), starts etcd and
// kube-apiserver on free ports of 127.0.0.1, installs the CRDs and waits
// until they are Established. When a step fails it stops what it started.
// Cancelling ctx (cleanup.NotifyContext cancels it on SIGINT) ends the
// waits; the caller then calls Stop.
func Start(ctx context.Context, opts ...Option) (env *Env, err error) {
	o := buildOptions(opts)
	log := o.log
	begin := time.Now()

	b, err := newBuilder(ctx, o)
	if err != nil {
		return nil, err
	}
	artifacts, err := b.buildAll(ctx)
	if err != nil {
		return nil, err
	}
	nadCRD := o.nadCRD
	if nadCRD == "" && !o.noNADCRD {
		if nadCRD, err = NADCRDPath(ctx, filepath.Dir(b.toolsDir)); err != nil {
			return nil, err
		}
	}

	e := &Env{Artifacts: artifacts, log: log}
	if e.track, e.dataDir, err = newTracker(o.ledger, log); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			if stopErr := e.Stop(context.WithoutCancel(ctx)); stopErr != nil {
				err = errors.Join(err, stopErr)
			}
		}
	}()

	startCtx, cancel := context.WithTimeout(ctx, o.startTimeout)
	defer cancel()
	started := time.Now()

	// certificates, etcd, kube-apiserver
	certs, err := newPKI(filepath.Join(e.dataDir, "pki"))
	if err != nil {
		return nil, err
	}
	etcdURL, err := e.startEtcd(startCtx)
	if err != nil {
		return nil, err
	}
	if err := e.startAPIServer(startCtx, certs, etcdURL); err != nil {
		return nil, err
	}

	// CRDs
	files, err := crdFiles(artifacts.KubeVirtCRDDir, nadCRD, o.crdFiles)
	if err != nil {
		return nil, err
	}
	if e.CRDs, err = installCRDs(startCtx, e.config, files, log); err != nil {
		return nil, err
	}

	log.Info("kube-apiserver ready", "host", e.config.Host, "kubernetes", artifacts.Versions.Kubernetes,
		"etcd", artifacts.Versions.Etcd, "kubevirtCRDs", artifacts.Versions.KubeVirt, "crds", len(e.CRDs),
		"start", time.Since(started).Round(time.Millisecond).String(), "total", time.Since(begin).Round(time.Millisecond).String())
	return e, nil
}

// Config returns a copy of the admin client configuration: client
// certificate in group system:masters, server verified against the
// environment's CA.
func (e *Env) Config() *rest.Config { return rest.CopyConfig(e.config) }

// PIDs returns the process IDs of etcd and kube-apiserver that were started
// and have not exited.
func (e *Env) PIDs() []int {
	var pids []int
	for _, p := range []*process{e.etcd, e.apiserver} {
		if p != nil && !p.exited() {
			pids = append(pids, p.pid())
		}
	}
	return pids
}

// DataDir returns the directory of etcd's data, the certificates and the
// logs (etcd.log, kube-apiserver.log). Stop removes it.
func (e *Env) DataDir() string { return e.dataDir }

// Kubeconfig returns a kubeconfig for the environment, for kubectl.
func (e *Env) Kubeconfig() ([]byte, error) {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["apitest"] = &clientcmdapi.Cluster{Server: e.config.Host, CertificateAuthorityData: e.config.CAData}
	cfg.AuthInfos["apitest-admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: e.config.CertData, ClientKeyData: e.config.KeyData}
	cfg.Contexts["apitest"] = &clientcmdapi.Context{Cluster: "apitest", AuthInfo: "apitest-admin"}
	cfg.CurrentContext = "apitest"
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return nil, fmt.Errorf("apitest: encode kubeconfig: %w", err)
	}
	return data, nil
}

// Stop stops kube-apiserver, then etcd, by PID (SIGTERM, then SIGKILL after
// 10 seconds), and removes the data directory. Later calls return the
// first result.
func (e *Env) Stop(ctx context.Context) error {
	e.stopOnce.Do(func() {
		e.stopErr = e.track.releaseAll(ctx)
		if e.stopErr == nil {
			e.log.Info("kube-apiserver and etcd stopped", "dataDir", e.dataDir)
		}
	})
	return e.stopErr
}

// startEtcd starts etcd with kernel-chosen ports on 127.0.0.1 and returns
// its client URL once it serves.
func (e *Env) startEtcd(ctx context.Context) (string, error) {
	dataDir := filepath.Join(e.dataDir, "etcd")
	logPath := filepath.Join(e.dataDir, "etcd.log")
	r, w, err := os.Pipe()
	if err != nil {
		return "", fmt.Errorf("apitest: pipe for etcd: %w", err)
	}
	args := []string{"-data-dir", dataDir, "-listen-client", "127.0.0.1:0", "-listen-peer", "127.0.0.1:0"}
	p, err := startProcess("etcd", e.Artifacts.Etcd, args, logPath, w)
	_ = w.Close()
	if err != nil {
		_ = r.Close()
		return "", err
	}
	e.etcd = p
	if err := e.track.process(p); err != nil {
		return "", err
	}

	type result struct {
		url string
		err error
	}
	// The reader keeps copying etcd's standard output into its log until
	// etcd exits, so that a later write never meets a closed pipe.
	ready := make(chan result, 1)
	go func() {
		defer r.Close()
		logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			ready <- result{err: err}
			_, _ = io.Copy(io.Discard, r)
			return
		}
		defer logFile.Close()
		url, err := readyLine(r, "ready ", logFile)
		ready <- result{url: strings.TrimSpace(url), err: err}
		_, _ = io.Copy(logFile, r)
	}()

	select {
	case res := <-ready:
		if res.err != nil {
			<-p.done
			return "", fmt.Errorf("apitest: etcd did not become ready: %w", p.exitError())
		}
		e.log.Info("etcd serving", "url", res.url, "pid", p.pid())
		return res.url, nil
	case <-ctx.Done():
		return "", fmt.Errorf("apitest: waiting for etcd to serve clients: %w; last lines of %s:\n%s", ctx.Err(), logPath, tailFile(logPath, 30))
	}
}

// apiserverAttempts bounds retries when another program takes the picked
// port between picking and binding.
const apiserverAttempts = 3

func (e *Env) startAPIServer(ctx context.Context, certs *pki, etcdURL string) error {
	var lastErr error
	for attempt := 1; attempt <= apiserverAttempts; attempt++ {
		port, err := freePort()
		if err != nil {
			return err
		}
		lastErr = e.startAPIServerOnce(ctx, certs, etcdURL, port)
		if lastErr == nil || !strings.Contains(lastErr.Error(), "address already in use") {
			return lastErr
		}
		e.log.Warn("kube-apiserver port taken, trying another", "port", port, "attempt", attempt)
	}
	return lastErr
}

func (e *Env) startAPIServerOnce(ctx context.Context, certs *pki, etcdURL string, port int) error {
	certDir := filepath.Join(e.dataDir, "apiserver")
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return fmt.Errorf("apitest: create %s: %w", certDir, err)
	}
	args := []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--cert-dir=" + certDir,
		"--tls-cert-file=" + certs.ServingCertFile,
		"--tls-private-key-file=" + certs.ServingKeyFile,
		"--client-ca-file=" + certs.CAFile,
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + certs.ServiceAccountPubFile,
		"--service-account-signing-key-file=" + certs.ServiceAccountKeyFile,
		"--service-cluster-ip-range=10.96.0.0/16",
		// kind nodes allow privileged containers, and the DaemonSets of
		// Multus and macvtap-cni ask for them.
		"--allow-privileged=true",
		// Endpoints may not hold loopback addresses, so the reconciler of
		// the "kubernetes" Service would only log errors.
		"--endpoint-reconciler-type=none",
		"--profiling=false",
	}
	logPath := filepath.Join(e.dataDir, "kube-apiserver.log")
	p, err := startProcess("kube-apiserver", e.Artifacts.KubeAPIServer, args, logPath, nil)
	if err != nil {
		return err
	}
	if err := e.track.process(p); err != nil {
		return err
	}

	e.config = &rest.Config{
		Host: "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		TLSClientConfig: rest.TLSClientConfig{
			CAData: certs.CAPEM, CertData: certs.ClientCertPEM, KeyData: certs.ClientKeyPEM,
		},
		// The client default of 5 requests per second would make a test
		// of many objects wait on the client, not the server.
		QPS: 100, Burst: 200,
	}
	if err := waitReady(ctx, e.config, p, e.log); err != nil {
		stopErr := p.stop(context.WithoutCancel(ctx))
		return errors.Join(err, stopErr)
	}
	e.apiserver = p
	e.log.Info("kube-apiserver serving", "host", e.config.Host, "pid", p.pid())
	return nil
}

// waitReady polls /readyz until it returns 200, the process exits or ctx
// ends.
func waitReady(ctx context.Context, cfg *rest.Config, p *process, log *slog.Logger) error {
	client, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return fmt.Errorf("apitest: HTTP client: %w", err)
	}
	last := "no response yet"
	ticker := time.NewTicker(200 * time.Millisecond)
	defer ticker.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, cfg.Host+"/readyz?verbose", nil)
		resp, err := client.Do(req)
		if err == nil {
			body := make([]byte, 8192)
			n, _ := resp.Body.Read(body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, failedChecks(string(body[:n])))
		} else {
			last = err.Error()
		}

		select {
		case <-p.done:
			return fmt.Errorf("apitest: kube-apiserver did not become ready: %w", p.exitError())
		case <-ctx.Done():
			return fmt.Errorf("apitest: waiting for kube-apiserver /readyz: %w; last response: %s; last lines of %s:\n%s",
				ctx.Err(), last, p.logPath, tailFile(p.logPath, 30))
		case <-ticker.C:
		}
	}
}

// failedChecks returns the "[-]" lines of a verbose /readyz response.
func failedChecks(body string) string {
	var failed []string
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "[-]") {
			failed = append(failed, line)
		}
	}
	if len(failed) == 0 {
		return strings.TrimSpace(body)
	}
	return strings.Join(failed, "; ")
}

// freePort returns a TCP port that was free on 127.0.0.1 a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("apitest: find a free port on 127.0.0.1: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tracker records what the environment created, in a ledger when there is
// one, and releases it newest first.
type tracker struct {
	ledger    *cleanup.Ledger
	ownLedger bool
	handles   []*cleanup.Handle
	// releases stand in for handles when there is no ledger.
	releases []func(context.Context) error
}

// newTracker returns the tracker and the data directory. With a ledger
// (given, or opened here as root) the data directory is in the run's state
// directory, else in the system's temporary directory.
func newTracker(ledger *cleanup.Ledger, log *slog.Logger) (*tracker, string, error) {
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	id := fmt.Sprintf("apitest-%d-%s", os.Getpid(), hex.EncodeToString(suffix))

	t := &tracker{ledger: ledger}
	if ledger == nil {
		l, err := cleanup.NewLedger(id, log)
		if err != nil {
			// NOTE: without root there is no ledger, so a killed run can
			// leave the data directory behind. The processes still get
			// SIGKILL when the test process dies.
			log.Info("no run ledger, the environment is tracked in memory only", "reason", err)
			dir, err := os.MkdirTemp("", "vmnet-e2e-"+id+"-")
			if err != nil {
				return nil, "", fmt.Errorf("apitest: create data directory: %w", err)
			}
			t.releases = append(t.releases, func(context.Context) error { return os.RemoveAll(dir) })
			return t, dir, nil
		}
		t.ledger, t.ownLedger = l, true
		return t, l.Dir(), nil
	}

	dir := filepath.Join(ledger.Dir(), id)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, "", fmt.Errorf("apitest: create data directory %s: %w", dir, err)
	}
	t.handles = append(t.handles, ledger.Track(cleanup.Resource{Kind: cleanup.KindPath, Name: dir},
		func(context.Context) error { return os.RemoveAll(dir) }))
	return t, dir, nil
}

// process records p; releasing it stops p.
func (t *tracker) process(p *process) error {
	if t.ledger == nil {
		t.releases = append(t.releases, p.stop)
		return nil
	}
	r, err := cleanup.ProcessResource(p.name, p.pid())
	if err != nil {
		// The process exited already; stopping it is a no-op.
		t.releases = append(t.releases, p.stop)
		return nil
	}
	t.handles = append(t.handles, t.ledger.Track(r, p.stop))
	return nil
}

func (t *tracker) releaseAll(ctx context.Context) error {
	var errs []error
	for i := len(t.releases) - 1; i >= 0; i-- {
		if err := t.releases[i](ctx); err != nil {
			errs = append(errs, err)
		}
	}
	for i := len(t.handles) - 1; i >= 0; i-- {
		if err := t.handles[i].Release(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if t.ownLedger {
		if err := t.ledger.Close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

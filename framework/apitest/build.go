package apitest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/vmnet-e2e/vmnet-e2e/framework/filelock"
)

// Artifacts are the built control-plane programs and the generated CRDs.
type Artifacts struct {
	// KubeAPIServer and Etcd are paths of executables.
	KubeAPIServer string
	Etcd          string
	// KubeVirtCRDDir contains one YAML file per KubeVirt CRD, as KubeVirt's
	// operator generates them.
	KubeVirtCRDDir string
	Versions       Versions
}

// Versions are the upstream versions the tools modules pin.
type Versions struct {
	Kubernetes string
	Etcd       string
	KubeVirt   string
}

// tool is one Go module under tools/ and what building it leaves in the
// cache.
type tool struct {
	// dir is the module's directory under tools/.
	dir string
	// upstream is the module whose version go.mod pins.
	upstream string
	// estimate is shown before a build starts. It was measured on a 2-core
	// machine with an empty Go build cache, building in the order of tools.
	estimate string
	build    func(ctx context.Context, b *builder, src, out, version string) error
}

var (
	apiserverTool = tool{dir: "apiserver", upstream: "k8s.io/kubernetes", estimate: "about 4 minutes", build: buildAPIServer}
	etcdTool      = tool{dir: "etcd", upstream: "go.etcd.io/etcd/server/v3", estimate: "about 20 seconds after kube-apiserver", build: buildEtcd}
	crdgenTool    = tool{dir: "crdgen", upstream: "kubevirt.io/kubevirt", estimate: "about 1 minute", build: buildCRDs}

	tools = []tool{apiserverTool, etcdTool, crdgenTool}
)

// builder runs the go command for the tools modules.
type builder struct {
	log      *slog.Logger
	toolsDir string
	cacheDir string
	// goVersion is `go env GOVERSION`, part of every cache key.
	goVersion string
}

func newBuilder(ctx context.Context, o options) (*builder, error) {
	toolsDir := o.toolsDir
	if toolsDir == "" {
		dir, err := FindToolsDir()
		if err != nil {
			return nil, err
		}
		toolsDir = dir
	}
	cacheDir := o.cacheDir
	if cacheDir == "" {
		dir, err := DefaultCacheDir()
		if err != nil {
			return nil, err
		}
		cacheDir = dir
	}
	out, err := goCommand(ctx, toolsDir, "env", "GOVERSION").Output()
	if err != nil {
		return nil, fmt.Errorf("apitest: go env GOVERSION: %w%s", err, exitStderr(err))
	}
	return &builder{log: o.log, toolsDir: toolsDir, cacheDir: cacheDir, goVersion: strings.TrimSpace(string(out))}, nil
}

// DefaultCacheDir returns os.UserCacheDir()/vmnet-e2e/apiserver, where the
// built programs and generated CRDs are kept between runs.
func DefaultCacheDir() (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("apitest: no user cache directory (set XDG_CACHE_HOME or HOME): %w", err)
	}
	return filepath.Join(base, "vmnet-e2e", "apiserver"), nil
}

// FindToolsDir returns the repository's tools directory, searched for from
// the working directory upwards: `go test` runs in the package's directory
// inside the repository.
func FindToolsDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("apitest: working directory: %w", err)
	}
	for {
		candidate := filepath.Join(dir, "tools")
		if _, err := os.Stat(filepath.Join(candidate, apiserverTool.dir, "go.mod")); err == nil {
			return candidate, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("apitest: no tools/apiserver/go.mod in the working directory or above it: run from inside the vmnet-e2e repository or pass WithToolsDir")
		}
		dir = parent
	}
}

// Cached reports whether every program and the CRDs for the current tools
// modules are in the cache, so that Start will not build.
func Cached(ctx context.Context, opts ...Option) (bool, error) {
	b, err := newBuilder(ctx, buildOptions(opts))
	if err != nil {
		return false, err
	}
	for _, t := range tools {
		out, err := b.outputDir(t)
		if err != nil {
			return false, err
		}
		if _, err := os.Stat(out); err != nil {
			return false, nil
		}
	}
	return true, nil
}

// Build builds what the cache lacks and returns the artifacts. A change to
// a tools module's go.mod, go.sum or Go files, or another Go version, gives
// a new cache key and so a new build. Concurrent builds in several processes
// wait for each other on a lock file in the cache directory.
func Build(ctx context.Context, opts ...Option) (*Artifacts, error) {
	o := buildOptions(opts)
	b, err := newBuilder(ctx, o)
	if err != nil {
		return nil, err
	}
	return b.buildAll(ctx)
}

func (b *builder) buildAll(ctx context.Context) (*Artifacts, error) {
	dirs := map[string]string{}
	versions := map[string]string{}
	for _, t := range tools {
		version, err := b.version(t)
		if err != nil {
			return nil, err
		}
		out, err := b.ensure(ctx, t, version)
		if err != nil {
			return nil, err
		}
		dirs[t.dir], versions[t.dir] = out, version
	}
	return &Artifacts{
		KubeAPIServer:  filepath.Join(dirs[apiserverTool.dir], "kube-apiserver"),
		Etcd:           filepath.Join(dirs[etcdTool.dir], "etcd"),
		KubeVirtCRDDir: dirs[crdgenTool.dir],
		Versions: Versions{
			Kubernetes: versions[apiserverTool.dir], Etcd: versions[etcdTool.dir], KubeVirt: versions[crdgenTool.dir],
		},
	}, nil
}

// version returns the version of t's upstream module in its go.mod.
func (b *builder) version(t tool) (string, error) {
	path := filepath.Join(b.toolsDir, t.dir, "go.mod")
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("apitest: read %s: %w", path, err)
	}
	version, ok := requiredVersion(data, t.upstream)
	if !ok {
		return "", fmt.Errorf("apitest: %s requires no %s", path, t.upstream)
	}
	return version, nil
}

// requiredVersion finds "MODULE VERSION" in a go.mod's require lines, both
// the single-line and the block form.
func requiredVersion(gomod []byte, module string) (string, bool) {
	inRequire := false
	scanner := bufio.NewScanner(bytes.NewReader(gomod))
	for scanner.Scan() {
		fields := strings.Fields(scanner.Text())
		switch {
		case len(fields) == 0:
			continue
		case fields[0] == "require" && len(fields) >= 2 && fields[1] == "(":
			inRequire = true
			continue
		case inRequire && fields[0] == ")":
			inRequire = false
			continue
		case fields[0] == "require":
			fields = fields[1:]
		case !inRequire:
			continue
		}
		if len(fields) >= 2 && fields[0] == module {
			return fields[1], true
		}
	}
	return "", false
}

// outputDir returns the cache directory of t for its current sources.
func (b *builder) outputDir(t tool) (string, error) {
	key, err := b.cacheKey(t)
	if err != nil {
		return "", err
	}
	return filepath.Join(b.cacheDir, t.dir+"-"+key), nil
}

// cacheKey hashes the Go version, the target platform and the module's
// go.mod, go.sum and top-level Go files.
func (b *builder) cacheKey(t tool) (string, error) {
	src := filepath.Join(b.toolsDir, t.dir)
	entries, err := os.ReadDir(src)
	if err != nil {
		return "", fmt.Errorf("apitest: read tools module %s: %w", src, err)
	}
	var names []string
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() && (name == "go.mod" || name == "go.sum" || strings.HasSuffix(name, ".go")) {
			names = append(names, name)
		}
	}
	slices.Sort(names)

	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s/%s\n", b.goVersion, runtime.GOOS, runtime.GOARCH)
	for _, name := range names {
		data, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			return "", fmt.Errorf("apitest: read %s: %w", filepath.Join(src, name), err)
		}
		fmt.Fprintf(h, "%s %d\n", name, len(data))
		h.Write(data)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// ensure returns t's cache directory, building it first when it is missing.
func (b *builder) ensure(ctx context.Context, t tool, version string) (string, error) {
	out, err := b.outputDir(t)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}

	// one build at a time across processes
	if err := os.MkdirAll(b.cacheDir, 0o755); err != nil {
		return "", fmt.Errorf("apitest: create cache directory %s: %w", b.cacheDir, err)
	}
	lockPath := filepath.Join(b.cacheDir, "build.lock")
	unlock, err := filelock.Lock(ctx, lockPath, func() { b.log.Info("waiting for another process's build", "lock", lockPath) })
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}

	// build into a temporary directory and rename it, so that a cache
	// directory is always complete
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	tmp := filepath.Join(b.cacheDir, "."+filepath.Base(out)+"-"+hex.EncodeToString(suffix))
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return "", fmt.Errorf("apitest: create %s: %w", tmp, err)
	}
	defer os.RemoveAll(tmp)

	b.log.Info("building into the cache; later runs reuse it", "tool", "tools/"+t.dir, "version", version, "estimate", t.estimate, "cache", out)
	start := time.Now()
	stop := b.progress(ctx, "tools/"+t.dir, start)
	err = t.build(ctx, b, filepath.Join(b.toolsDir, t.dir), tmp, version)
	stop()
	if err != nil {
		return "", err
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", fmt.Errorf("apitest: move build of tools/%s into %s: %w", t.dir, out, err)
	}
	b.log.Info("built", "tool", "tools/"+t.dir, "version", version, "took", time.Since(start).Round(time.Second).String())
	return out, nil
}

// progress logs every 30 seconds that a build is still running, because the
// go command prints nothing while it compiles.
func (b *builder) progress(ctx context.Context, name string, start time.Time) (stop func()) {
	done := make(chan struct{})
	go func() {
		ticker := time.NewTicker(30 * time.Second)
		defer ticker.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-ticker.C:
				b.log.Info("still building", "tool", name, "elapsed", time.Since(start).Round(time.Second).String())
			}
		}
	}()
	return func() { close(done) }
}

func buildAPIServer(ctx context.Context, b *builder, src, out, version string) error {
	// The version variables are those Kubernetes' own build sets
	// (hack/lib/version.sh), so that /version reports the real release.
	major, minor := majorMinor(version)
	ldflags := strings.Join([]string{
		"-X k8s.io/component-base/version.gitVersion=" + version,
		"-X k8s.io/component-base/version.gitMajor=" + major,
		"-X k8s.io/component-base/version.gitMinor=" + minor,
		"-X k8s.io/component-base/version.gitTreeState=clean",
	}, " ")
	return b.goBuild(ctx, src, "-o", filepath.Join(out, "kube-apiserver"), "-ldflags", ldflags, "k8s.io/kubernetes/cmd/kube-apiserver")
}

func buildEtcd(ctx context.Context, b *builder, src, out, _ string) error {
	return b.goBuild(ctx, src, "-o", filepath.Join(out, "etcd"), ".")
}

// buildCRDs builds tools/crdgen and runs it; only its YAML output is kept.
func buildCRDs(ctx context.Context, b *builder, src, out, _ string) error {
	binDir, err := os.MkdirTemp("", "vmnet-e2e-crdgen-")
	if err != nil {
		return fmt.Errorf("apitest: temporary directory for crdgen: %w", err)
	}
	defer os.RemoveAll(binDir)
	bin := filepath.Join(binDir, "crdgen")
	if err := b.goBuild(ctx, src, "-o", bin, "."); err != nil {
		return err
	}

	cmd := exec.CommandContext(ctx, bin, "-o", out)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("apitest: run crdgen: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	files, _ := filepath.Glob(filepath.Join(out, "*.yaml"))
	if len(files) == 0 {
		return fmt.Errorf("apitest: crdgen wrote no CRD into %s", out)
	}
	return nil
}

// goBuild runs `go build -trimpath ARGS` in the module src at lower CPU
// priority, since the build competes with whatever else runs.
func (b *builder) goBuild(ctx context.Context, src string, args ...string) error {
	cmd := goCommand(ctx, src, append([]string{"build", "-trimpath"}, args...)...)
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("apitest: start go build in %s: %w", src, err)
	}
	// The compiler and linker processes the go command starts inherit this.
	_ = syscall.Setpriority(syscall.PRIO_PROCESS, cmd.Process.Pid, 10)
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("apitest: go build in %s failed: %w\n%s", src, err, tail(output.Bytes(), 40))
	}
	return nil
}

// goCommand returns the go command for a tools module: outside any
// workspace, with the module's go.sum as is, and without cgo, as
// Kubernetes builds its server binaries.
func goCommand(ctx context.Context, dir string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, goBinary(), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=0", "GOFLAGS=-mod=readonly -buildvcs=false")
	return cmd
}

// goBinary returns the go command of the running toolchain when it is
// there, else the one on PATH.
func goBinary() string {
	if root := runtime.GOROOT(); root != "" {
		path := filepath.Join(root, "bin", "go")
		if _, err := os.Stat(path); err == nil {
			return path
		}
	}
	return "go"
}

func majorMinor(version string) (string, string) {
	parts := strings.SplitN(strings.TrimPrefix(version, "v"), ".", 3)
	if len(parts) < 2 {
		return "", ""
	}
	return parts[0], parts[1]
}

func exitStderr(err error) string {
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) && len(exitErr.Stderr) > 0 {
		return ": " + strings.TrimSpace(string(exitErr.Stderr))
	}
	return ""
}

// tail returns the last n lines of data.
func tail(data []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// tailFile returns the last n lines of the file at path, or a note when it
// cannot be read.
func tailFile(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(log %s unreadable: %v)", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 4<<20))
	if err != nil {
		return fmt.Sprintf("(log %s unreadable: %v)", path, err)
	}
	return tail(data, n)
}

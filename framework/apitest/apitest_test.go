package apitest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
)

// buildBudget is the -timeout left below which a test skips instead of
// building kube-apiserver, etcd and the CRDs (about 6 minutes on 2 cores).
const buildBudget = 15 * time.Minute

// requireBuilt skips under -short, and when the programs are not built and
// the test's -timeout leaves too little time to build them.
func requireBuilt(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: no kube-apiserver")
	}
	deadline, ok := t.Deadline()
	if !ok || time.Until(deadline) >= buildBudget {
		return
	}
	cached, err := Cached(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !cached {
		t.Skipf("kube-apiserver, etcd and KubeVirt's CRDs are not built yet, and building them takes about 6 minutes, more than the %s this run's -timeout leaves: run `make apiserver` once", time.Until(deadline).Round(time.Second))
	}
}

func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// TestStartServesOnLoopback starts the environment and checks what it
// promises: every listening socket of etcd and kube-apiserver on
// 127.0.0.1, the release the tools module pins at /version, the KubeVirt
// and NAD CRDs Established, and after Stop no process and no data
// directory left.
func TestStartServesOnLoopback(t *testing.T) {
	requireBuilt(t)
	ctx := context.Background()
	env, err := Start(ctx, WithLogger(testLogger()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop(context.Background()) })

	// listening sockets
	pids := env.PIDs()
	if len(pids) != 2 {
		t.Fatalf("PIDs() = %v, want etcd and kube-apiserver", pids)
	}
	for _, pid := range pids {
		addrs, err := listeningAddresses(pid)
		if err != nil {
			t.Fatal(err)
		}
		if len(addrs) == 0 {
			t.Errorf("pid %d listens on no TCP socket", pid)
		}
		for _, addr := range addrs {
			if !strings.HasPrefix(addr, "127.0.0.1:") {
				t.Errorf("pid %d listens on %s, want 127.0.0.1 only", pid, addr)
			}
		}
	}

	// the server's version
	core, err := kubernetes.NewForConfig(env.Config())
	if err != nil {
		t.Fatal(err)
	}
	info, err := core.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if info.GitVersion != env.Artifacts.Versions.Kubernetes {
		t.Errorf("server version %s, want %s from tools/apiserver/go.mod", info.GitVersion, env.Artifacts.Versions.Kubernetes)
	}

	// CRDs
	for _, name := range []string{"virtualmachines.kubevirt.io", "virtualmachineinstances.kubevirt.io", "kubevirts.kubevirt.io", "network-attachment-definitions.k8s.cni.cncf.io"} {
		if !slices.Contains(env.CRDs, name) {
			t.Errorf("CRD %s not installed; installed: %v", name, env.CRDs)
		}
	}
	dyn, err := dynamic.NewForConfig(env.Config())
	if err != nil {
		t.Fatal(err)
	}
	vmCRD, err := dyn.Resource(crdResource).Get(ctx, "virtualmachines.kubevirt.io", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := waitEstablished(ctx, dyn.Resource(crdResource), vmCRD.GetName()); err != nil {
		t.Error(err)
	}

	// stop
	dataDir := env.DataDir()
	if err := env.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if processRunning(pid) {
			t.Errorf("pid %d still running after Stop", pid)
		}
	}
	if _, err := os.Stat(dataDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("data directory %s still there after Stop (stat: %v)", dataDir, err)
	}
}

// TestStartFailureStopsProcesses makes the CRD step fail, after etcd and
// kube-apiserver started, and checks that Start stopped both.
func TestStartFailureStopsProcesses(t *testing.T) {
	requireBuilt(t)
	notCRD := filepath.Join(t.TempDir(), "configmap.yaml")
	if err := os.WriteFile(notCRD, []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := childPIDs(t, os.Getpid())

	env, err := Start(context.Background(), WithLogger(testLogger()), WithCRDFiles(notCRD))
	if err == nil {
		_ = env.Stop(context.Background())
		t.Fatal("Start succeeded with a ConfigMap among the CRD files")
	}
	if !strings.Contains(err.Error(), "only CustomResourceDefinitions are allowed") {
		t.Errorf("error %q does not name the wrong document", err)
	}
	if left := slices.DeleteFunc(childPIDs(t, os.Getpid()), func(pid int) bool { return slices.Contains(before, pid) }); len(left) > 0 {
		t.Errorf("child processes left after the failed Start: %v", left)
	}
}

// TestRunStopsOnSIGINT runs `apitest run` as a separate process, sends it
// SIGINT and checks that it stopped etcd and kube-apiserver and exited 0.
func TestRunStopsOnSIGINT(t *testing.T) {
	requireBuilt(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "apitest")
	build := exec.Command(goBinary(), "build", "-o", bin, "./cmd/apitest")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/apitest: %v\n%s", err, out)
	}

	cmd := exec.Command(bin, "run", "-kubeconfig", filepath.Join(dir, "kubeconfig"))
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	ready := make(chan string, 1)
	go func() {
		scanner := bufio.NewScanner(stdout)
		for scanner.Scan() {
			if strings.Contains(scanner.Text(), "Ctrl-C stops it") {
				ready <- scanner.Text()
			}
		}
		close(ready)
	}()
	select {
	case line, ok := <-ready:
		if !ok {
			t.Fatal("apitest run ended before it was ready")
		}
		t.Log(line)
	case <-time.After(3 * time.Minute):
		t.Fatal("apitest run not ready within 3 minutes")
	}

	children := childPIDs(t, cmd.Process.Pid)
	if len(children) != 2 {
		t.Fatalf("apitest run has children %v, want etcd and kube-apiserver", children)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("apitest run after SIGINT: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("apitest run still running a minute after SIGINT")
	}
	for _, pid := range children {
		if processRunning(pid) {
			t.Errorf("pid %d still running after SIGINT", pid)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "kubeconfig")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("kubeconfig not removed (stat: %v)", err)
	}
}

func TestRequiredVersion(t *testing.T) {
	gomod := []byte(`module example.com/tool

go 1.25.0

require k8s.io/kubernetes v1.35.4

require (
	go.etcd.io/etcd/server/v3 v3.7.4
	kubevirt.io/kubevirt v1.8.4 // indirect
)

replace kubevirt.io/api => kubevirt.io/api v1.8.4
`)
	for module, want := range map[string]string{
		"k8s.io/kubernetes":         "v1.35.4",
		"go.etcd.io/etcd/server/v3": "v3.7.4",
		"kubevirt.io/kubevirt":      "v1.8.4",
	} {
		got, ok := requiredVersion(gomod, module)
		if !ok || got != want {
			t.Errorf("requiredVersion(%s) = %q, %v; want %q", module, got, ok, want)
		}
	}
	if got, ok := requiredVersion(gomod, "kubevirt.io/api"); ok {
		t.Errorf("requiredVersion(kubevirt.io/api) = %q from a replace line, want not found", got)
	}
}

// TestToolsPinVersions checks that the tools modules pin the versions the
// documentation names.
func TestToolsPinVersions(t *testing.T) {
	dir, err := FindToolsDir()
	if err != nil {
		t.Fatal(err)
	}
	b := &builder{toolsDir: dir}
	for _, tc := range []struct {
		tool tool
		want string
	}{{apiserverTool, "v1.35.4"}, {etcdTool, "v3.7.4"}, {crdgenTool, "v1.8.4"}} {
		got, err := b.version(tc.tool)
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("tools/%s pins %s %s, docs/apiserver.md says %s", tc.tool.dir, tc.tool.upstream, got, tc.want)
		}
	}
}

// listeningAddresses returns "ip:port" of the TCP sockets in LISTEN state
// that pid holds open, from /proc/PID/fd and /proc/PID/net/tcp{,6}.
func listeningAddresses(pid int) ([]string, error) {
	inodes := map[string]bool{}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return nil, err
	}
	for _, fd := range fds {
		target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(target, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(target, "socket:["), "]")] = true
		}
	}

	var addrs []string
	for _, table := range []string{"tcp", "tcp6"} {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if err != nil {
			return nil, err
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			f := strings.Fields(line)
			// fields: sl local_address rem_address st ... inode (index 9)
			if len(f) < 10 || f[3] != "0A" || !inodes[f[9]] {
				continue
			}
			addrs = append(addrs, decodeProcAddress(f[1]))
		}
	}
	return addrs, nil
}

// decodeProcAddress turns /proc/net/tcp's "0100007F:1F90" into
// "127.0.0.1:8080"; IPv6 addresses are returned as hex with the port.
func decodeProcAddress(s string) string {
	hexIP, hexPort, _ := strings.Cut(s, ":")
	port, _ := strconv.ParseUint(hexPort, 16, 16)
	if len(hexIP) != 8 {
		return fmt.Sprintf("[%s]:%d", hexIP, port)
	}
	v, _ := strconv.ParseUint(hexIP, 16, 32)
	return fmt.Sprintf("%d.%d.%d.%d:%d", v&0xff, v>>8&0xff, v>>16&0xff, v>>24, port)
}

// childPIDs lists the running children of parent from /proc/*/stat.
func childPIDs(t *testing.T, parent int) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		end := strings.LastIndexByte(string(data), ')')
		fields := strings.Fields(string(data[end+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(parent) && fields[0] != "Z" {
			pids = append(pids, pid)
		}
	}
	return pids
}

// processRunning reports whether pid exists and is not a zombie.
func processRunning(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	end := strings.LastIndexByte(string(data), ')')
	fields := strings.Fields(string(data[end+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}

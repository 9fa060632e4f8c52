package kind_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	ctrlclient "sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vmnet-e2e/vmnet-e2e/clusters/kind"
	"github.com/vmnet-e2e/vmnet-e2e/framework/apitest"
	"github.com/vmnet-e2e/vmnet-e2e/framework/cleanup"
	"github.com/vmnet-e2e/vmnet-e2e/framework/scenario"
)

// The tests in the *_apiserver_test.go files send the kind provider's
// objects to a real kube-apiserver (framework/apitest) with KubeVirt's CRDs
// as KubeVirt's operator generates them. One environment serves every test
// of the binary; TestMain stops it.

// scenariosDir holds the project's scenario files.
const scenariosDir = "../../scenarios"

// buildBudget is the -timeout left below which a test skips instead of
// building kube-apiserver, etcd and the CRDs (about 6 minutes on 2 cores).
const buildBudget = 15 * time.Minute

var (
	envOnce   sync.Once
	sharedEnv *apitest.Env
	envErr    error
	envMu     sync.Mutex
)

func TestMain(m *testing.M) {
	code := m.Run()
	envMu.Lock()
	env := sharedEnv
	envMu.Unlock()
	if env != nil {
		if err := env.Stop(context.Background()); err != nil {
			fmt.Fprintln(os.Stderr, "stop kube-apiserver test environment:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// apiServer returns the shared environment, starting it on first use. It
// skips under -short, and when the programs are not built yet and the
// test's -timeout leaves too little time to build them.
func apiServer(t *testing.T) *apitest.Env {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: no kube-apiserver")
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))

	ctx := context.Background()
	if deadline, ok := t.Deadline(); ok && time.Until(deadline) < buildBudget {
		cached, err := apitest.Cached(ctx)
		if err != nil {
			t.Fatalf("check the kube-apiserver build cache: %v", err)
		}
		if !cached {
			t.Skipf("kube-apiserver, etcd and KubeVirt's CRDs are not built yet, and building them takes about 6 minutes, more than the %s this run's -timeout leaves: run `make apiserver` once", time.Until(deadline).Round(time.Second))
		}
	}

	envOnce.Do(func() {
		// On SIGINT or SIGTERM stop the control plane by PID, then exit as
		// the signal would have.
		signalCtx, stop := cleanup.NotifyContext(context.Background())
		env, err := apitest.Start(signalCtx, apitest.WithLogger(log))
		envMu.Lock()
		sharedEnv, envErr = env, err
		envMu.Unlock()
		go func() {
			<-signalCtx.Done()
			envMu.Lock()
			defer envMu.Unlock()
			if sharedEnv != nil {
				_ = sharedEnv.Stop(context.Background())
				stop()
				os.Exit(130)
			}
		}()
	})
	if envErr != nil {
		t.Fatalf("start kube-apiserver test environment: %v", envErr)
	}
	return sharedEnv
}

// kubeClient returns the provider's own client for the environment.
func kubeClient(t *testing.T, env *apitest.Env) *kind.KubeClient {
	t.Helper()
	client, err := kind.NewKubeClient(env.Config(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return client
}

// uniqueName returns prefix-<6 hex digits>.
func uniqueName(prefix string) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// newNamespace creates a namespace with a unique name. Without
// kube-controller-manager a deleted namespace stays Terminating, so it is
// left in place; the environment's etcd goes with the environment.
func newNamespace(t *testing.T, c ctrlclient.Client, prefix string) string {
	t.Helper()
	name := uniqueName(prefix)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := c.Create(context.Background(), ns); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	return name
}

// ensureNamespace creates the namespace name unless it exists.
func ensureNamespace(t *testing.T, c ctrlclient.Client, name string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := c.Create(context.Background(), ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create namespace %s: %v", name, err)
	}
}

// inNamespace returns deep copies of objs moved to namespace ns.
func inNamespace(objs []*unstructured.Unstructured, ns string) []*unstructured.Unstructured {
	out := make([]*unstructured.Unstructured, 0, len(objs))
	for _, obj := range objs {
		c := obj.DeepCopy()
		c.SetNamespace(ns)
		out = append(out, c)
	}
	return out
}

// purge removes the objects' finalizers so that deleted objects go away.
// The provider deletes in the foreground, and without the garbage collector
// of kube-controller-manager nothing removes the foregroundDeletion
// finalizer.
func purge(t *testing.T, c ctrlclient.Client, objs []*unstructured.Unstructured) {
	t.Helper()
	ctx := context.Background()
	for _, obj := range objs {
		patch := ctrlclient.RawPatch(types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`))
		target := obj.DeepCopy()
		if err := c.Patch(ctx, target, patch); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("remove finalizers of %s %s/%s: %v", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
		}
		if err := c.Delete(ctx, target); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete %s %s/%s: %v", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
		}
	}
}

// harnessScenarios loads the scenario files that have a harness section.
func harnessScenarios(t *testing.T) []*scenario.Scenario {
	t.Helper()
	all, err := scenario.LoadDir(scenariosDir)
	if err != nil {
		t.Fatal(err)
	}
	var out []*scenario.Scenario
	for _, s := range all {
		if s.Harness {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no scenario with a harness section under %s", scenariosDir)
	}
	return out
}

// expectsRejection reports whether the scenario's harness section expects
// the API server to reject it.
func expectsRejection(s *scenario.Scenario) bool {
	return s.Spec.Expect != nil && s.Spec.Expect.Outcome == scenario.Rejected
}

// containsText reports whether any of texts contains sub.
func containsText(texts []string, sub string) bool {
	for _, text := range texts {
		if strings.Contains(text, sub) {
			return true
		}
	}
	return false
}

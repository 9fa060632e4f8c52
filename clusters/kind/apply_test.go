package kind

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/e2e-framework/klient/k8s/resources"
)

// fakeAPIServer serves discovery and create requests as kube-apiserver v1.34
// does for the objects of a scenario, and records every request. A
// VirtualMachine carrying the unknown field "ipAddress" in a network is
// refused under fieldValidation=Strict with the server's strict decoding
// error, and stored with a warning under Warn.
type fakeAPIServer struct {
	*httptest.Server
	mu       sync.Mutex
	requests []recordedRequest
}

type recordedRequest struct {
	Method string
	Path   string
	Query  url.Values
}

func newFakeAPIServer(t *testing.T) *fakeAPIServer {
	t.Helper()
	f := &fakeAPIServer{}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeAPIServer) config() *rest.Config {
	return &rest.Config{Host: f.URL}
}

func (f *fakeAPIServer) posts(path string) []recordedRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []recordedRequest
	for _, r := range f.requests {
		if r.Method == http.MethodPost && r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func resourceList(group string, resources ...metav1.APIResource) metav1.APIResourceList {
	return metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: group, APIResources: resources}
}

func namespaced(name, kind string) metav1.APIResource {
	return metav1.APIResource{Name: name, Namespaced: true, Kind: kind, Verbs: metav1.Verbs{"create", "delete", "get", "list"}}
}

func (f *fakeAPIServer) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests = append(f.requests, recordedRequest{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query()})
	f.mu.Unlock()

	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/api":
		writeJSON(w, 200, metav1.APIVersions{TypeMeta: metav1.TypeMeta{Kind: "APIVersions"}, Versions: []string{"v1"},
			ServerAddressByClientCIDRs: []metav1.ServerAddressByClientCIDR{{ClientCIDR: "0.0.0.0/0", ServerAddress: r.Host}}})
	case r.Method == http.MethodGet && r.URL.Path == "/apis":
		group := func(name string) metav1.APIGroup {
			gv := metav1.GroupVersionForDiscovery{GroupVersion: name + "/v1", Version: "v1"}
			return metav1.APIGroup{Name: name, Versions: []metav1.GroupVersionForDiscovery{gv}, PreferredVersion: gv}
		}
		writeJSON(w, 200, metav1.APIGroupList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"},
			Groups: []metav1.APIGroup{group("kubevirt.io"), group("k8s.cni.cncf.io")}})
	case r.Method == http.MethodGet && r.URL.Path == "/api/v1":
		writeJSON(w, 200, resourceList("v1", metav1.APIResource{Name: "namespaces", Kind: "Namespace", Verbs: metav1.Verbs{"create", "delete", "get"}}, namespaced("pods", "Pod")))
	case r.Method == http.MethodGet && r.URL.Path == "/apis/kubevirt.io/v1":
		writeJSON(w, 200, resourceList("kubevirt.io/v1", namespaced("virtualmachines", "VirtualMachine")))
	case r.Method == http.MethodGet && r.URL.Path == "/apis/k8s.cni.cncf.io/v1":
		writeJSON(w, 200, resourceList("k8s.cni.cncf.io/v1", namespaced("network-attachment-definitions", "NetworkAttachmentDefinition")))

	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/virtualmachines"):
		body, _ := io.ReadAll(r.Body)
		unknown := strings.Contains(string(body), `"ipAddress"`)
		field := "spec.template.spec.networks[0].ipAddress"
		switch validation := r.URL.Query().Get("fieldValidation"); {
		case unknown && validation == "Strict":
			writeJSON(w, http.StatusBadRequest, metav1.Status{
				TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusFailure,
				Code: http.StatusBadRequest, Reason: metav1.StatusReasonBadRequest,
				Message: fmt.Sprintf(`VirtualMachine in version "v1" cannot be handled as a VirtualMachine: strict decoding error: unknown field "%s"`, field),
			})
		case unknown && validation != "Ignore":
			w.Header().Add("Warning", `299 - `+strconv.Quote(fmt.Sprintf(`unknown field "%s"`, field)))
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write(body)
		default:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write(body)
		}
	case r.Method == http.MethodPost && r.URL.Path == "/api/v1/namespaces":
		// client-go may send core types as protobuf, so the reply is JSON.
		writeJSON(w, http.StatusCreated, map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": "created"}})
	case r.Method == http.MethodPost:
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write(body)
	case r.Method == http.MethodDelete:
		writeJSON(w, 200, metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusSuccess})
	default:
		writeJSON(w, 404, metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusFailure, Code: 404, Reason: metav1.StatusReasonNotFound})
	}
}

// scenarioWithUnknownField returns the macvlan scenario's objects with an
// ipAddress field in the VM's network, which the kubevirt.io/v1 schema does
// not have.
func scenarioWithUnknownField(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	objs, err := scenarioObjects(loadScenario(t, macvlanScenario))
	if err != nil {
		t.Fatal(err)
	}
	networks, _, _ := unstructured.NestedSlice(objs[1].Object, "spec", "template", "spec", "networks")
	networks[0].(map[string]any)["ipAddress"] = "192.0.2.10/24"
	if err := unstructured.SetNestedSlice(objs[1].Object, networks, "spec", "template", "spec", "networks"); err != nil {
		t.Fatal(err)
	}
	return objs
}

const vmPath = "/apis/kubevirt.io/v1/namespaces/default/virtualmachines"

// TestKlientCreateDropsFieldValidation pins the behaviour behind
// createStrict's NOTE: klient v0.7.0 with controller-runtime v0.23.3 sends no
// fieldValidation for a CreateOption that sets it. When this test fails,
// klient passes the option through and the NOTE is obsolete.
func TestKlientCreateDropsFieldValidation(t *testing.T) {
	srv := newFakeAPIServer(t)
	res, err := resources.New(srv.config())
	if err != nil {
		t.Fatal(err)
	}
	vm := scenarioWithUnknownField(t)[1]
	err = res.Create(context.Background(), vm, func(o *metav1.CreateOptions) { o.FieldValidation = metav1.FieldValidationStrict })
	if err != nil {
		t.Fatalf("klient Create: %v", err)
	}
	posts := srv.posts(vmPath)
	if len(posts) != 1 {
		t.Fatalf("%d POSTs to %s, want 1", len(posts), vmPath)
	}
	if got := posts[0].Query.Get("fieldValidation"); got != "" {
		t.Errorf("klient sent fieldValidation=%q; the NOTE on createStrict says it sends none", got)
	}
}

func TestCreateObjectsReportsStrictRejection(t *testing.T) {
	srv := newFakeAPIServer(t)
	client, err := newKubeClient(srv.config(), nil)
	if err != nil {
		t.Fatal(err)
	}

	res, err := client.createObjects(context.Background(), scenarioWithUnknownField(t))
	if err != nil {
		t.Fatal(err)
	}
	if res.Rejection == nil {
		t.Fatal("no Rejection for a VM with an unknown field")
	}
	if res.Rejection.Object != "VirtualMachine/vm-macvlan" || !slices.Equal(res.Rejection.Fields, []string{"spec.template.spec.networks[0].ipAddress"}) {
		t.Errorf("Rejection = %+v", res.Rejection)
	}
	if len(res.Created) != 1 || res.Created[0].GetKind() != "NetworkAttachmentDefinition" {
		t.Errorf("Created = %d objects, want the NAD created before the VM was refused", len(res.Created))
	}
	posts := srv.posts(vmPath)
	if len(posts) != 1 || posts[0].Query.Get("fieldValidation") != "Strict" {
		t.Errorf("VM POSTs = %+v, want one with fieldValidation=Strict", posts)
	}
}

func TestCreateObjectsAcceptsValidScenario(t *testing.T) {
	srv := newFakeAPIServer(t)
	client, err := newKubeClient(srv.config(), nil)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := scenarioObjects(loadScenario(t, macvlanScenario))
	if err != nil {
		t.Fatal(err)
	}
	res, err := client.createObjects(context.Background(), objs)
	if err != nil {
		t.Fatal(err)
	}
	if res.Rejection != nil || len(res.Created) != 2 || len(res.Warnings) != 0 {
		t.Errorf("result = %+v, want both objects created without warnings", res)
	}
}

func TestWarnDryRunRecordsWarnings(t *testing.T) {
	srv := newFakeAPIServer(t)
	client, err := newKubeClient(srv.config(), nil)
	if err != nil {
		t.Fatal(err)
	}

	warnings, err := client.warnDryRun(context.Background(), scenarioWithUnknownField(t), "vmnet-warn-test")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`unknown field "spec.template.spec.networks[0].ipAddress"`}
	if !slices.Equal(warnings, want) {
		t.Errorf("warnings = %q, want %q", warnings, want)
	}

	posts := srv.posts("/apis/kubevirt.io/v1/namespaces/vmnet-warn-test/virtualmachines")
	if len(posts) != 1 {
		t.Fatalf("%d VM POSTs into the scratch namespace, want 1", len(posts))
	}
	if q := posts[0].Query; q.Get("fieldValidation") != "Warn" || q.Get("dryRun") != "All" {
		t.Errorf("VM POST query = %v, want fieldValidation=Warn and dryRun=All", q)
	}
	if len(srv.posts("/api/v1/namespaces")) != 1 {
		t.Error("the scratch namespace was not created")
	}
	deleted := false
	srv.mu.Lock()
	for _, r := range srv.requests {
		deleted = deleted || r.Method == http.MethodDelete && r.Path == "/api/v1/namespaces/vmnet-warn-test"
	}
	srv.mu.Unlock()
	if !deleted {
		t.Error("the scratch namespace was not deleted")
	}
}

package kind

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
)

// releaseServer serves files on a local test server and counts requests, so
// nothing leaves the machine.
func releaseServer(t *testing.T, files map[string]string) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		body, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv, &requests
}

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func TestCacheFetchPinned(t *testing.T) {
	srv, requests := releaseServer(t, map[string]string{"/v1/op.yaml": "operator"})
	cache := &Cache{Dir: t.TempDir()}
	d := Download{URL: srv.URL + "/v1/op.yaml", SHA256: sum("operator")}

	path, err := cache.Fetch(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(path); string(data) != "operator" {
		t.Errorf("cached content = %q", data)
	}
	if !strings.HasPrefix(path, cache.Dir) || !strings.HasSuffix(path, "/v1/op.yaml") {
		t.Errorf("cache path %s is not <dir>/<host>/<path>", path)
	}

	if _, err := cache.Fetch(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	if n := requests.Load(); n != 1 {
		t.Errorf("%d requests for two fetches, want 1 (the second from the cache)", n)
	}
}

func TestCacheFetchRejectsWrongSum(t *testing.T) {
	srv, _ := releaseServer(t, map[string]string{"/op.yaml": "tampered"})
	cache := &Cache{Dir: t.TempDir()}
	path, _ := cache.pathFor(srv.URL + "/op.yaml")

	_, err := cache.Fetch(context.Background(), Download{URL: srv.URL + "/op.yaml", SHA256: sum("operator"), Env: "X_SHA256"})
	if err == nil || !strings.Contains(err.Error(), sum("tampered")) || !strings.Contains(err.Error(), "X_SHA256") {
		t.Fatalf("error = %v, want one with the actual sha256 and the variable to set", err)
	}
	if _, statErr := os.Stat(path); !os.IsNotExist(statErr) {
		t.Errorf("a file failing its sha256 stays in the cache at %s", path)
	}
}

func TestCacheFetchPublishedSum(t *testing.T) {
	archive := "plugins"
	srv, _ := releaseServer(t, map[string]string{
		"/p.tgz":        archive,
		"/p.tgz.sha256": sum(archive) + "  p.tgz\n",
		"/q.tgz":        "other",
		"/q.tgz.sha256": sum(archive) + "  q.tgz\n",
	})
	cache := &Cache{Dir: t.TempDir()}

	if _, err := cache.Fetch(context.Background(), Download{URL: srv.URL + "/p.tgz", PublishedSHA256URL: srv.URL + "/p.tgz.sha256"}); err != nil {
		t.Fatalf("matching published sha256: %v", err)
	}
	_, err := cache.Fetch(context.Background(), Download{URL: srv.URL + "/q.tgz", PublishedSHA256URL: srv.URL + "/q.tgz.sha256"})
	if err == nil || !strings.Contains(err.Error(), "published at") {
		t.Fatalf("error = %v, want a mismatch against the published sha256", err)
	}
}

func TestCacheFetchRecordsFirstUse(t *testing.T) {
	srv, _ := releaseServer(t, map[string]string{"/op.yaml": "operator"})
	cache := &Cache{Dir: t.TempDir()}
	d := Download{URL: srv.URL + "/op.yaml"}

	path, err := cache.Fetch(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	recorded, err := os.ReadFile(path + recordSuffix)
	if err != nil || strings.TrimSpace(string(recorded)) != sum("operator") {
		t.Fatalf("recorded sha256 = %q (%v), want %s", recorded, err, sum("operator"))
	}

	// A cached file that changed after its first use is refused.
	if err := os.WriteFile(path, []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := cache.Fetch(context.Background(), d); err == nil || !strings.Contains(err.Error(), "changed on disk") {
		t.Fatalf("error = %v, want the changed file refused", err)
	}
}

func TestCacheFetchHTTPError(t *testing.T) {
	srv, _ := releaseServer(t, nil)
	cache := &Cache{Dir: t.TempDir()}
	_, err := cache.Fetch(context.Background(), Download{URL: srv.URL + "/v9.9.9/op.yaml"})
	if err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "v9.9.9") {
		t.Fatalf("error = %v, want HTTP 404 with the URL", err)
	}
}

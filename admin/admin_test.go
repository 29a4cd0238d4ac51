package admin

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, path string) (int, string, http.Header) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	b, _ := io.ReadAll(rec.Body)
	return rec.Code, string(b), rec.Header()
}

func TestEndpoints(t *testing.T) {
	h := New(Sources{
		Model:    func() any { return map[string]string{"version": "v1"} },
		Nodes:    func() any { return []map[string]string{{"id": "edge-1"}} },
		Problems: func() any { return []string{} },
		JWKS:     func() []byte { return []byte(`{"keys":[]}`) },
	})
	if code, _, _ := get(t, h, "/healthz"); code != 200 {
		t.Errorf("/healthz %d", code)
	}
	if code, body, _ := get(t, h, "/readyz"); code != 503 || !strings.Contains(body, "not ready") {
		t.Errorf("/readyz before the first model: %d %q", code, body)
	}
	h.SetReady()
	if code, _, _ := get(t, h, "/readyz"); code != 200 {
		t.Errorf("/readyz when ready: %d", code)
	}
	if code, body, hdr := get(t, h, "/debug/model"); code != 200 || !strings.Contains(body, `"version": "v1"`) || hdr.Get("Content-Type") != "application/json" {
		t.Errorf("/debug/model: %d %q", code, body)
	}
	if code, body, _ := get(t, h, "/debug/nodes"); code != 200 || !strings.Contains(body, "edge-1") {
		t.Errorf("/debug/nodes: %d %q", code, body)
	}
	if code, body, hdr := get(t, h, "/.well-known/jwks.json"); code != 200 || body != `{"keys":[]}` || hdr.Get("Content-Type") != "application/jwk-set+json" {
		t.Errorf("jwks: %d %q %q", code, body, hdr.Get("Content-Type"))
	}
	if code, body, _ := get(t, h, "/metrics"); code != 200 || !strings.Contains(body, "go_goroutines") {
		t.Errorf("/metrics: %d", code)
	}
	if code, _, _ := get(t, h, "/dev/token"); code != 404 {
		t.Errorf("/dev/ without --dev: %d, want 404", code)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/healthz", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /healthz: %d", rec.Code)
	}
}

// The Go profiler answers on the admin listener.
func TestPprof(t *testing.T) {
	srv := httptest.NewServer(New(Sources{Model: func() any { return nil }, Nodes: func() any { return nil }, Problems: func() any { return nil }}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(b), "goroutine profile") {
		t.Fatalf("%d %.200s", resp.StatusCode, b)
	}
}

package admin

import (
	"encoding/json"
	"strings"
	"testing"
)

// /readyz says what gatehouse waits for, in text and JSON, and is ready
// only when nothing is waited for, checks included.
func TestReadyzNamesEveryReason(t *testing.T) {
	h := New(Sources{Model: func() any { return nil }, Nodes: func() any { return nil }, Problems: func() any { return nil }})
	r := h.Readiness()
	r.Wait("issuers", "waiting for keycloak")
	catalog := "source files has not loaded since start: no such file"
	r.Check("catalog", func() string { return catalog })
	code, body, _ := get(t, h, "/readyz")
	if code != 503 || !strings.HasPrefix(body, "not ready:\n") {
		t.Fatalf("/readyz: %d %q", code, body)
	}
	for _, want := range []string{"  catalog: " + catalog, "  issuers: waiting for keycloak", "  model: no catalog generation compiled"} {
		if !strings.Contains(body, want) {
			t.Errorf("/readyz does not say %q:\n%s", want, body)
		}
	}
	code, body, hdr := get(t, h, "/readyz?format=json")
	var got struct {
		Ready   bool
		Waiting []Wait
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil || code != 503 || hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("/readyz?format=json: %d %q %v", code, body, err)
	}
	if got.Ready || len(got.Waiting) != 3 || got.Waiting[0].What != "catalog" || got.Waiting[2].What != "model" {
		t.Errorf("JSON readiness not sorted by what, or incomplete: %+v", got)
	}
	h.SetReady()
	r.Done("issuers")
	catalog = ""
	if code, body, _ := get(t, h, "/readyz"); code != 200 || body != "ready\n" {
		t.Errorf("/readyz with nothing waited for: %d %q", code, body)
	}
	r.Wait("shutdown", "draining")
	if code, body, _ := get(t, h, "/readyz"); code != 503 || !strings.Contains(body, "shutdown: draining") {
		t.Errorf("/readyz while draining: %d %q", code, body)
	}
}

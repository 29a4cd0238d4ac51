package e2e

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/harness"
)

const backstageToken = "gatehouse-e2e-static-token"

// startBackstage runs the real Backstage backend of examples/backstage on a
// given port, serving catalogFile, with its proxy endpoint pointing at edge.
func startBackstage(t *testing.T, port int, catalogFile, edge string) *proc {
	t.Helper()
	p, _, err := harness.StartReady(context.Background(), harness.Spec{Name: "backstage",
		Args: []string{"bash", filepath.Join(repoRoot, "examples", "backstage", "run.sh"), fmt.Sprint(port), catalogFile},
		Env:  []string{"BACKSTAGE_STATIC_TOKEN=" + backstageToken, "GATEHOUSE_EDGE_URL=" + edge, "NODE_ENV=production"}}, 180*time.Second)
	if p == nil {
		t.Fatal(err)
	}
	bs := cleanup(t, p, 40)
	if err != nil {
		t.Fatalf("the real Backstage (examples/backstage) %v:\n%s", err, p.Tail(40))
	}
	return bs
}

func backstageCatalog(ordersURL, ledgerURL string, extra ...string) string {
	docs := []string{
		"apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata: {name: team-a}\nspec: {type: team, children: []}",
		"apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata: {name: team-b}\nspec: {type: team, children: []}",
		"apiVersion: backstage.io/v1alpha1\nkind: User\nmetadata: {name: guest}\nspec: {memberOf: [team-a]}",
		fmt.Sprintf("apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: orders\n  annotations: {gatehouse.dev/upstream: %q}\nspec: {type: service, lifecycle: production, owner: team-a}", ordersURL),
		fmt.Sprintf("apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: ledger\n  annotations: {gatehouse.dev/upstream: %q}\nspec: {type: service, lifecycle: production, owner: team-b}", ledgerURL),
	}
	// Enough unrouted entities for several pages of 5.
	for i := 0; i < 22; i++ {
		docs = append(docs, fmt.Sprintf("apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata: {name: filler-%02d}\nspec: {type: library, lifecycle: production, owner: team-b}", i))
	}
	return strings.Join(append(docs, extra...), "\n---\n") + "\n"
}

// TestBackstage: gatehouse follows a real Backstage catalog, accepts
// Backstage user tokens, and serves the Backstage proxy -> Envoy -> service
// flow under the verified identity of the Backstage user.
func TestBackstage(t *testing.T) {
	t.Parallel()
	var g *gatehouse
	orders := startVerifyingUpstream(t, "orders", func() string { return "http://" + g.adminAddr + "/.well-known/jwks.json" })
	ledger := startUpstream(t, "ledger")
	dir := t.TempDir()
	bsCat := filepath.Join(dir, "backstage-catalog.yaml")
	if err := os.WriteFile(bsCat, []byte(backstageCatalog(orders.url, ledger.url)), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "files.yaml")
	if err := os.WriteFile(empty, []byte("# nothing here: the catalog comes from Backstage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bsPort := freePort(t)
	ports := []int{freePort(t), freePort(t), freePort(t), freePort(t)}
	bsURL := fmt.Sprintf("http://127.0.0.1:%d", bsPort)
	edgeURL := fmt.Sprintf("http://127.0.0.1:%d", ports[2])
	bs := startBackstage(t, bsPort, bsCat, edgeURL)

	env := []string{"E2E_BACKSTAGE_TOKEN=" + backstageToken, "GATEHOUSE_CATALOG_BACKSTAGE_BASE_URL=" + bsURL,
		"GATEHOUSE_CATALOG_BACKSTAGE_TOKEN_ENV=E2E_BACKSTAGE_TOKEN", "GATEHOUSE_CATALOG_BACKSTAGE_POLL_INTERVAL=1s", "GATEHOUSE_CATALOG_BACKSTAGE_PAGE_SIZE=5"}
	g = startGatehouseEnv(t, empty, fmt.Sprintf(`issuers:
  - name: backstage
    issuer_url: %s/api/auth
    jwks_url: %s/api/auth/.well-known/jwks.json
    audiences: [backstage]
    algorithms: [ES256]
    entity_ref_subjects: true
`, bsURL, bsURL), env, ports...)
	e := startEnvoy(t, g, "edge-backstage", true)

	guestToken := func() string {
		req, _ := http.NewRequest("GET", bsURL+"/api/auth/guest/refresh", nil)
		req.Header.Set("X-Requested-With", "XMLHttpRequest")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var r struct {
			BackstageIdentity struct {
				Token string `json:"token"`
			} `json:"backstageIdentity"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || r.BackstageIdentity.Token == "" {
			t.Fatalf("guest sign-in: %d %v", resp.StatusCode, err)
		}
		return r.BackstageIdentity.Token
	}
	sources := func() map[string]any {
		var st []map[string]any
		getJSON(t, "http://"+g.adminAddr+"/debug/sources", &st)
		for _, s := range st {
			if s["name"] == "backstage" {
				return s
			}
		}
		t.Fatalf("no backstage source in /debug/sources: %v", st)
		return nil
	}
	guest := guestToken()
	bearer := map[string]string{"Authorization": "Bearer " + guest}
	expectAuthed := func(path string, want int, within time.Duration) time.Duration {
		t.Helper()
		return eventually(t, within, fmt.Sprintf("GET %s with the guest token -> %d", path, want), func() error {
			code, _, _, err := do(e.edgePort, "GET", "x", path, bearer)
			if err != nil {
				return err
			}
			if code != want {
				return fmt.Errorf("%d", code)
			}
			return nil
		})
	}

	t.Run("the Backstage catalog becomes routes; pagination syncs all of it", func(t *testing.T) {
		took := expectAuthed("/orders/1", 200, 30*time.Second)
		t.Logf("Backstage entity routed %s after gatehouse start", took)
		expectAuthed("/ledger/1", 403, 5*time.Second) // owned by team-b
		var total struct {
			TotalItems int `json:"totalItems"`
		}
		req, _ := http.NewRequest("GET", bsURL+"/api/catalog/entities/by-query?limit=1", nil)
		req.Header.Set("Authorization", "Bearer "+backstageToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = json.NewDecoder(resp.Body).Decode(&total)
		resp.Body.Close()
		eventually(t, 10*time.Second, "every Backstage entity synced", func() error {
			if n := int(sources()["entities"].(float64)); n != total.TotalItems || n < 27 {
				return fmt.Errorf("gatehouse has %d of %d", n, total.TotalItems)
			}
			return nil
		})
	})
	t.Run("Backstage proxy -> Envoy -> service under the guest's verified identity", func(t *testing.T) {
		req, _ := http.NewRequest("GET", bsURL+"/api/proxy/gatehouse/orders/7", nil)
		req.Header.Set("Authorization", "Bearer "+guest)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var s seen
		err = json.NewDecoder(resp.Body).Decode(&s)
		resp.Body.Close()
		if resp.StatusCode != 200 || err != nil {
			t.Fatalf("through the Backstage proxy: %d %v", resp.StatusCode, err)
		}
		if s.Headers["x-gatehouse-user"] != "user:default/guest" || s.Assertion == nil || !s.Assertion.Valid || s.Assertion.Claims["sub"] != "user:default/guest" {
			t.Fatalf("the upstream did not get the verified Backstage identity: %v %+v", s.Headers, s.Assertion)
		}
		req, _ = http.NewRequest("GET", bsURL+"/api/proxy/gatehouse/ledger/7", nil)
		req.Header.Set("Authorization", "Bearer "+guest)
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 403 {
			t.Fatalf("ledger (team-b) through the proxy: %d, want 403", resp.StatusCode)
		}
	})
	t.Run("an entity added in Backstage is routed; removed, it is gone", func(t *testing.T) {
		billing := fmt.Sprintf("apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: billing\n  annotations: {gatehouse.dev/upstream: %q}\nspec: {type: service, lifecycle: production, owner: team-a}", orders.url)
		if err := os.WriteFile(bsCat, []byte(backstageCatalog(orders.url, ledger.url, billing)), 0o644); err != nil {
			t.Fatal(err)
		}
		sum := sha1.Sum([]byte("file:" + bsCat))
		body := fmt.Sprintf(`{"entityRef":"location:default/generated-%s"}`, hex.EncodeToString(sum[:]))
		req, _ := http.NewRequest("POST", bsURL+"/api/catalog/refresh", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+backstageToken)
		req.Header.Set("Content-Type", "application/json")
		if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
			t.Fatalf("POST /api/catalog/refresh: %v %v", resp, err)
		}
		took := expectAuthed("/billing/1", 200, 20*time.Second)
		t.Logf("added in Backstage, routed by Envoy after %s", took)
		if err := os.WriteFile(bsCat, []byte(backstageCatalog(orders.url, ledger.url)), 0o644); err != nil {
			t.Fatal(err)
		}
		// Backstage deletes orphaned entities on its own schedule (~30 s).
		took = expectAuthed("/billing/1", 404, 90*time.Second)
		t.Logf("removed from Backstage, 404 after %s", took)
	})
	t.Run("Backstage down: routes keep working, the error is visible; back: sync resumes", func(t *testing.T) {
		bs.stop(t)
		eventually(t, 10*time.Second, "the sync error is visible", func() error {
			if s := sources(); s["lastError"] == nil || s["lastError"] == "" {
				return fmt.Errorf("no error yet")
			}
			return nil
		})
		age1 := sources()["syncAgeSeconds"].(float64)
		expectAuthed("/orders/1", 200, time.Second)
		time.Sleep(1500 * time.Millisecond)
		if age2 := sources()["syncAgeSeconds"].(float64); age2 <= age1 {
			t.Errorf("sync age does not grow while Backstage is down (%v then %v)", age1, age2)
		}
		resp, err := http.Get("http://" + g.adminAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		metrics, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(metrics), `gatehouse_catalog_sync_errors_total{source="backstage"}`) {
			t.Error("/metrics does not count the failed syncs")
		}
		startBackstage(t, bsPort, bsCat, edgeURL)
		eventually(t, 60*time.Second, "sync resumes", func() error {
			s := sources()
			if s["lastError"] != nil && s["lastError"] != "" {
				return fmt.Errorf("still failing: %v", s["lastError"])
			}
			if s["syncAgeSeconds"].(float64) > 5 {
				return fmt.Errorf("sync age %v", s["syncAgeSeconds"])
			}
			return nil
		})
		// The restarted Backstage signs with a new key: picked up too.
		guest = guestToken()
		bearer["Authorization"] = "Bearer " + guest
		expectAuthed("/orders/1", 200, 15*time.Second)
	})
}

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// catalogFor renders a catalog with the given components (name -> annotations
// block) owned by one team.
func writeCatalog(t *testing.T, path string, docs ...string) {
	t.Helper()
	all := append([]string{`apiVersion: backstage.io/v1alpha1
kind: Group
metadata: {name: payments}
spec: {type: team, children: []}`}, docs...)
	if err := os.WriteFile(path, []byte(strings.Join(all, "\n---\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func component(name string, annotations ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: %s\n", name)
	if len(annotations) > 0 {
		b.WriteString("  annotations:\n")
		for i := 0; i+1 < len(annotations); i += 2 {
			fmt.Fprintf(&b, "    %s: %q\n", annotations[i], annotations[i+1])
		}
	}
	b.WriteString("spec: {type: service, lifecycle: production, owner: payments}")
	return b.String()
}

// publicAll: the routing tests mark their paths public (no token), so they
// test routing alone; authorization has its own end-to-end tests.
const publicAll = "gatehouse.dev/public-paths"

// TestEdge runs the edge scenario over state-of-the-world and delta xDS.
func TestEdge(t *testing.T) {
	for _, mode := range []struct {
		name  string
		delta bool
	}{{"sotw", false}, {"delta", true}} {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			testEdge(t, mode.delta)
		})
	}
}

func testEdge(t *testing.T, delta bool) {
	orders := startUpstream(t, "orders")
	orders2 := startUpstream(t, "orders-v2")
	shop := startUpstream(t, "shop")
	dir := t.TempDir()
	cat := filepath.Join(dir, "catalog-info.yaml")
	writeCatalog(t, cat,
		component("orders", "gatehouse.dev/upstream", orders.url, publicAll, "/orders/**"),
		component("shop", "gatehouse.dev/upstream", shop.url, "gatehouse.dev/hosts", "shop.example.com", publicAll, "/**"),
	)
	g := startGatehouse(t, cat, "")
	e := startEnvoy(t, g, "edge-"+fmt.Sprint(delta), delta)
	envoyPid := e.Pid()

	t.Run("routes by host and prefix", func(t *testing.T) {
		expectRoute(t, e.edgePort, "any.example.com", "/orders/7", 200, "orders", 5*time.Second)
		code, s, err := call(e.edgePort, "any.example.com", "/orders")
		if err != nil || code != 200 || s.Upstream != "orders" || s.Path != "/orders" {
			t.Fatalf("GET /orders: %d %+v %v", code, s, err)
		}
		// Segment boundaries: /ordersx is not under /orders.
		if code, _, _ := call(e.edgePort, "any.example.com", "/ordersx"); code != 404 {
			t.Errorf("GET /ordersx: %d, want 404", code)
		}
		if code, s, _ := call(e.edgePort, "shop.example.com", "/cart"); code != 200 || s.Upstream != "shop" {
			t.Errorf("GET shop.example.com/cart: %d from %q, want 200 from shop", code, s.Upstream)
		}
		// The host routes ignore the port in the Host header.
		if code, s, _ := call(e.edgePort, fmt.Sprintf("shop.example.com:%d", e.edgePort), "/"); code != 200 || s.Upstream != "shop" {
			t.Errorf("GET shop.example.com:port/: %d from %q", code, s.Upstream)
		}
		if code, _, _ := call(e.edgePort, "any.example.com", "/nope"); code != 404 {
			t.Errorf("unknown path: %d, want 404 from Envoy", code)
		}
		// Path normalisation happens before routing: /x/../orders/1 is /orders/1.
		if code, s, _ := call(e.edgePort, "any.example.com", "/shop/../orders/1"); code != 200 || s.Path != "/orders/1" {
			t.Errorf("normalised path: %d %q", code, s.Path)
		}
	})

	t.Run("catalog edits apply live", func(t *testing.T) {
		writeCatalog(t, cat,
			component("orders", "gatehouse.dev/upstream", orders2.url, publicAll, "/orders/**"),
			component("shop", "gatehouse.dev/upstream", shop.url, "gatehouse.dev/hosts", "shop.example.com", publicAll, "/**"),
			component("billing", "gatehouse.dev/upstream", orders.url, "gatehouse.dev/path-prefix", "/billing/api", publicAll, "/billing/api/**"),
		)
		took := expectRoute(t, e.edgePort, "x", "/billing/api/invoices", 200, "orders", 2*time.Second)
		t.Logf("added route served after %s", took)
		expectRoute(t, e.edgePort, "x", "/orders/1", 200, "orders-v2", 2*time.Second)
		writeCatalog(t, cat,
			component("orders", "gatehouse.dev/upstream", orders2.url, publicAll, "/orders/**"),
			component("shop", "gatehouse.dev/upstream", shop.url, "gatehouse.dev/hosts", "shop.example.com", publicAll, "/**"),
		)
		took = expectRoute(t, e.edgePort, "x", "/billing/api/invoices", 404, "", 2*time.Second)
		t.Logf("removed route gone after %s", took)
		if e.Pid() != envoyPid || e.Exited() {
			t.Fatal("Envoy restarted")
		}
	})

	t.Run("a malformed entity leaves the others served", func(t *testing.T) {
		writeCatalog(t, cat,
			component("orders", "gatehouse.dev/upstream", orders2.url, publicAll, "/orders/**"),
			component("shop", "gatehouse.dev/upstream", "ftp://"+strings.TrimPrefix(shop.url, "http://"), "gatehouse.dev/hosts", "shop.example.com", publicAll, "/**"),
			component("audit", "gatehouse.dev/upstream", orders.url, publicAll, "/audit/**"),
		)
		// The new entity in the same file is served...
		expectRoute(t, e.edgePort, "x", "/audit/log", 200, "orders", 2*time.Second)
		// ...and the broken one keeps its last good version.
		if code, s, _ := call(e.edgePort, "shop.example.com", "/"); code != 200 || s.Upstream != "shop" {
			t.Errorf("shop after a bad edit: %d from %q, want its last good route", code, s.Upstream)
		}
		var problems []map[string]any
		getJSON(t, "http://"+g.adminAddr+"/debug/problems", &problems)
		found := false
		for _, p := range problems {
			if p["entity"] == "component:default/shop" && strings.Contains(fmt.Sprint(p["message"]), "ftp") {
				found = true
			}
		}
		if !found {
			t.Errorf("/debug/problems does not report the bad upstream of shop: %v", problems)
		}
		out, err := exec.Command(gatehouseBin, "validate", cat).CombinedOutput()
		if err == nil {
			t.Fatalf("gatehouse validate exited 0 on a broken catalog:\n%s", out)
		}
		line := lineOf(t, cat, "ftp://")
		want := fmt.Sprintf("%s:%d: error: component:default/shop: metadata.annotations[gatehouse.dev/upstream]", cat, line)
		if !strings.Contains(string(out), want) || !strings.Contains(string(out), "fix:") {
			t.Errorf("validate output lacks %q with a fix:\n%s", want, out)
		}
	})

	t.Run("gatehouse restart: Envoy keeps serving, then reconnects without churn", func(t *testing.T) {
		// A valid catalog: the last good version of a broken entity lives in
		// memory only, so a restart with a broken entity would drop it (a
		// change, which is not what this test is about).
		writeCatalog(t, cat,
			component("orders", "gatehouse.dev/upstream", orders2.url, publicAll, "/orders/**"),
			component("shop", "gatehouse.dev/upstream", orders.url, "gatehouse.dev/hosts", "shop.example.com", publicAll, "/**"),
		)
		expectRoute(t, e.edgePort, "shop.example.com", "/", 200, "orders", 2*time.Second)
		expectRoute(t, e.edgePort, "x", "/audit/log", 404, "", 2*time.Second)
		before := e.versions(t)
		modifiedBefore := e.stat(t, "listener_manager.listener_modified") + e.stat(t, "cluster_manager.cluster_modified")
		ports := g.ports()
		g.stop(t)
		eventually(t, 5*time.Second, "envoy notices gatehouse is gone", func() error {
			if e.stat(t, "control_plane.connected_state") != 0 {
				return fmt.Errorf("still connected")
			}
			return nil
		})
		if code, s, _ := call(e.edgePort, "x", "/orders/1"); code != 200 || s.Upstream != "orders-v2" {
			t.Fatalf("with gatehouse down: %d from %q, want the last config served", code, s.Upstream)
		}
		g2 := startGatehouse(t, cat, "", ports...)
		eventually(t, 15*time.Second, "envoy reconnects", func() error {
			if e.stat(t, "control_plane.connected_state") != 1 {
				return fmt.Errorf("not connected")
			}
			if len(g2.nodes(t)) != 1 {
				return fmt.Errorf("gatehouse sees %d nodes", len(g2.nodes(t)))
			}
			return nil
		})
		// Give the new gatehouse time to have answered every type.
		time.Sleep(500 * time.Millisecond)
		after := e.versions(t)
		for k, v := range before {
			if after[k] != v {
				t.Errorf("%s: version %s before the restart, %s after", k, v, after[k])
			}
		}
		if m := e.stat(t, "listener_manager.listener_modified") + e.stat(t, "cluster_manager.cluster_modified"); m != modifiedBefore {
			t.Errorf("Envoy modified listeners/clusters on reconnect (%d -> %d)", modifiedBefore, m)
		}
		expectRoute(t, e.edgePort, "x", "/orders/1", 200, "orders-v2", 2*time.Second)
	})
}

func lineOf(t *testing.T, path, substr string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, substr) {
			return i + 1
		}
	}
	t.Fatalf("%q not in %s", substr, path)
	return 0
}

// The committed bootstraps are accepted by the real Envoy.
func TestCommittedBootstrapsValidate(t *testing.T) {
	for _, f := range []string{"envoy/edge.yaml", "envoy/edge-delta.yaml", "examples/compose/envoy-edge.yaml"} {
		out, err := exec.Command(envoyBin, "--mode", "validate", "-c", filepath.Join(repoRoot, f)).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "OK") {
			t.Errorf("envoy rejects %s: %v\n%s", f, err, out)
		}
	}
}

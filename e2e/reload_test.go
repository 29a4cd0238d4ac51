package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// SIGHUP applies a new catalog source without dropping the xDS stream; a
// broken configuration is refused and the running one stays.
func TestConfigReload(t *testing.T) {
	up := startUpstream(t, "up")
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
	writeCatalog(t, a, component("alpha", "gatehouse.dev/upstream", up.url, publicAll, "/alpha/**"))
	writeCatalog(t, b, component("beta", "gatehouse.dev/upstream", up.url, publicAll, "/beta/**"))
	g := startGatehouse(t, a, "")
	e := startEnvoy(t, g, "edge-reload", false)
	expectRoute(t, e.edgePort, "x", "/alpha/1", 200, "up", 5*time.Second)
	before := g.nodes(t)[0]["connectedAt"]

	cfg, err := os.ReadFile(g.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	// A broken configuration: refused, nothing changes.
	if err := os.WriteFile(g.cfgPath, []byte(string(cfg)+"\nbogus_key: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = syscall.Kill(g.Pid(), syscall.SIGHUP)
	eventually(t, 5*time.Second, "the broken configuration is reported", func() error {
		if !strings.Contains(g.Log(), "configuration not reloaded") {
			return os.ErrNotExist
		}
		return nil
	})
	expectRoute(t, e.edgePort, "x", "/alpha/1", 200, "up", time.Second)

	// Another catalog file and log level: applied on SIGHUP.
	next := strings.Replace(string(cfg), a, b, 1)
	next = strings.Replace(next, "level: debug", "level: info", 1)
	if err := os.WriteFile(g.cfgPath, []byte(next), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = syscall.Kill(g.Pid(), syscall.SIGHUP)
	took := expectRoute(t, e.edgePort, "x", "/beta/1", 200, "up", 2*time.Second)
	t.Logf("new catalog source served %s after SIGHUP", took)
	expectRoute(t, e.edgePort, "x", "/alpha/1", 404, "", 2*time.Second)
	if after := g.nodes(t)[0]["connectedAt"]; after != before {
		t.Fatalf("the xDS stream was dropped by the reload (connected %v, now %v)", before, after)
	}
	if !strings.Contains(g.Log(), "log level changed") {
		t.Error("log level change not applied")
	}
}

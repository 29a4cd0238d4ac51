package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// SIGTERM drains in-flight checks and flushes the audit trail: every
// decision Envoy asked for is in the file.
func TestSIGTERMFlushesAudit(t *testing.T) {
	up := startUpstream(t, "orders")
	cat := filepath.Join(t.TempDir(), "catalog.yaml")
	writeCatalog(t, cat, component("orders", "gatehouse.dev/upstream", up.url))
	g := startGatehouse(t, cat, "")
	e := startEnvoy(t, g, "edge-audit", false)
	expectRoute(t, e.edgePort, "x", "/orders/1", 401, "", 5*time.Second)

	// Load while gatehouse shuts down: every request that gatehouse answered
	// (401 from Check) must leave an audit record; the others get 503 from
	// Envoy (fail closed) or no answer.
	var wg sync.WaitGroup
	var mu sync.Mutex
	denied, total := 0, 0
	stop := make(chan struct{})
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				code, _, _ := call(e.edgePort, "x", "/orders/flush")
				mu.Lock()
				total++
				if code == 401 {
					denied++
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	_ = syscall.Kill(g.Pid(), syscall.SIGTERM)
	select {
	case <-g.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("gatehouse did not exit within 10 s of SIGTERM")
	}
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()
	if g.Err() != nil {
		t.Fatalf("gatehouse exited with %v after SIGTERM", g.Err())
	}
	b, err := os.ReadFile(g.auditPath)
	if err != nil {
		t.Fatal(err)
	}
	records := strings.Count(string(b), `"path":"/orders/flush"`)
	t.Logf("%d requests, %d answered 401 by gatehouse, %d audit records", total, denied, records)
	if denied < 50 || records != denied {
		t.Fatalf("%d requests denied by gatehouse but %d audit records after SIGTERM", denied, records)
	}
	if !strings.Contains(g.Log(), "audit flushed") || !strings.Contains(g.Log(), "dropped=0") {
		t.Errorf("no clean audit flush in the log:\n%s", tail(g.Log(), 5))
	}
}

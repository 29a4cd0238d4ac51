package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Issue 15: two gatehouse replicas behind one real Envoy; each replica
// restarted in turn (SIGTERM, wait, start) under a steady load of allowed
// and denied requests. The drain (shutdown.drain), the health-checked
// clusters and the late listeners together must leave no request with a
// 5xx or a wrong decision, and the two replicas' audit lines must equal
// the decisions.
func TestReplicasRollingRestart(t *testing.T) {
	rs, e, callers := startReplicaScenario(t)
	l := startLoad(t, e.edgePort, callers, 4, 20000)
	time.Sleep(time.Second)
	for i := range 2 {
		rs.restart(t, i, syscall.SIGTERM)
		rs.waitHealthy(t, e)
		time.Sleep(time.Second)
	}
	res := l.finish()
	rs.stopAll(t)
	audit := rs.auditLines(t)
	t.Logf("rolling restart: %s; %d audit lines from %d gatehouse processes; Envoy: %s", res, audit, len(rs.all), authzStats(t, e))
	if res.sent < 200 {
		t.Fatalf("only %d requests sent: the load did not run", res.sent)
	}
	if res.failed() > 0 || res.wrong > 0 {
		t.Fatalf("%d requests failed (5xx or no answer) and %d got a wrong decision; first: %v", res.failed(), res.wrong, res.firsts)
	}
	if audit != res.decided() {
		t.Fatalf("%d decisions but %d audit lines", res.decided(), audit)
	}
}

// kill -9 of one replica under the same load: the Checks in flight on it
// are lost with it, but Envoy retries a Check whose connection failed or
// was reset on the other replica (GrpcService.retry_policy), and outlier
// detection and health checks eject the dead one. The failures are bounded
// by the requests in flight at the kill (one per load worker); none is
// allowed wrongly.
func TestReplicaKilled(t *testing.T) {
	rs, e, callers := startReplicaScenario(t)
	const workers = 4
	l := startLoad(t, e.edgePort, callers, workers, 20000)
	time.Sleep(time.Second)
	killedAt := time.Now()
	rs.restartAfter(t, 0, syscall.SIGKILL, 3*time.Second)
	rs.waitHealthy(t, e)
	time.Sleep(time.Second)
	res := l.finish()
	rs.stopAll(t)
	t.Logf("kill -9 at %s: %s; %d audit lines (the killed replica's unflushed records are lost with it); Envoy: %s",
		killedAt.Format("15:04:05.000"), res, rs.auditLines(t), authzStats(t, e))
	if res.sent < 200 {
		t.Fatalf("only %d requests sent: the load did not run", res.sent)
	}
	if res.wrongAllow > 0 {
		t.Fatalf("%d requests allowed wrongly; first: %v", res.wrongAllow, res.firsts)
	}
	if res.wrong-res.wrongAllow > 0 {
		t.Errorf("%d requests denied with the wrong status; first: %v", res.wrong-res.wrongAllow, res.firsts)
	}
	// Each worker has one request in flight: at most that many Checks
	// were on the killed replica when it died.
	if res.failed() > workers {
		t.Fatalf("%d requests failed after kill -9 of one of two replicas, more than the %d in flight; first: %v", res.failed(), workers, res.firsts)
	}
}

// ---- two replicas and one Envoy ----

type replicaSet struct {
	cat, extra string
	env        []string
	ports      [2][]int
	live       [2]*gatehouse
	all        []*gatehouse // every process started, for the audit
}

// startReplicaScenario starts Keycloak, an upstream, two replicas serving
// authzCatalog and an Envoy whose bootstrap lists both for xDS; the
// ext_authz cluster gatehouse sends lists both too. It returns callers
// with their expected statuses: alice (owner) 200, bob 403, no token 401.
func startReplicaScenario(t *testing.T) (*replicaSet, *envoy, []caller) {
	kc := startIDP(t)
	up := startUpstream(t, "orders")
	cat := filepath.Join(t.TempDir(), "catalog.yaml")
	if err := os.WriteFile(cat, []byte(authzCatalog(up.url, "[storefront]")), 0o644); err != nil {
		t.Fatal(err)
	}
	rs := &replicaSet{cat: cat, extra: fmt.Sprintf(`issuers:
  - name: keycloak
    issuer_url: %s
    audiences: [gatehouse]
    algorithms: [RS256]
`, kc.issuer)}
	for i := range rs.ports {
		rs.ports[i] = []int{freePort(t), freePort(t), freePort(t), freePort(t)}
	}
	rs.ports[1][2] = rs.ports[0][2] // one edge port: both replicas send Envoy the same listener
	rs.env = []string{
		fmt.Sprintf("GATEHOUSE_AUTHZ_ENVOY_ADDRESS=127.0.0.1:%d,127.0.0.1:%d", rs.ports[0][3], rs.ports[1][3]),
		"GATEHOUSE_SHUTDOWN_DRAIN=2s",
	}
	rs.start(t, 0)
	rs.start(t, 1)
	e := startEnvoy(t, rs.live[0], "edge-replicas", false, "--xds-address", rs.live[1].xdsAddr)
	rs.waitHealthy(t, e)
	expectRoute(t, e.edgePort, "gw.example.com", "/orders/healthz", 200, "orders", 10*time.Second)
	callers := []caller{
		{"alice", kc.userToken(t, "alice", "gatehouse-cli"), 200},
		{"bob", kc.userToken(t, "bob", "gatehouse-cli"), 403},
		{"anonymous", "", 401},
	}
	return rs, e, callers
}

func (rs *replicaSet) start(t *testing.T, i int) {
	t.Helper()
	g := startGatehouseEnv(t, rs.cat, rs.extra, rs.env, rs.ports[i]...)
	rs.live[i] = g
	rs.all = append(rs.all, g)
}

// restart stops replica i with sig, waits for it to exit and starts it
// again on the same ports.
func (rs *replicaSet) restart(t *testing.T, i int, sig syscall.Signal) { rs.restartAfter(t, i, sig, 0) }

func (rs *replicaSet) restartAfter(t *testing.T, i int, sig syscall.Signal, down time.Duration) {
	t.Helper()
	g := rs.live[i]
	start := time.Now()
	_ = syscall.Kill(g.Pid(), sig)
	select {
	case <-g.Done():
	case <-time.After(15 * time.Second):
		t.Fatalf("replica %d did not exit within 15 s of %s", i, sig)
	}
	if sig == syscall.SIGTERM && g.Err() != nil {
		t.Fatalf("replica %d exited with %v after SIGTERM", i, g.Err())
	}
	t.Logf("replica %d exited %s after %s", i, time.Since(start).Round(time.Millisecond), sig)
	time.Sleep(down)
	rs.start(t, i)
}

// waitHealthy waits until Envoy's health checks see both replicas in the
// xDS and the ext_authz cluster.
func (rs *replicaSet) waitHealthy(t *testing.T, e *envoy) {
	t.Helper()
	d := eventually(t, 15*time.Second, "Envoy sees both replicas healthy", func() error {
		for _, c := range []string{"gatehouse_xds", "gatehouse_ext_authz"} {
			if n := e.stat(t, "cluster."+c+".membership_healthy"); n != 2 {
				return fmt.Errorf("%s: %d healthy", c, n)
			}
		}
		return nil
	})
	t.Logf("Envoy sees both replicas healthy after %s", d.Round(time.Millisecond))
}

// authzStats are Envoy's counters of the ext_authz cluster that say how
// replicas were left: Checks retried on another replica, replicas ejected
// after connection failures, health checks that failed.
func authzStats(t *testing.T, e *envoy) string {
	c := "cluster.gatehouse_ext_authz."
	return fmt.Sprintf("%d Checks retried, %d ejections, %d failed health checks; %s",
		e.stat(t, c+"upstream_rq_retry"), e.stat(t, c+"outlier_detection.ejections_enforced_total"), e.stat(t, c+"health_check.failure"),
		nonZeroStats(t, e, c))
}

// nonZeroStats lists the ext_authz cluster's non-zero failure counters
// (timeouts, resets, connect failures, retries given up), which say why a
// Check failed when one did.
func nonZeroStats(t *testing.T, e *envoy, prefix string) string {
	var out []string
	for _, s := range []string{"upstream_rq_timeout", "upstream_rq_per_try_timeout", "upstream_cx_connect_fail", "upstream_rq_rx_reset", "upstream_rq_tx_reset",
		"upstream_rq_pending_failure_eject", "upstream_cx_destroy_remote_with_active_rq", "upstream_rq_retry_overflow", "upstream_rq_retry_limit_exceeded",
		"upstream_rq_retry_success", "upstream_cx_protocol_error", "upstream_rq_maintenance_mode", "lb_healthy_panic", "upstream_cx_none_healthy"} {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/stats?filter=^%s$", e.adminPort, strings.ReplaceAll(prefix+s, ".", "\\.")))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if _, v, ok := strings.Cut(strings.TrimSpace(string(b)), ": "); ok && v != "0" {
			out = append(out, s+"="+v)
		}
	}
	return "non-zero: " + strings.Join(out, " ")
}

// stopAll stops the live replicas with SIGTERM (they drain, then flush
// their audit).
func (rs *replicaSet) stopAll(t *testing.T) {
	var wg sync.WaitGroup
	for _, g := range rs.live {
		wg.Add(1)
		go func() { defer wg.Done(); g.stop(t) }()
	}
	wg.Wait()
}

// auditLines counts the load's audit records over every process started.
func (rs *replicaSet) auditLines(t *testing.T) int {
	n := 0
	for _, g := range rs.all {
		b, err := os.ReadFile(g.auditPath)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		n += strings.Count(string(b), `"path":"/orders/load-`)
	}
	return n
}

// ---- load ----

type caller struct {
	name, token string
	want        int
}

type loadResult struct {
	sent, wrong, wrongAllow, fiveXX, noAnswer int
	codes                                     map[int]int
	firsts                                    []string // the first failures and wrong decisions
}

func (r loadResult) failed() int  { return r.fiveXX + r.noAnswer }
func (r loadResult) decided() int { return r.codes[200] + r.codes[401] + r.codes[403] }
func (r loadResult) String() string {
	return fmt.Sprintf("%d requests: %d allowed (200), %d 401, %d 403, %d 5xx, %d without an answer, %d wrong decisions",
		r.sent, r.codes[200], r.codes[401], r.codes[403], r.fiveXX, r.noAnswer, r.wrong)
}

type load struct {
	stop chan struct{}
	once sync.Once
	wg   sync.WaitGroup
	mu   sync.Mutex
	res  loadResult
}

// startLoad sends requests through the edge from workers goroutines, each
// one at a time with a 5 ms pause, cycling through callers, until finish
// or max requests.
func startLoad(t *testing.T, port int, callers []caller, workers int, max int64) *load {
	l := &load{stop: make(chan struct{}), res: loadResult{codes: map[int]int{}}}
	var n atomic.Int64
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				i := n.Add(1)
				if i > max {
					return
				}
				c := callers[int(i)%len(callers)]
				h := map[string]string{}
				if c.token != "" {
					h["Authorization"] = "Bearer " + c.token
				}
				code, _, _, err := do(port, "GET", "gw.example.com", fmt.Sprintf("/orders/load-%d", i), h)
				l.record(c, code, err)
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	t.Cleanup(func() { l.finish() })
	return l
}

func (l *load) record(c caller, code int, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := &l.res
	r.sent++
	r.codes[code]++
	bad := ""
	switch {
	case err != nil && code == 0:
		r.noAnswer++
		bad = err.Error()
	case code >= 500:
		r.fiveXX++
		bad = fmt.Sprint(code)
	case code != c.want:
		r.wrong++
		if code == 200 {
			r.wrongAllow++
		}
		bad = fmt.Sprintf("%d, want %d", code, c.want)
	}
	if bad != "" && len(r.firsts) < 5 {
		r.firsts = append(r.firsts, time.Now().Format("15:04:05.000")+" "+c.name+": "+bad)
	}
}

// finish stops the load and returns what it saw (idempotent).
func (l *load) finish() loadResult {
	l.once.Do(func() { close(l.stop) })
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.res
}

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// Issue 15 (start ready) and issue 14 item 15: Checks sent to a replica
// from the moment its process starts are refused at once (nothing
// listens) or decided, never left waiting for Envoy's 500 ms timeout, and
// the first decision is already right: with a real issuer (Keycloak) the
// token verifies (no 401 issuer_unavailable); with --dev, the development
// issuer is ready at once. /healthz answers at once.
func TestCheckAtStartNeverTimesOut(t *testing.T) {
	t.Run("dev", func(t *testing.T) {
		cat := writeAuthzCatalog(t)
		s := startAndProbe(t, cat, "", "--dev", "")
		s.require(t, 401) // no token yet: the dev issuer's first token is minted once it serves
		if s.firstDecision > 1500*time.Millisecond {
			t.Errorf("serve --dev decided its first Check %s after start; the development issuer should be ready at once", s.firstDecision)
		}
		out, err := exec.Command(gatehouseBin, "token", "--admin", "http://"+s.g.adminAddr, "--user", "user:default/alice").Output()
		if err != nil {
			t.Fatalf("gatehouse token: %v", err)
		}
		if code, err := checkOnce(s.g.authzAddr, strings.TrimSpace(string(out))); err != nil || code != 200 {
			t.Fatalf("alice's development token right after start: %d, %v", code, err)
		}
	})
	t.Run("keycloak", func(t *testing.T) {
		kc := startIDP(t)
		alice := kc.userToken(t, "alice", "gatehouse-cli")
		cat := writeAuthzCatalog(t)
		s := startAndProbe(t, cat, fmt.Sprintf(`issuers:
  - name: keycloak
    issuer_url: %s
    audiences: [gatehouse]
    algorithms: [RS256]
`, kc.issuer), "", alice)
		s.require(t, 200)
	})
}

func writeAuthzCatalog(t *testing.T) string {
	t.Helper()
	up := startUpstream(t, "orders")
	cat := filepath.Join(t.TempDir(), "catalog.yaml")
	if err := os.WriteFile(cat, []byte(authzCatalog(up.url, "[storefront]")), 0o644); err != nil {
		t.Fatal(err)
	}
	return cat
}

// startProbe is what Checks sent from a process's start saw.
type startProbe struct {
	g             *gatehouse
	attempts      int
	refused       int           // connection refused: nothing listened yet
	slowest       time.Duration // the longest attempt
	slow          []string      // attempts that waited over 250 ms
	decisions     map[int]int   // HTTP status of each decision
	firstDecision time.Duration // from the process's start
	healthz       time.Duration // first /healthz 200, from the start
}

func (s *startProbe) require(t *testing.T, want int) {
	t.Helper()
	t.Logf("%d Checks from the start: %d refused at once, decisions %v, first decision after %s, slowest attempt %s; /healthz after %s",
		s.attempts, s.refused, s.decisions, s.firstDecision.Round(time.Millisecond), s.slowest.Round(time.Millisecond), s.healthz.Round(time.Millisecond))
	if len(s.slow) > 0 {
		t.Fatalf("%d Checks waited on a starting replica (Envoy gives up after 500 ms): %v", len(s.slow), s.slow)
	}
	if len(s.decisions) != 1 || s.decisions[want] == 0 {
		t.Fatalf("Checks at start were decided %v; every one should be %d", s.decisions, want)
	}
	if s.healthz > 2*time.Second {
		t.Errorf("/healthz answered %s after start", s.healthz)
	}
}

// startAndProbe starts `gatehouse serve` (flag, e.g. --dev) on free ports
// and sends a Check for /orders/start (with token) every 10 ms from just
// before the process starts until 20 decisions, each on a new connection
// with a 2 s deadline, and polls /healthz.
func startAndProbe(t *testing.T, cat, extra, flag, token string) *startProbe {
	t.Helper()
	dir := t.TempDir()
	g := &gatehouse{}
	ports := []int{freePort(t), freePort(t), freePort(t)}
	g.xdsAddr, g.adminAddr, g.authzAddr = fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1]), fmt.Sprintf("127.0.0.1:%d", ports[2])
	g.cfgPath, g.auditPath = filepath.Join(dir, "gatehouse.yaml"), filepath.Join(dir, "audit.jsonl")
	cfg := fmt.Sprintf("xds: {listen: %q}\nadmin: {listen: %q}\nauthz: {listen: %q}\ncatalog: {files: [%q]}\naudit: {output: %q}\nshutdown: {drain: 0s}\n",
		g.xdsAddr, g.adminAddr, g.authzAddr, cat, g.auditPath) + extra
	if err := os.WriteFile(g.cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	s := &startProbe{g: g, decisions: map[int]int{}}
	start := time.Now()
	var wg sync.WaitGroup
	wg.Add(2)
	done := make(chan struct{})
	go func() {
		defer wg.Done()
		for time.Since(start) < 5*time.Second {
			if resp, err := http.Get("http://" + g.adminAddr + "/healthz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					s.healthz = time.Since(start)
					return
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
		s.healthz = time.Since(start)
	}()
	go func() {
		defer wg.Done()
		defer close(done)
		for n := 0; n < 20 && time.Since(start) < 20*time.Second; {
			t0 := time.Now()
			code, err := checkOnce(g.authzAddr, token)
			d := time.Since(t0)
			s.attempts++
			s.slowest = max(s.slowest, d)
			if d > 250*time.Millisecond {
				s.slow = append(s.slow, fmt.Sprintf("%s after start: %s (%v)", t0.Sub(start).Round(time.Millisecond), d.Round(time.Millisecond), err))
			}
			switch {
			case err == nil:
				if n == 0 {
					s.firstDecision = time.Since(start)
				}
				s.decisions[code]++
				n++
			case status.Code(err) == codes.Unavailable:
				s.refused++
			default:
				s.slow = append(s.slow, fmt.Sprintf("%s after start: %v", t0.Sub(start).Round(time.Millisecond), err))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	args := []string{gatehouseBin, "serve", "--config", g.cfgPath}
	if flag != "" {
		args = append(args, flag)
	}
	g.proc = startProc(t, "gatehouse", args...)
	select {
	case <-done:
	case <-g.Done():
		t.Fatalf("gatehouse exited: %v\n%s", g.Err(), g.Log())
	}
	wg.Wait()
	return s
}

// checkOnce sends one Check for GET /orders/start on the orders route, on
// a new connection, and returns the decision's HTTP status (200: allowed).
func checkOnce(addr, token string) (int, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	h := map[string]string{"x-gatehouse-route": "component:default/orders@*/orders", "x-request-id": fmt.Sprint("start-", time.Now().UnixNano())}
	if token != "" {
		h["authorization"] = "Bearer " + token
	}
	resp, err := authv3.NewAuthorizationClient(conn).Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Method: "GET", Path: "/orders/start", Host: "gw.example.com", Headers: h}},
	}})
	if err != nil {
		return 0, err
	}
	if resp.GetOkResponse() != nil {
		return 200, nil
	}
	if d := resp.GetDeniedResponse(); d != nil {
		return int(d.GetStatus().GetCode()), nil
	}
	return 0, errors.New("a Check response neither allowed nor denied")
}

// Package e2e runs gatehouse against real Envoys. Every server binds
// 127.0.0.1 on a free port and is stopped by the test that started it. A part
// that cannot start fails the test with the reason; nothing is skipped. The
// processes are started with internal/harness, which the bench harnesses
// share; this file turns its errors into test failures.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/harness"
)

var (
	gatehouseBin string // built once in TestMain
	envoyBin     string
	repoRoot     string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	wd, _ := os.Getwd()
	repoRoot = filepath.Dir(wd)
	tmp, err := os.MkdirTemp("", "gatehouse-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	gatehouseBin = filepath.Join(tmp, "gatehouse")
	if err := harness.BuildGatehouse(repoRoot, gatehouseBin, false); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building gatehouse failed:", err)
		return 1
	}
	// A real Envoy: ENVOY_BIN, or the one envoy/install.sh installs.
	if envoyBin, err = harness.EnvoyBin(repoRoot); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: no Envoy:", err)
		return 1
	}
	defer stopIDP()
	return m.Run()
}

// freePort returns a port that was free a moment ago on 127.0.0.1, never
// the same twice in one run (below the ephemeral range; see harness.FreePort).
func freePort(t *testing.T) int {
	t.Helper()
	p, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// proc is a child process stopped when the test ends; its output is shown
// when the test failed.
type proc struct{ *harness.Proc }

// cleanup stops p when t ends and shows the last lines of its output if t
// failed.
func cleanup(t *testing.T, p *harness.Proc, lines int) *proc {
	t.Cleanup(func() {
		(&proc{p}).stop(t)
		if t.Failed() {
			t.Logf("---- %s output ----\n%s", p.Name(), p.Tail(lines))
		}
	})
	return &proc{p}
}

// startProc starts a process stopped when the test ends.
func startProc(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p, err := harness.Start(harness.Spec{Name: name, Args: args})
	if err != nil {
		t.Fatal(err)
	}
	return cleanup(t, p, 60)
}

// stop sends SIGTERM and waits up to 10s, then kills.
func (p *proc) stop(t *testing.T) {
	if p.Stop(10 * time.Second) {
		t.Errorf("%s did not stop within 10s of SIGTERM; killed it", p.Name())
	}
}

func tail(s string, n int) string { return harness.Tail(s, n) }

// syncBuffer is an output buffer that a child process writes while the
// test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// eventually polls f until it returns nil or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, f func() error) time.Duration {
	t.Helper()
	start := time.Now()
	var err error
	for time.Since(start) < timeout {
		if err = f(); err == nil {
			return time.Since(start)
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("%s: not within %s: %v", what, timeout, err)
	return 0
}

// ---- gatehouse ----

type gatehouse struct {
	*proc
	cfgPath   string
	xdsAddr   string
	adminAddr string
	authzAddr string
	edgePort  int
	auditPath string
	hports    harness.Ports
}

// startGatehouse writes a config and runs `gatehouse serve`; it returns once
// /readyz answers 200. extra is appended to the configuration (issuers...);
// ports, when given, are the xds, admin, edge and authz ports to reuse.
func startGatehouse(t *testing.T, catalogPath, extra string, ports ...int) *gatehouse {
	t.Helper()
	return startGatehouseEnv(t, catalogPath, extra, nil, ports...)
}

// startGatehouseEnv is startGatehouse with extra environment variables
// (GATEHOUSE_* overrides), usable from parallel tests.
func startGatehouseEnv(t *testing.T, catalogPath, extra string, env []string, ports ...int) *gatehouse {
	t.Helper()
	return startGatehouseFlags(t, catalogPath, extra, env, nil, ports...)
}

// startGatehouseFlags is startGatehouseEnv with more serve flags (--dev).
func startGatehouseFlags(t *testing.T, catalogPath, extra string, env, flags []string, ports ...int) *gatehouse {
	t.Helper()
	var hp harness.Ports
	if len(ports) == 4 {
		hp = harness.Ports{XDS: ports[0], Admin: ports[1], Edge: ports[2], Authz: ports[3]}
	}
	dir := t.TempDir()
	auditPath := filepath.Join(dir, "audit.jsonl")
	h, err := harness.StartGatehouse(harness.GatehouseSpec{Bin: gatehouseBin, Dir: dir, Ports: hp, Env: env, Flags: flags, Config: func(p harness.Ports) string {
		return fmt.Sprintf(`xds:
  listen: 127.0.0.1:%d
  holdoff: 50ms
admin:
  listen: 127.0.0.1:%d
authz:
  listen: 127.0.0.1:%d
edge:
  address: 127.0.0.1
  port: %d
catalog:
  files: [%q]
  poll_interval: 200ms
audit:
  output: %s
shutdown:
  drain: 0s
log:
  level: debug
`, p.XDS, p.Admin, p.Authz, p.Edge, catalogPath, auditPath) + extra
	}})
	if err != nil {
		t.Fatalf("gatehouse: %v", err)
	}
	return &gatehouse{proc: cleanup(t, h.Proc, 60), cfgPath: h.ConfigPath, xdsAddr: h.XDSAddr(), adminAddr: h.AdminAddr(),
		authzAddr: h.AuthzAddr(), edgePort: h.Ports.Edge, auditPath: auditPath, hports: h.Ports}
}

func (g *gatehouse) ports() []int {
	return []int{g.hports.XDS, g.hports.Admin, g.hports.Edge, g.hports.Authz}
}

// nodes returns /debug/nodes.
func (g *gatehouse) nodes(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	getJSON(t, "http://"+g.adminAddr+"/debug/nodes", &out)
	return out
}

// ---- envoy ----

type envoy struct {
	*proc
	adminPort int
	edgePort  int
}

// startEnvoy runs a real Envoy with a bootstrap printed by
// `gatehouse bootstrap` and waits until it is ready (config received).
func startEnvoy(t *testing.T, g *gatehouse, nodeID string, delta bool, bootstrapFlags ...string) *envoy {
	t.Helper()
	e := &envoy{adminPort: freePort(t), edgePort: g.edgePort}
	args := []string{"bootstrap", "--role", "edge", "--node-id", nodeID, "--xds-address", g.xdsAddr, "--admin-port", fmt.Sprint(e.adminPort)}
	if delta {
		args = append(args, "--delta")
	}
	args = append(args, bootstrapFlags...)
	out, err := exec.Command(gatehouseBin, args...).Output()
	if err != nil {
		t.Fatalf("gatehouse bootstrap: %v", err)
	}
	path := filepath.Join(t.TempDir(), "envoy.yaml")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := harness.StartEnvoy(harness.EnvoySpec{Bin: envoyBin, Name: "envoy " + nodeID, Bootstrap: path, AdminPort: e.adminPort})
	if err != nil {
		t.Fatalf("envoy: %v", err)
	}
	e.proc = cleanup(t, p, 60)
	return e
}

// stat reads one counter or gauge from Envoy's admin /stats.
func (e *envoy) stat(t *testing.T, name string) int64 {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/stats?filter=^%s$", e.adminPort, strings.ReplaceAll(name, ".", "\\.")))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ": ")
		if ok && k == name {
			var n int64
			fmt.Sscan(v, &n)
			return n
		}
	}
	t.Fatalf("envoy stat %s not found", name)
	return 0
}

// versions returns the version_info of the dynamic listeners, route configs
// and clusters in Envoy's /config_dump.
func (e *envoy) versions(t *testing.T) map[string]string {
	t.Helper()
	var dump struct {
		Configs []map[string]any `json:"configs"`
	}
	getJSON(t, fmt.Sprintf("http://127.0.0.1:%d/config_dump", e.adminPort), &dump)
	out := map[string]string{}
	for _, c := range dump.Configs {
		typ, _ := c["@type"].(string)
		for k, v := range c {
			if k == "version_info" {
				out[typ] = fmt.Sprint(v)
			}
		}
		for _, key := range []string{"dynamic_listeners", "dynamic_route_configs", "dynamic_active_clusters"} {
			items, _ := c[key].([]any)
			for _, it := range items {
				m, _ := it.(map[string]any)
				name, _ := m["name"].(string)
				if name == "" {
					if a, ok := m["active_state"].(map[string]any); ok {
						name = fmt.Sprint(a["listener"].(map[string]any)["name"])
						m = a
					} else if rc, ok := m["route_config"].(map[string]any); ok {
						name = fmt.Sprint(rc["name"])
					} else if cl, ok := m["cluster"].(map[string]any); ok {
						name = fmt.Sprint(cl["name"])
					}
				}
				out[key+"/"+name] = fmt.Sprint(m["version_info"])
			}
		}
	}
	return out
}

// ---- upstreams ----

// upstream is a real HTTP server that answers with its name and what it saw.
type upstream struct {
	name string
	url  string
	srv  *http.Server
}

type seen struct {
	Upstream string            `json:"upstream"`
	Path     string            `json:"path"`
	Host     string            `json:"host"`
	Headers  map[string]string `json:"headers"`
	// Assertion is what the upstream made of x-gatehouse-assertion after
	// verifying it against gatehouse's JWKS (when it was given one).
	Assertion *assertionCheck `json:"assertion,omitempty"`
}

type assertionCheck struct {
	Valid  bool           `json:"valid"`
	Error  string         `json:"error,omitempty"`
	Claims map[string]any `json:"claims,omitempty"`
}

func startUpstream(t *testing.T, name string) *upstream {
	return startVerifyingUpstream(t, name, nil)
}

// startVerifyingUpstream is an upstream that, like a real service, trusts
// only a valid x-gatehouse-assertion: it verifies it against the JWKS that
// jwksURL returns (fetched per request) and reports the result.
func startVerifyingUpstream(t *testing.T, name string, jwksURL func() string) *upstream {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &upstream{name: name, url: "http://" + l.Addr().String()}
	u.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := map[string]string{}
		for k := range r.Header {
			h[strings.ToLower(k)] = r.Header.Get(k)
		}
		out := seen{Upstream: name, Path: r.URL.Path, Host: r.Host, Headers: h}
		if jwksURL != nil && h["x-gatehouse-assertion"] != "" {
			out.Assertion = verifyAssertion(jwksURL(), h["x-gatehouse-assertion"])
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	})}
	go func() { _ = u.srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = u.srv.Shutdown(ctx)
	})
	return u
}

// ---- HTTP helpers ----

var client = &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
}

// call sends a request through the edge and returns the status and, for a
// 200, what the upstream saw.
func call(port int, host, path string) (int, seen, error) {
	code, s, _, err := do(port, "GET", host, path, nil)
	return code, s, err
}

// do sends a request with headers; it returns the status, what the
// upstream saw (on 200) and the response (body read into the last value).
func do(port int, method, host, path string, headers map[string]string) (int, seen, *response, error) {
	req, err := http.NewRequest(method, fmt.Sprintf("http://127.0.0.1:%d%s", port, path), nil)
	if err != nil {
		return 0, seen{}, nil, err
	}
	req.Host = host
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, seen{}, nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	r := &response{header: resp.Header, body: string(body)}
	var s seen
	if resp.StatusCode == 200 {
		if err := json.Unmarshal(body, &s); err != nil {
			return resp.StatusCode, s, r, fmt.Errorf("upstream answer %q: %v", body, err)
		}
	}
	return resp.StatusCode, s, r, nil
}

type response struct {
	header http.Header
	body   string
}

// expectRoute waits until host+path through the edge reaches the named
// upstream (or returns the wanted status, for upstream == "").
func expectRoute(t *testing.T, port int, host, path string, wantStatus int, wantUpstream string, within time.Duration) time.Duration {
	t.Helper()
	return eventually(t, within, fmt.Sprintf("GET %s%s -> %d %s", host, path, wantStatus, wantUpstream), func() error {
		code, s, err := call(port, host, path)
		if err != nil {
			return err
		}
		if code != wantStatus || s.Upstream != wantUpstream {
			return fmt.Errorf("got %d from %q", code, s.Upstream)
		}
		return nil
	})
}

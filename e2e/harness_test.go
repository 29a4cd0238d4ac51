// Package e2e runs gatehouse against real Envoys. Every server binds
// 127.0.0.1 on a free port and is stopped by the test that started it. A part
// that cannot start fails the test with the reason; nothing is skipped.
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
	"sync/atomic"
	"syscall"
	"testing"
	"time"
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
	build := exec.Command("go", "build", "-o", gatehouseBin, "./cmd/gatehouse")
	build.Dir = repoRoot
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building gatehouse failed:", err)
		return 1
	}
	// A real Envoy: ENVOY_BIN, or the one envoy/install.sh installs.
	inst := exec.Command("bash", filepath.Join(repoRoot, "envoy", "install.sh"))
	inst.Stderr = os.Stderr
	out, err := inst.Output()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: no Envoy: envoy/install.sh failed:", err, "(set ENVOY_BIN to an envoy binary, or fix the install)")
		return 1
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	envoyBin = lines[len(lines)-1]
	defer stopIDP()
	return m.Run()
}

// nextPort walks ports below Linux's ephemeral range (32768-60999): a port
// picked with :0 comes from that range, where every outgoing connection of
// a load generator or test client also takes its local port, so it could be
// taken again between the pick and the server's bind.
var nextPort atomic.Int32

func init() { nextPort.Store(int32(20000 + os.Getpid()%8000)) }

// freePort returns a port that was free a moment ago on 127.0.0.1, never
// the same twice in one run.
func freePort(t *testing.T) int {
	t.Helper()
	for range 2000 {
		p := nextPort.Add(1)
		if p >= 32000 {
			nextPort.Store(20000)
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		l.Close()
		return int(p)
	}
	t.Fatal("no free port in 20000-32000")
	return 0
}

// proc is a child process whose output goes to a log file shown on failure.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan struct{}
	err  error
}

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

func startProc(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	return startProcEnv(t, name, nil, args...)
}

// startProcEnv starts a process with extra environment variables.
func startProcEnv(t *testing.T, name string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, cmd: exec.Command(args[0], args[1:]...), log: &syncBuffer{}, done: make(chan struct{})}
	if env != nil {
		p.cmd.Env = append(os.Environ(), env...)
	}
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("---- %s output ----\n%s", name, tail(p.log.String(), 60))
		}
	})
	return p
}

// stop sends SIGTERM and waits up to 10s, then kills.
func (p *proc) stop(t *testing.T) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Errorf("%s did not stop within 10s of SIGTERM; killing it", p.name)
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
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
	g := &gatehouse{}
	if len(ports) != 4 {
		ports = []int{freePort(t), freePort(t), freePort(t), freePort(t)}
	}
	g.xdsAddr, g.adminAddr, g.edgePort, g.authzAddr = fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1]), ports[2], fmt.Sprintf("127.0.0.1:%d", ports[3])
	dir := t.TempDir()
	g.cfgPath = filepath.Join(dir, "gatehouse.yaml")
	g.auditPath = filepath.Join(dir, "audit.jsonl")
	cfg := fmt.Sprintf(`xds:
  listen: %s
  holdoff: 50ms
admin:
  listen: %s
authz:
  listen: %s
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
`, g.xdsAddr, g.adminAddr, g.authzAddr, g.edgePort, catalogPath, g.auditPath) + extra
	if err := os.WriteFile(g.cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	g.proc = startProcEnv(t, "gatehouse", env, gatehouseBin, "serve", "--config", g.cfgPath)
	eventually(t, 10*time.Second, "gatehouse /readyz", func() error {
		if g.exited() {
			t.Fatalf("gatehouse exited: %v\n%s", g.err, g.log.String())
		}
		return httpOK("http://" + g.adminAddr + "/readyz")
	})
	return g
}

func (g *gatehouse) ports() []int {
	port := func(addr string) int {
		_, p, _ := net.SplitHostPort(addr)
		var n int
		fmt.Sscan(p, &n)
		return n
	}
	return []int{port(g.xdsAddr), port(g.adminAddr), g.edgePort, port(g.authzAddr)}
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
	e.proc = startProc(t, "envoy "+nodeID, envoyBin, "-c", path, "--disable-hot-restart", "--concurrency", "1", "--log-level", "warn")
	eventually(t, 20*time.Second, "envoy ready", func() error {
		if e.exited() {
			t.Fatalf("envoy exited: %v\n%s", e.err, e.log.String())
		}
		return httpOK(fmt.Sprintf("http://127.0.0.1:%d/ready", e.adminPort))
	})
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

func httpOK(url string) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s: %d %s", url, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return nil
}

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

// waitReady reads a runner script's stdout until its "READY <url>" line
// (examples/idp/run.sh, examples/backstage/run.sh) and returns the URL.
func waitReady(out io.Reader, timeout time.Duration) (string, error) {
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == "READY" {
				ready <- f[1]
			}
		}
		close(ready)
	}()
	select {
	case u, ok := <-ready:
		if !ok {
			return "", fmt.Errorf("exited before it was ready")
		}
		return u, nil
	case <-time.After(timeout):
		return "", fmt.Errorf("not ready within %s", timeout)
	}
}

package main

// The processes of one run: the Go upstream (in this process), gatehouse
// serve and the Envoys (children started with internal/harness, stopped by
// this harness), and the helpers to read their stats.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/harness"
)

// ---- upstream ----

// upstreamBody is the upstream's answer: small, fixed, with a length.
var upstreamBody = []byte(`{"service":"orders","status":"ok","note":"gatehouse datapath benchmark upstream"}` + "\n")

// upstream is a plain Go HTTP/1.1 server answering 200 with upstreamBody.
// It remembers the headers of the last request to /orders/probe so the
// harness can check what reached it.
type upstream struct {
	addr     string
	srv      *http.Server
	requests atomic.Int64
	mu       sync.Mutex
	probe    http.Header
}

func startUpstream() (*upstream, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	u := &upstream{addr: l.Addr().String()}
	u.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.requests.Add(1)
		if r.URL.Path == "/orders/probe" {
			u.mu.Lock()
			u.probe = r.Header.Clone()
			u.mu.Unlock()
		}
		h := w.Header()
		h["Content-Type"] = []string{"application/json"}
		h["Content-Length"] = []string{strconv.Itoa(len(upstreamBody))}
		_, _ = w.Write(upstreamBody)
	})}
	go func() { _ = u.srv.Serve(l) }()
	return u, nil
}

func (u *upstream) lastProbe() http.Header {
	u.mu.Lock()
	defer u.mu.Unlock()
	p := u.probe
	u.probe = nil
	return p
}

func (u *upstream) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = u.srv.Shutdown(ctx)
}

var httpc = &http.Client{Timeout: 5 * time.Second}

func httpGet(url string) ([]byte, error) {
	resp, err := httpc.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != 200 {
		return b, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return b, nil
}

// ---- gatehouse ----

type gatehouse struct {
	*harness.Gatehouse
	name string
}

// startGatehouse runs `gatehouse serve` on free loopback ports with the
// catalog, the harness's issuer and the given decision cache size, and
// waits for /readyz.
func startGatehouse(dir, bin, name, catalog string, is *issuer, cacheSize int) (*gatehouse, error) {
	// GATEHOUSE_SHUTDOWN_DRAIN: no drain on stop; an environment variable,
	// which builds older than the key ignore (-baseline).
	g, err := harness.StartGatehouse(harness.GatehouseSpec{Bin: bin, Name: name, Dir: dir, LogFile: logFile(dir, name), ReadyTimeout: 20 * time.Second,
		Env: []string{"GATEHOUSE_SHUTDOWN_DRAIN=0s"},
		Config: func(p harness.Ports) string {
			return fmt.Sprintf(`xds:
  listen: 127.0.0.1:%d
admin:
  listen: 127.0.0.1:%d
authz:
  listen: 127.0.0.1:%d
  cache_size: %d
edge:
  address: 127.0.0.1
  port: %d
catalog:
  files: [%q]
issuers:
  - name: bench
    issuer_url: %s
    audiences: [%s]
    algorithms: [RS256]
audit:
  output: %q
log:
  level: warn
`, p.XDS, p.Admin, p.Authz, cacheSize, p.Edge, catalog, is.url, audience, filepath.Join(dir, name+"-audit.jsonl"))
		}})
	if err != nil {
		return nil, err
	}
	return &gatehouse{Gatehouse: g, name: name}, nil
}

// logFile is where a child process's output goes in the work directory.
func logFile(dir, name string) string {
	return filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".log")
}

// stop is the cleanup of a child process: SIGTERM, SIGKILL after 10s.
func stop(p *harness.Proc) func() { return func() { p.Stop(10 * time.Second) } }

// metric sums the samples of a Prometheus counter on /metrics whose name
// and labels start with prefix.
func (g *gatehouse) metric(prefix string) (float64, error) {
	b, err := httpGet("http://" + g.AdminAddr() + "/metrics")
	if err != nil {
		return 0, err
	}
	var sum float64
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, prefix) {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			sum += v
		}
	}
	return sum, nil
}

// ---- envoy ----

type envoy struct {
	*harness.Proc
	adminPort int
	edgePort  int
}

// startEnvoy runs a real Envoy with one worker thread on a bootstrap file
// and waits until its admin says it is ready.
func startEnvoy(dir, bin, name, bootstrap string, adminPort, edgePort, workers int) (*envoy, error) {
	p, err := harness.StartEnvoy(harness.EnvoySpec{Bin: bin, Name: name, Bootstrap: bootstrap, AdminPort: adminPort, Workers: workers,
		LogFile: logFile(dir, name), ReadyTimeout: 30 * time.Second})
	if err != nil {
		return nil, err
	}
	return &envoy{Proc: p, adminPort: adminPort, edgePort: edgePort}, nil
}

// stat reads one counter from Envoy's admin /stats (0 when absent).
func (e *envoy) stat(name string) (int64, error) {
	b, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/stats?filter=^%s$", e.adminPort, strings.ReplaceAll(name, ".", "\\.")))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ": "); ok && k == name {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, nil
}

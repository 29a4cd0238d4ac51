package main

// The processes of one run: the Go upstream (in this process), gatehouse
// serve and the Envoys (children, each in its own process group, stopped
// by the harness), and the helpers to wait for them and read their stats.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

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

// ---- child processes ----

type proc struct {
	name string
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
	err  error
}

func startProc(dir, name string, args ...string) (*proc, error) {
	lf, err := os.Create(filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".log"))
	if err != nil {
		return nil, err
	}
	p := &proc{name: name, cmd: exec.Command(args[0], args[1:]...), log: lf, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = lf, lf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process group it started, and SIGKILL after 10s.
func (p *proc) stop() {
	if !p.exited() {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
	}
	p.log.Close()
}

// tail is the end of the process's output, for error messages.
func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log.Name())
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}

// cpu is the process's user+system CPU time so far (all threads).
func (p *proc) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the parenthesised command name; utime and stime are
	// fields 14 and 15 of the whole line, in clock ticks (USER_HZ = 100).
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * (time.Second / 100)
}

// waitFor polls f until it returns nil, p exits, or timeout passes.
func waitFor(p *proc, timeout time.Duration, what string, f func() error) error {
	start := time.Now()
	var err error
	for time.Since(start) < timeout {
		if p != nil && p.exited() {
			return fmt.Errorf("%s exited (%v) before %s:\n%s", p.name, p.err, what, p.tail())
		}
		if err = f(); err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	if p != nil {
		return fmt.Errorf("%s: not within %s: %v\n%s", what, timeout, err, p.tail())
	}
	return fmt.Errorf("%s: not within %s: %v", what, timeout, err)
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
	*proc
	name      string
	xdsAddr   string
	adminAddr string
	edgePort  int
}

// startGatehouse runs `gatehouse serve` on free loopback ports with the
// catalog, the harness's issuer and the given decision cache size, and
// waits for /readyz.
func startGatehouse(dir, bin, name, catalog string, is *issuer, cacheSize int) (*gatehouse, error) {
	var ports [4]int
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	g := &gatehouse{name: name, xdsAddr: fmt.Sprintf("127.0.0.1:%d", ports[0]), adminAddr: fmt.Sprintf("127.0.0.1:%d", ports[1]), edgePort: ports[2]}
	cfg := fmt.Sprintf(`xds:
  listen: %s
admin:
  listen: %s
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
`, g.xdsAddr, g.adminAddr, ports[3], cacheSize, g.edgePort, catalog, is.url, audience, filepath.Join(dir, name+"-audit.jsonl"))
	cfgPath := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	p, err := startProc(dir, name, bin, "serve", "--config", cfgPath)
	if err != nil {
		return nil, err
	}
	g.proc = p
	if err := waitFor(p, 20*time.Second, name+" /readyz", func() error {
		_, err := httpGet("http://" + g.adminAddr + "/readyz")
		return err
	}); err != nil {
		p.stop()
		return nil, err
	}
	return g, nil
}

// metric sums the samples of a Prometheus counter on /metrics whose name
// and labels start with prefix.
func (g *gatehouse) metric(prefix string) (float64, error) {
	b, err := httpGet("http://" + g.adminAddr + "/metrics")
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
	*proc
	adminPort int
	edgePort  int
}

// startEnvoy runs a real Envoy with one worker thread on a bootstrap file
// and waits until its admin says it is ready.
func startEnvoy(dir, bin, name, bootstrap string, adminPort, edgePort, workers int) (*envoy, error) {
	p, err := startProc(dir, name, bin, "-c", bootstrap, "--disable-hot-restart", "--concurrency", strconv.Itoa(workers),
		"--log-level", "warn")
	if err != nil {
		return nil, err
	}
	e := &envoy{proc: p, adminPort: adminPort, edgePort: edgePort}
	if err := waitFor(p, 30*time.Second, name+" ready", func() error {
		_, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/ready", adminPort))
		return err
	}); err != nil {
		p.stop()
		return nil, err
	}
	return e, nil
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

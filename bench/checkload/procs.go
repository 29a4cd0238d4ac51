package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
)

// serverCPU, when set, pins every server process to that CPU (taskset)
// with GOMAXPROCS=1; see -pin.
var serverCPU string

// startTimeout bounds the start of a server process.
var startTimeout = 30 * time.Second

// server is a Check server under test, running as its own process so that
// its CPU time is measured apart from the load generator's.
type server struct {
	name string
	addr string // gRPC ext_authz address
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	tail []string // last lines of its output, for errors
}

// start runs a server process; ready is called with each output line until
// it returns an address (and nil error). The process is killed if the
// harness dies (Pdeathsig) and stopped by Stop.
func start(name string, ready func(line string) (string, error), bin string, args ...string) (*server, error) {
	s := &server{name: name, cmd: exec.Command(bin, args...), done: make(chan struct{})}
	if serverCPU != "" {
		s.cmd = exec.Command("taskset", append([]string{"-c", serverCPU, bin}, args...)...)
		s.cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	}
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	pr, pw := io.Pipe()
	s.cmd.Stdout, s.cmd.Stderr = pw, pw
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	go func() { _ = s.cmd.Wait(); pw.Close(); close(s.done) }()
	addrc := make(chan string, 1)
	errc := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		found := false
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			if s.tail = append(s.tail, line); len(s.tail) > 20 {
				s.tail = s.tail[1:]
			}
			s.mu.Unlock()
			if !found {
				a, err := ready(line)
				if err != nil {
					errc <- err
					found = true
				} else if a != "" {
					addrc <- a
					found = true
				}
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	select {
	case s.addr = <-addrc:
		return s, nil
	case err := <-errc:
		s.Stop()
		return nil, fmt.Errorf("%s: %w", name, err)
	case <-s.done:
		return nil, fmt.Errorf("%s exited before it was ready: %s", name, s.output())
	case <-time.After(startTimeout):
		s.Stop()
		return nil, fmt.Errorf("%s not ready after %s: %s", name, startTimeout, s.output())
	}
}

func (s *server) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.tail, "\n")
}

// Stop ends the process (SIGTERM, then SIGKILL after 5s).
func (s *server) Stop() {
	if s == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// cpu is the process's user+system CPU time so far (all threads).
func (s *server) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which is in parentheses): utime and
	// stime are the 14th and 15th fields, in clock ticks (USER_HZ = 100).
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// rss is the process's resident set size.
func (s *server) rss() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// startNoop runs this program as the no-op Check server.
func startNoop() (*server, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return start("no-op", func(line string) (string, error) {
		a, ok := strings.CutPrefix(line, "LISTEN ")
		if ok {
			return a, nil
		}
		return "", nil
	}, self, "-role", "noop")
}

// runNoop is the no-op server process: every Check is OK, nothing else.
func runNoop() error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	g := grpc.NewServer()
	authv3.RegisterAuthorizationServer(g, noopServer{})
	fmt.Println("LISTEN " + l.Addr().String())
	return g.Serve(l)
}

type noopServer struct {
	authv3.UnimplementedAuthorizationServer
}

func (noopServer) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return &authv3.CheckResponse{Status: &status.Status{}, HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}}}, nil
}

// buildGatehouse builds cmd/gatehouse into dir (the same flags as make build).
func buildGatehouse(dir string) (string, error) {
	out := filepath.Join(dir, "gatehouse")
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, "./cmd/gatehouse")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/gatehouse: %v\n%s", err, b)
	}
	return out, nil
}

// startGatehouse runs `gatehouse serve` on a catalog directory with the two
// benchmark issuers, a decision cache of the default size, and the audit
// trail written (to /dev/null). Ready when the model is published and both
// issuers are ready.
func startGatehouse(bin, dir string, cat *benchCatalog, is *issuers) (*server, error) {
	cfg := fmt.Sprintf(`xds: {listen: "127.0.0.1:0"}
admin: {listen: "127.0.0.1:0"}
authz: {listen: "127.0.0.1:0", cache_size: 100000, cache_ttl: 30s}
issuers:
  - {name: rs, issuer_url: %q, audiences: [%s], algorithms: [RS256]}
  - {name: es, issuer_url: %q, audiences: [%s], algorithms: [ES256]}
assertion: {issuer: gatehouse, lifetime: 30s}
audit: {output: /dev/null, buffer: 8192}
catalog: {files: [%q], poll_interval: 10s}
log: {level: info, format: json}
`, is.url("RS256"), benchAudience, is.url("ES256"), benchAudience, cat.dir)
	path := filepath.Join(dir, "gatehouse-"+cat.name+".yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	var addr string
	published, ready := false, 0
	return start("gatehouse", func(line string) (string, error) {
		var l struct {
			Msg, Authz, Level, Error string
		}
		if json.Unmarshal([]byte(line), &l) != nil {
			return "", nil
		}
		switch l.Msg {
		case "gatehouse serving":
			addr = l.Authz
		case "model published":
			published = true
		case "token issuer ready":
			ready++
		}
		if l.Level == "ERROR" {
			return "", fmt.Errorf("%s", line)
		}
		if addr != "" && published && ready == 2 {
			return addr, nil
		}
		return "", nil
	}, bin, "serve", "--config", path)
}

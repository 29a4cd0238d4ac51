package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"

	"github.com/gatehouse-dev/gatehouse/internal/harness"
)

// serverCPU, when set, pins every server process to that CPU (taskset)
// with GOMAXPROCS=1; see -pin.
var serverCPU string

// startTimeout bounds the start of a server process.
var startTimeout = 30 * time.Second

// server is a Check server under test, running as its own process so that
// its CPU time is measured apart from the load generator's.
type server struct {
	*harness.Proc
	name string
	addr string // gRPC ext_authz address
}

// start runs a server process; ready is called with each output line until
// it returns an address (and nil error). The process is killed if the
// harness dies (Pdeathsig) and stopped by Stop.
func start(name string, ready func(line string) (string, error), bin string, args ...string) (*server, error) {
	// No drain on stop (shutdown.drain; an environment variable, which
	// builds older than the key ignore, for -baseline runs).
	argv, env := append([]string{bin}, args...), []string{noDrain}
	if serverCPU != "" {
		argv, env = append([]string{"taskset", "-c", serverCPU}, argv...), []string{"GOMAXPROCS=1", noDrain}
	}
	addrc := make(chan string, 1)
	errc := make(chan error, 1)
	found := false
	p, err := harness.Start(harness.Spec{Name: name, Args: argv, Env: env, OnLine: func(line string) {
		if found {
			return
		}
		if a, err := ready(line); err != nil {
			errc <- err
			found = true
		} else if a != "" {
			addrc <- a
			found = true
		}
	}})
	if err != nil {
		return nil, err
	}
	s := &server{Proc: p, name: name}
	select {
	case s.addr = <-addrc:
		return s, nil
	case err := <-errc:
		s.Stop()
		return nil, fmt.Errorf("%s: %w", name, err)
	case <-p.Done():
		return nil, fmt.Errorf("%s exited before it was ready: %s", name, s.output())
	case <-time.After(startTimeout):
		s.Stop()
		return nil, fmt.Errorf("%s not ready after %s: %s", name, startTimeout, s.output())
	}
}

// output is the last lines of the server's output, for errors.
func (s *server) output() string { return s.Tail(20) }

// Stop ends the process (SIGTERM, then SIGKILL after 5s).
func (s *server) Stop() {
	if s == nil {
		return
	}
	s.Proc.Stop(5 * time.Second)
}

// cpu is the process's user+system CPU time so far (all threads).
func (s *server) cpu() time.Duration { return s.CPU() }

// rss is the process's resident set size.
func (s *server) rss() int64 {
	_, rss, _ := harness.Usage(s.Pid())
	return rss
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

// startGatehouse runs `gatehouse serve` on a catalog directory with the two
// benchmark issuers, a decision cache of the default size, and the audit
// trail written (to /dev/null). Ready when the model is published and both
// issuers are ready.
func startGatehouse(bin, dir string, cat *benchCatalog, is *issuers) (*server, error) {
	cfg := fmt.Sprintf(`xds: {listen: "127.0.0.1:0"}
admin: {listen: "127.0.0.1:0"}
authz: {listen: "127.0.0.1:0", cache_size: 100000, cache_ttl: 30s}
issuers:
  - {name: rs, issuer_url: %q, audiences: [%s], algorithms: [RS256], entity_ref_subjects: true}
  - {name: es, issuer_url: %q, audiences: [%s], algorithms: [ES256], entity_ref_subjects: true}
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

// noDrain stops a benchmark's gatehouse at once: a server under test
// needs no drain period (shutdown.drain) for Envoys moving away.
const noDrain = "GATEHOUSE_SHUTDOWN_DRAIN=0s"

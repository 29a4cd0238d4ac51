// Command checkload measures gatehouse's ext_authz Check over real gRPC on
// loopback, next to a no-op Check server (the gRPC floor), with the same
// closed-loop load generator in the same run. Results are a Markdown table
// for BENCHMARKS.md; ratios are ours / no-op from one run.
//
//	go run ./bench/checkload -duration 10s -concurrency 32
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	cs "github.com/gatehouse-dev/gatehouse/catalogsync"
	"github.com/gatehouse-dev/gatehouse/extauthz"
	"github.com/gatehouse-dev/gatehouse/model"
)

func main() {
	duration := flag.Duration("duration", 10*time.Second, "duration of each scenario")
	concurrency := flag.Int("concurrency", 32, "concurrent requests in flight (closed loop)")
	catalog := flag.String("catalog", "examples/catalog/catalog-info.yaml", "catalog to compile")
	flag.Parse()
	if err := run(*duration, *concurrency, *catalog); err != nil {
		fmt.Fprintln(os.Stderr, "checkload:", err)
		os.Exit(1)
	}
}

type scenario struct {
	name string
	addr string
	req  func(i int64) *authv3.CheckRequest
	want int32 // gRPC status code expected in the response
}

func run(d time.Duration, conc int, catalogPath string) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(nopWriter{}, nil))

	// A real verifier against the development issuer's discovery and JWKS.
	mux := http.NewServeMux()
	ts := httptest.NewServer(mux)
	defer ts.Close()
	dev, err := extauthz.NewDevIssuer(ts.URL)
	if err != nil {
		return err
	}
	mux.Handle("/dev/", dev.Handler())
	verifier, err := extauthz.NewVerifier(ctx, []extauthz.IssuerConfig{{Name: "dev", IssuerURL: dev.Issuer(), Audiences: []string{extauthz.DevAudience}, Algorithms: []string{"ES256"}}}, ts.Client(), quiet)
	if err != nil {
		return err
	}
	defer verifier.Close()
	signer, err := extauthz.NewSigner(extauthz.SignerConfig{Issuer: "gatehouse", Lifetime: 30 * time.Second, Rotate: time.Hour})
	if err != nil {
		return err
	}
	abs, _ := filepath.Abs(catalogPath)
	parsed, _ := (&cs.FileSource{Name: "files", Paths: []string{abs}}).Load()
	m, _ := model.Compile(cs.NewStore("files").ReplaceSource("files", parsed))
	audit := extauthz.NewAudit(nopWriter{}, 1<<16)
	defer audit.Close()
	srv := extauthz.NewServer(extauthz.Options{CacheSize: 100000, CacheTTL: 30 * time.Second}, verifier, signer, audit, quiet)
	srv.SetModel(m)
	ours, stopOurs, err := serve(func(g *grpc.Server) { srv.Register(g) })
	if err != nil {
		return err
	}
	defer stopOurs()
	noop, stopNoop, err := serve(func(g *grpc.Server) { authv3.RegisterAuthorizationServer(g, noopServer{}) })
	if err != nil {
		return err
	}
	defer stopNoop()

	alice, err := dev.Mint(extauthz.DevTokenRequest{Subject: "user:default/alice", TTL: time.Hour}, time.Now())
	if err != nil {
		return err
	}
	bob, _ := dev.Mint(extauthz.DevTokenRequest{Subject: "user:default/bob", TTL: time.Hour}, time.Now())
	route := "component:default/orders@*/orders"
	mk := func(tok string) func(int64) *authv3.CheckRequest {
		return func(int64) *authv3.CheckRequest { return checkReq(route, "/orders/42", tok) }
	}
	fresh := func(i int64) *authv3.CheckRequest {
		// A new token every call: signature verification on every Check.
		tok, _ := dev.Mint(extauthz.DevTokenRequest{Subject: "user:default/alice", TTL: time.Hour + time.Duration(i)*time.Second}, time.Now())
		return checkReq(route, "/orders/42", tok)
	}
	scenarios := []scenario{
		{"no-op Check server (gRPC floor)", noop, mk(alice), 0},
		{"gatehouse, cached allow", ours, mk(alice), 0},
		{"gatehouse, cached deny (403)", ours, mk(bob), 7},
		{"gatehouse, fresh ES256 token per call", ours, fresh, 0},
	}
	fmt.Printf("Check over gRPC on loopback, closed loop, %d in flight, %s per scenario, GOMAXPROCS=%d\n\n", conc, d, runtime.GOMAXPROCS(0))
	fmt.Println("| scenario | checks/s | vs no-op | p50 | p90 | p99 | p99.9 | CPU-s per 1k checks |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|")
	var floor float64
	for i, s := range scenarios {
		r, err := load(s, d, conc)
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		if i == 0 {
			floor = r.rps
		}
		fmt.Printf("| %s | %.0f | %.2f× | %s | %s | %s | %s | %.3f |\n", s.name, r.rps, r.rps/floor, r.p(0.5), r.p(0.9), r.p(0.99), r.p(0.999), r.cpuPer1k)
	}
	fmt.Println("\n(fresh-token scenario: the token is minted by the load generator in the same process, so its row includes the signing cost too)")
	return nil
}

type result struct {
	rps      float64
	lat      []time.Duration
	cpuPer1k float64
}

func (r result) p(q float64) string {
	if len(r.lat) == 0 {
		return "-"
	}
	d := r.lat[int(float64(len(r.lat)-1)*q)]
	return fmt.Sprintf("%.0f µs", float64(d.Microseconds()))
}

func load(s scenario, d time.Duration, conc int) (result, error) {
	conn, err := grpc.NewClient(s.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return result{}, err
	}
	defer conn.Close()
	client := authv3.NewAuthorizationClient(conn)
	// Warm up (first verification, JWKS fetch, connections).
	if r, err := client.Check(context.Background(), s.req(0)); err != nil || r.GetStatus().GetCode() != s.want {
		return result{}, fmt.Errorf("warm-up: status %v, err %v (want code %d)", r.GetStatus(), err, s.want)
	}
	var n atomic.Int64
	var failed atomic.Int64
	lats := make([][]time.Duration, conc)
	cpu0 := cpuTime()
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for time.Now().Before(deadline) {
				i := n.Add(1)
				req := s.req(i)
				t0 := time.Now()
				r, err := client.Check(context.Background(), req)
				lats[w] = append(lats[w], time.Since(t0))
				if err != nil || r.GetStatus().GetCode() != s.want {
					failed.Add(1)
				}
			}
		}(w)
	}
	wg.Wait()
	el := time.Since(start)
	cpu := cpuTime() - cpu0
	if f := failed.Load(); f > 0 {
		return result{}, fmt.Errorf("%d of %d checks failed or got the wrong decision", f, n.Load())
	}
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	total := float64(len(all))
	return result{rps: total / el.Seconds(), lat: all, cpuPer1k: cpu.Seconds() / total * 1000}, nil
}

func serve(register func(*grpc.Server)) (string, func(), error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	g := grpc.NewServer()
	register(g)
	go func() { _ = g.Serve(l) }()
	return l.Addr().String(), g.Stop, nil
}

type noopServer struct {
	authv3.UnimplementedAuthorizationServer
}

func (noopServer) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return &authv3.CheckResponse{Status: &status.Status{}, HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}}}, nil
}

func checkReq(route, path, token string) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{Address: "127.0.0.1"}}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: "GET", Path: path, Host: "gw.example.com",
			Headers: map[string]string{"authorization": "Bearer " + token, "x-request-id": "bench", "user-agent": "checkload"},
		}},
		ContextExtensions: map[string]string{"route_id": route},
	}}
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }

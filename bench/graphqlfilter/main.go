// Command graphqlfilter measures GraphQL filter mode through a real Envoy
// against reject mode (BENCHMARKS.md, "GraphQL filter mode through Envoy"):
// one gatehouse (serve --dev), one Envoy, one Go upstream answering a fixed
// GraphQL answer, and three scenarios measured in interleaved rounds, a
// closed loop of keep-alive connections each:
//
//   - reject: a reject-mode API; a query whose fields are all allowed
//     (ext_authz with the body, the usual GraphQL path);
//   - filter-pass: the same query on a filter-mode API (ext_proc decides;
//     nothing to remove, the answer still goes through ext_proc);
//   - filter-remove: the same query plus one forbidden field on the
//     filter-mode API (the document rewritten, the answer patched).
//
// Usage: go run ./bench/graphqlfilter [-duration 10s] [-rounds 5] [-connections 16]
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/harness"
)

func main() {
	duration := flag.Duration("duration", 10*time.Second, "measured time per scenario (split over the rounds)")
	rounds := flag.Int("rounds", 5, "interleaved rounds")
	conns := flag.Int("connections", 16, "keep-alive connections of the closed loop")
	flag.Parse()
	if err := run(*duration, *rounds, *conns); err != nil {
		log.Fatal(err)
	}
}

// The catalog: bob (storefront) may query both APIs; cloudAccountId is
// the owners' (payments).
var catalog = `apiVersion: backstage.io/v1alpha1
kind: Group
metadata: {name: payments}
spec: {type: team, children: []}
---
apiVersion: backstage.io/v1alpha1
kind: Group
metadata: {name: storefront}
spec: {type: team, children: []}
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata: {name: bob}
spec: {profile: {email: bob@example.com}, memberOf: [storefront]}
` + apis

var apis = api("greject", "reject") + api("gfilter", "filter")

func api(name, mode string) string {
	return fmt.Sprintf(`---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: %[1]s
  annotations:
    gatehouse.dev/upstream: UPSTREAM
    gatehouse.dev/access: |
      - allow: [group:default/storefront]
spec: {type: service, lifecycle: production, owner: payments, providesApis: [%[1]s-api]}
---
apiVersion: backstage.io/v1alpha1
kind: API
metadata:
  name: %[1]s-api
  annotations:
    gatehouse.dev/path-prefix: /%[1]s/graphql
    gatehouse.dev/graphql-options: |
      mode: %[2]s
spec:
  type: graphql
  lifecycle: production
  owner: payments
  definition: |
    type Query {
      component(name: String!): Component
      components: [Component!]!
    }
    type Component {
      name: String!
      owner: String!
      lifecycle: String!
      cloudAccountId: String @policy(policies: [["owners"]])
    }
`, name, mode)
}

// A ~300 B query with an alias, a fragment and a variable.
const allowedQuery = `query Q($n: String!) { c: component(name: $n) { ...F lifecycle } all: components { name owner } } fragment F on Component { name owner }`
const removedQuery = `query Q($n: String!) { c: component(name: $n) { ...F lifecycle cloudAccountId } all: components { name owner } } fragment F on Component { name owner }`

// The upstream's answer (the same whatever it is asked).
const answer = `{"data":{"c":{"name":"orders","owner":"group:default/payments","lifecycle":"production"},"all":[{"name":"orders","owner":"group:default/payments"},{"name":"shop","owner":"group:default/storefront"}]}}`

type scenario struct {
	name, path, query string
	want              string // a substring of every answer
}

func run(duration time.Duration, rounds, conns int) error {
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "graphqlfilter")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	envoyBin, err := harness.EnvoyBin(root)
	if err != nil {
		return err
	}
	ghBin := filepath.Join(dir, "gatehouse")
	if err := harness.BuildGatehouse(root, ghBin, false); err != nil {
		return err
	}
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	var upstreamCalls atomic.Int64
	go func() {
		_ = http.Serve(up, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			upstreamCalls.Add(1)
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, answer)
		}))
	}()
	cat := filepath.Join(dir, "catalog.yaml")
	if err := os.WriteFile(cat, []byte(strings.ReplaceAll(catalog, "UPSTREAM", "http://"+up.Addr().String())), 0o644); err != nil {
		return err
	}
	ports, err := harness.FreePorts()
	if err != nil {
		return err
	}
	cfg := filepath.Join(dir, "gatehouse.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("xds: {listen: 127.0.0.1:%d}\nadmin: {listen: 127.0.0.1:%d}\nauthz: {listen: 127.0.0.1:%d, timeout: 5s}\nedge: {address: 127.0.0.1, port: %d}\ncatalog: {files: [%q]}\naudit: {output: off}\nlog: {level: warn}\ndev: {key_file: %q}\n",
		ports.XDS, ports.Admin, ports.Authz, ports.Edge, cat, filepath.Join(dir, "dev.pem"))), 0o644); err != nil {
		return err
	}
	gh, err := harness.Start(harness.Spec{Name: "gatehouse", Args: []string{ghBin, "serve", "--dev", "--config", cfg}})
	if err != nil {
		return err
	}
	defer gh.Stop(5 * time.Second)
	admin := fmt.Sprintf("127.0.0.1:%d", ports.Admin)
	if err := harness.WaitHTTP(gh, "http://"+admin+"/readyz", 20*time.Second); err != nil {
		return err
	}
	tok, err := exec.Command(ghBin, "token", "--admin", "http://"+admin, "--user", "user:default/bob").Output()
	if err != nil {
		return fmt.Errorf("gatehouse token: %w", err)
	}
	bob := strings.TrimSpace(string(tok))
	envoyAdmin, err := harness.FreePort()
	if err != nil {
		return err
	}
	boot, err := exec.Command(ghBin, "bootstrap", "--role", "edge", "--node-id", "bench", "--xds-address", fmt.Sprintf("127.0.0.1:%d", ports.XDS), "--admin-port", fmt.Sprint(envoyAdmin)).Output()
	if err != nil {
		return err
	}
	bootPath := filepath.Join(dir, "envoy.yaml")
	if err := os.WriteFile(bootPath, boot, 0o644); err != nil {
		return err
	}
	env, err := harness.StartEnvoy(harness.EnvoySpec{Bin: envoyBin, Name: "envoy", Bootstrap: bootPath, AdminPort: envoyAdmin})
	if err != nil {
		return err
	}
	defer env.Stop(5 * time.Second)

	edge := fmt.Sprintf("http://127.0.0.1:%d", ports.Edge)
	scenarios := []scenario{
		{"reject", "/greject/graphql", allowedQuery, `"lifecycle":"production"`},
		{"filter-pass", "/gfilter/graphql", allowedQuery, `"lifecycle":"production"`},
		{"filter-remove", "/gfilter/graphql", removedQuery, `"path":["c","cloudAccountId"]`},
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}}
	for _, sc := range scenarios {
		deadline := time.Now().Add(10 * time.Second)
		for {
			code, body, err := post(client, edge+sc.path, bob, sc.query)
			if err == nil && code == 200 && strings.Contains(body, sc.want) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: %d %s %v", sc.name, code, body, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	results := map[string]*result{}
	for r := 0; r < rounds; r++ {
		for _, sc := range scenarios {
			if results[sc.name] == nil {
				results[sc.name] = &result{}
			}
			res := results[sc.name]
			g0, e0 := gh.CPU(), env.CPU()
			if err := measure(client, edge+sc.path, bob, sc, duration/time.Duration(rounds), conns, res); err != nil {
				return err
			}
			res.ghCPU += gh.CPU() - g0
			res.envoyCPU += env.CPU() - e0
		}
	}
	fmt.Printf("GraphQL filter mode through Envoy: %d connections, %s per scenario in %d rounds, upstream calls %d\n", conns, duration, rounds, upstreamCalls.Load())
	fmt.Printf("%-14s %10s %9s %9s %9s %10s %14s %13s %5s\n", "scenario", "req/s", "p50", "p90", "p99", "vs reject", "gatehouse CPU", "Envoy CPU", "503s")
	base := results["reject"].rate()
	for _, sc := range scenarios {
		res := results[sc.name]
		fmt.Printf("%-14s %10.0f %9s %9s %9s %9.2fx %11.0f µs %10.0f µs %5d\n", sc.name, res.rate(), res.pct(50), res.pct(90), res.pct(99), res.rate()/base,
			float64(res.ghCPU.Microseconds())/float64(res.n), float64(res.envoyCPU.Microseconds())/float64(res.n), res.unavailable)
	}
	return nil
}

func post(c *http.Client, url, tok, query string) (int, string, error) {
	body := fmt.Sprintf(`{"query":%q,"variables":{"n":"orders"}}`, query)
	req, _ := http.NewRequest("POST", url, bytes.NewReader([]byte(body)))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

type result struct {
	mu              sync.Mutex
	n               int
	elapsed         time.Duration
	ghCPU, envoyCPU time.Duration // per scenario, summed over rounds
	unavailable     int           // 503s
	lat             []time.Duration
}

func (r *result) rate() float64 { return float64(r.n) / r.elapsed.Seconds() }

func (r *result) pct(p int) string {
	if len(r.lat) == 0 {
		return "-"
	}
	sort.Slice(r.lat, func(i, j int) bool { return r.lat[i] < r.lat[j] })
	return r.lat[len(r.lat)*p/100].Round(10 * time.Microsecond).String()
}

// measure runs a closed loop for d; every answer must be the expected one.
func measure(c *http.Client, url, tok string, sc scenario, d time.Duration, conns int, into *result) error {
	var wg sync.WaitGroup
	var bad atomic.Value
	start := time.Now()
	stop := start.Add(d)
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			for time.Now().Before(stop) {
				t0 := time.Now()
				code, body, err := post(c, url, tok, sc.query)
				if err == nil && code == 503 {
					// Envoy could not reach gatehouse in time (a loaded
					// machine): counted, never taken for an answer.
					into.mu.Lock()
					into.unavailable++
					into.mu.Unlock()
					continue
				}
				if err != nil || code != 200 || !strings.Contains(body, sc.want) || strings.Contains(body, "_gatehouse_typename") {
					bad.Store(fmt.Sprintf("%s: %d %s %v", sc.name, code, body, err))
					return
				}
				lat = append(lat, time.Since(t0))
			}
			into.mu.Lock()
			into.n += len(lat)
			into.lat = append(into.lat, lat...)
			into.mu.Unlock()
		}()
	}
	wg.Wait()
	into.mu.Lock()
	into.elapsed += time.Since(start)
	into.mu.Unlock()
	if b := bad.Load(); b != nil {
		return fmt.Errorf("wrong answer: %v", b)
	}
	return nil
}

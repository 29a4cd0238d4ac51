package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/gatehouse-dev/gatehouse/internal/harness"
)

// checkload -graphql: a Check on a GraphQL API's route (a ~300 B query
// with variables, an interface fragment and restricted fields, in a
// buffered body) through gatehouse and through the OPA-Envoy plugin with
// the equivalent Rego (bench/opa/graphql.rego over policy.rego:
// graphql.parse_and_verify and a walk of the fields), both over gRPC with
// the same CheckRequest; a plain route's cached Check beside them.

// benchGraphYAML: bench-platform (owned by bench-owners; bench-readers may
// call it by a rule) provides bench-graph, whose restricted fields
// bench-alice (a bench-reader) may read: Team.internalNotes is the
// readers', CloudAccount the owners' or the readers'. Component.deploySecrets
// (the owners') is not in the query.
var benchGraphYAML = `apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: bench-platform
  annotations:
    gatehouse.dev/upstream: http://127.0.0.1:9
    gatehouse.dev/access: |
      - allow: [group:default/bench-readers]
spec: {type: service, lifecycle: production, owner: bench-owners, providesApis: [bench-graph]}
---
apiVersion: backstage.io/v1alpha1
kind: API
metadata:
  name: bench-graph
  annotations:
    gatehouse.dev/path-prefix: /bench-platform/graphql
spec:
  type: graphql
  lifecycle: production
  owner: bench-owners
  definition: |
` + benchGraphSDLIndented

const benchGraphSDL = `interface Node { id: ID! }
type Query {
  components: [Component!]!
  component(name: String!): Component
  team(name: String!): Team
  node(id: ID!): Node
}
type Component implements Node {
  id: ID!
  name: String!
  owner: String!
  cloudAccount: CloudAccount
  deploySecrets: [String!]! @policy(policies: [["owners"]])
}
type CloudAccount @policy(policies: [["owners"], ["group:default/bench-readers"]]) {
  accountId: String!
}
type Team implements Node {
  id: ID!
  name: String!
  internalNotes: String @policy(policies: [["group:default/bench-readers"]])
}
`

var benchGraphSDLIndented = "    " + strings.ReplaceAll(strings.TrimSuffix(benchGraphSDL, "\n"), "\n", "\n    ") + "\n"

// benchGraphRules are the SDL's rules by field name, for the Rego
// (graphql.rego: OPA's query AST has no types).
var benchGraphRules = map[string][][]string{
	"deploySecrets": {{"owners"}},
	"accountId":     {{"owners"}, {"group:default/bench-readers"}},
	"internalNotes": {{"group:default/bench-readers"}},
}

const (
	benchGraphPath  = "/bench-platform/graphql"
	benchGraphQuery = `query Platform($name: String!) {
  components { id name owner }
  component(name: $name) { id name owner cloudAccount { accountId } }
  team(name: "payments") { id name internalNotes }
  node(id: "42") { id ... on Team { name } }
}`
)

func benchGraphBody() string {
	b, _ := json.Marshal(map[string]any{"query": benchGraphQuery, "variables": map[string]string{"name": "orders"}, "operationName": "Platform"})
	return string(b)
}

// graphqlReq is the CheckRequest Envoy sends for a POST of body to a
// GraphQL route (with_request_body: the body in the request).
func graphqlReq(route, token, body string) *authv3.CheckRequest {
	r := checkReq(route, benchGraphPath, token)
	h := r.Attributes.Request.Http
	h.Method, h.Body, h.Size = "POST", body, int64(len(body))
	h.Headers[":method"] = "POST"
	h.Headers["content-type"] = "application/json"
	h.Headers["content-length"] = fmt.Sprint(len(body))
	return r
}

func runGraphQL(o options) error {
	tmp, err := os.MkdirTemp("", "checkload-graphql-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "checkload: "+format+"\n", args...) }
	is, err := newIssuers()
	if err != nil {
		return err
	}
	defer is.Close()
	cat, err := writeCatalog("graphql", tmp+"/cat", 0, benchGraphYAML)
	if err != nil {
		return err
	}
	var graphRoute, graphSchema string
	for _, p := range cat.model.Policies {
		if p.GraphQL != nil {
			// The schema as gatehouse loads it: the SDL with Apollo's
			// directives declared (OPA validates it as it is).
			graphRoute, graphSchema = p.RouteID, p.GraphQL.Schema
		}
	}
	if graphRoute == "" {
		return fmt.Errorf("the GraphQL catalog has no GraphQL route")
	}
	bin := o.gatehouse
	if bin == "" {
		bin = filepath.Join(tmp, "gatehouse")
		if err := harness.BuildGatehouse(".", bin, true); err != nil {
			return err
		}
	}
	t0 := time.Now()
	alice, err := is.mint("RS256", benchAlice, t0, 2*time.Hour)
	if err != nil {
		return err
	}
	bob, _ := is.mint("RS256", benchBob, t0, 2*time.Hour)
	pool, err := is.pool("RS256", []string{benchAlice}, o.pool)
	if err != nil {
		return err
	}
	body := benchGraphBody()
	logf("GraphQL body %d bytes; minted %d RS256 tokens", len(body), len(pool))

	noop, err := startNoop()
	if err != nil {
		return err
	}
	defer noop.Stop()
	gh, err := startGatehouse(bin, tmp, cat, is)
	if err != nil {
		return err
	}
	defer gh.Stop()
	var opa, opaCache *server
	if o.opa != "" {
		if _, err := os.Stat(o.opa); err != nil {
			return fmt.Errorf("OPA-Envoy plugin: %w (run bench/opa/install.sh, or pass -opa '' to skip the baseline)", err)
		}
		data, err := opaData(cat.model, is)
		if err != nil {
			return err
		}
		var doc map[string]map[string]any
		if err := json.Unmarshal(data, &doc); err != nil {
			return err
		}
		doc["gatehouse"]["graphql_api"] = map[string]any{"schema": graphSchema, "rules": benchGraphRules}
		data, _ = json.Marshal(doc)
		policies := []string{o.policy, filepath.Join(filepath.Dir(o.policy), "graphql.rego")}
		if opa, err = startOPAWith(o.opa, filepath.Join(tmp, "opa"), policies, data, "gatehouse/graphql/result", false); err != nil {
			return err
		}
		defer opa.Stop()
		if opaCache, err = startOPAWith(o.opa, filepath.Join(tmp, "opa-cache"), policies, data, "gatehouse/graphql/result", true); err != nil {
			return err
		}
		defer opaCache.Stop()
	}
	same := func(name string, srv *server, want int32, req *authv3.CheckRequest) *row {
		return &row{name: name, t: target{srv, want}, cat: cat, reqs: requests{reqs: []*authv3.CheckRequest{req}, repeat: true}}
	}
	fresh := func(name string, srv *server) *row {
		r := &row{name: name, t: target{srv, 0}, cat: cat, alg: "RS256"}
		for _, tok := range pool {
			r.reqs.reqs = append(r.reqs.reqs, graphqlReq(graphRoute, tok, body))
		}
		return r
	}
	forbidden := strings.Replace(body, "cloudAccount { accountId }", "deploySecrets", 1)
	rows := []*row{
		same("no-op Check server (gRPC floor), GraphQL request", noop, 0, graphqlReq(graphRoute, alice, body)),
		same("gatehouse, plain route, cached allow", gh, 0, checkReq(cat.routeID, benchPath, alice)),
		same("gatehouse, GraphQL, cached allow", gh, 0, graphqlReq(graphRoute, alice, body)),
		same("gatehouse, GraphQL, cached field denial (403)", gh, 7, graphqlReq(graphRoute, alice, forbidden)),
		fresh("gatehouse, GraphQL, fresh RS256 token per call", gh),
	}
	if opa != nil {
		rows = append(rows,
			same("OPA-Envoy, GraphQL, same token repeated", opa, 0, graphqlReq(graphRoute, alice, body)),
			same("OPA-Envoy + io_jwt cache, GraphQL, same token repeated", opaCache, 0, graphqlReq(graphRoute, alice, body)),
			same("OPA-Envoy, GraphQL, field denial (403)", opa, 7, graphqlReq(graphRoute, alice, forbidden)),
			fresh("OPA-Envoy, GraphQL, fresh RS256 token per call", opa),
		)
	}
	_ = bob
	clients := map[*server]authv3.AuthorizationClient{}
	for _, r := range rows {
		if _, ok := clients[r.t.srv]; ok {
			continue
		}
		c, closeFn, err := dial(r.t.srv.addr)
		if err != nil {
			return err
		}
		defer closeFn()
		clients[r.t.srv] = c
	}
	for _, r := range rows {
		req := r.reqs.reqs[0]
		if !r.reqs.repeat {
			tok, err := is.mint("RS256", benchAlice, time.Now(), time.Hour)
			if err != nil {
				return err
			}
			req = graphqlReq(graphRoute, tok, body)
		}
		if err := check(clients[r.t.srv], req, r.t.want); err != nil {
			return fmt.Errorf("%s: warm-up: %w\n%s", r.name, err, r.t.srv.output())
		}
	}
	for _, r := range rows {
		logf("closed loop: %s", r.name)
		if r.res, err = closedLoop(clients[r.t.srv], r.t, r.reqs, o.duration, o.conc); err != nil {
			return fmt.Errorf("%s: %w\n%s", r.name, err, r.t.srv.output())
		}
	}
	fmt.Printf("GraphQL Check over gRPC on loopback (a %d-byte JSON body: 4 root fields, an inline fragment on an interface, variables, restricted fields); every server its own process; one load generator (%d in flight, closed loop, %s per scenario); GOMAXPROCS=%d; %d CPUs\n\n",
		len(body), o.conc, o.duration, runtime.GOMAXPROCS(0), runtime.NumCPU())
	fmt.Println("| scenario | checks/s | vs no-op | p50 | p99 | server CPU-s / 1k checks | checks (run) |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|")
	floor := rows[0].res.rps()
	for _, r := range rows {
		fmt.Printf("| %s | %.0f | %.2f× | %s | %s | %.3f | %d (%.1fs) |\n", r.name, r.res.rps(), r.res.rps()/floor,
			us(r.res.q(0.5)), us(r.res.q(0.99)), r.res.cpuPer1k(r.res.serverCPU), r.res.n, r.res.elapsed.Seconds())
	}
	byName := map[string]*row{}
	for _, r := range rows {
		byName[r.name] = r
	}
	fmt.Println()
	fmt.Println("| comparison (this run) | throughput ratio | server CPU per check ratio (B/A) |")
	fmt.Println("|---|---:|---:|")
	for _, c := range [][3]string{
		{"gatehouse GraphQL cached / OPA-Envoy same token", "gatehouse, GraphQL, cached allow", "OPA-Envoy, GraphQL, same token repeated"},
		{"gatehouse GraphQL cached / OPA-Envoy + io_jwt cache", "gatehouse, GraphQL, cached allow", "OPA-Envoy + io_jwt cache, GraphQL, same token repeated"},
		{"gatehouse GraphQL deny / OPA-Envoy deny", "gatehouse, GraphQL, cached field denial (403)", "OPA-Envoy, GraphQL, field denial (403)"},
		{"gatehouse GraphQL fresh RS256 / OPA-Envoy fresh RS256", "gatehouse, GraphQL, fresh RS256 token per call", "OPA-Envoy, GraphQL, fresh RS256 token per call"},
		{"gatehouse GraphQL cached / gatehouse plain cached", "gatehouse, GraphQL, cached allow", "gatehouse, plain route, cached allow"},
	} {
		a, b := byName[c[1]], byName[c[2]]
		if a == nil || b == nil {
			continue
		}
		fmt.Printf("| %s | %.2f× | %.2f× |\n", c[0], a.res.rps()/b.res.rps(), b.res.cpuPer1k(b.res.serverCPU)/a.res.cpuPer1k(a.res.serverCPU))
	}
	return nil
}

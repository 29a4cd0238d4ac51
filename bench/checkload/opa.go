package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/harness"
	"github.com/gatehouse-dev/gatehouse/model"
)

// opaData is the data document of bench/opa/policy.rego: the same catalog
// gatehouse serves, as compiled by gatehouse (so both decide over the same
// owners, groups and rules), and the same issuers' JWKS.
func opaData(m *model.Model, is *issuers) ([]byte, error) {
	type rule struct {
		Allow   map[string]bool `json:"allow"`
		Methods map[string]bool `json:"methods,omitempty"`
		Paths   []string        `json:"paths"`
	}
	type route struct {
		Entity    string          `json:"entity"`
		Public    bool            `json:"public"`
		Owners    []string        `json:"owners"`
		Consumers map[string]bool `json:"consumers"`
		Rules     []rule          `json:"rules"`
	}
	type user struct {
		Ref    string          `json:"ref"`
		Groups map[string]bool `json:"groups"`
	}
	set := func(xs []string) map[string]bool {
		out := make(map[string]bool, len(xs))
		for _, x := range xs {
			out[x] = true
		}
		return out
	}
	routes := map[string]route{}
	for _, p := range m.Policies {
		r := route{Entity: p.Entity, Public: p.Public, Owners: p.Owners, Consumers: set(p.Consumers), Rules: []rule{}}
		if r.Owners == nil {
			r.Owners = []string{}
		}
		for _, ar := range p.Rules {
			cr := rule{Allow: set(ar.Allow), Paths: ar.Paths}
			if len(ar.Methods) > 0 {
				cr.Methods = set(ar.Methods)
			}
			if cr.Paths == nil {
				cr.Paths = []string{}
			}
			r.Rules = append(r.Rules, cr)
		}
		routes[p.RouteID] = r
	}
	users := map[string]user{}
	for _, u := range m.Directory.Users {
		users[u.Ref] = user{Ref: u.Ref, Groups: set(u.Groups)}
	}
	clients := map[string]string{}
	for _, c := range m.Directory.Clients {
		for _, id := range c.ClientIDs {
			clients[id] = c.Ref
		}
	}
	iss := map[string]any{}
	for _, alg := range []string{"RS256", "ES256"} {
		iss[is.url(alg)] = map[string]string{"iss": is.url(alg), "jwks": is.jwks(alg), "alg": alg, "aud": benchAudience}
	}
	return json.Marshal(map[string]any{"gatehouse": map[string]any{"issuers": iss, "routes": routes, "users": users, "clients": clients}})
}

// startOPA runs the OPA-Envoy plugin (bench/opa/install.sh) with the
// policy and the catalog's data document. jwtCache turns on OPA's
// inter-query cache of verified JWTs (io_jwt; off by default in OPA), the
// closest OPA has to gatehouse's decision cache. Decision logs stay off
// (OPA's default; gatehouse writes an audit record for every decision).
func startOPA(bin, dir, policy string, cat *benchCatalog, is *issuers, jwtCache bool) (*server, error) {
	data, err := opaData(cat.model, is)
	if err != nil {
		return nil, err
	}
	return startOPAWith(bin, filepath.Join(dir, fmt.Sprintf("opa-%s-%v", cat.name, jwtCache)), []string{policy}, data, "gatehouse/authz/result", jwtCache)
}

// startOPAWith runs the OPA-Envoy plugin in sub with policies, a data
// document and the decision path.
func startOPAWith(bin, sub string, policies []string, data []byte, decision string, jwtCache bool) (*server, error) {
	if err := os.MkdirAll(sub, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(sub, "data.json"), data, 0o644); err != nil {
		return nil, err
	}
	grpcAddr, err := harness.FreeAddr()
	if err != nil {
		return nil, err
	}
	httpAddr, err := harness.FreeAddr()
	if err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf("plugins:\n  envoy_ext_authz_grpc:\n    addr: %s\n    path: %s\n    enable-reflection: false\n", grpcAddr, decision)
	if jwtCache {
		cfg += "caching:\n  inter_query_builtin_value_cache:\n    named:\n      io_jwt:\n        disabled: false\n        max_num_entries: 100000\n"
	}
	cfgPath := filepath.Join(sub, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	s, err := start("opa-envoy", func(line string) (string, error) {
		if strings.Contains(line, `"level":"error"`) {
			return "", fmt.Errorf("%s", line)
		}
		if strings.Contains(line, "Initializing server") {
			return grpcAddr, nil
		}
		return "", nil
	}, bin, append(append([]string{"run", "--server", "--addr", httpAddr, "--skip-version-check", "--log-level", "info", "--log-format", "json",
		"--config-file", cfgPath}, policies...), filepath.Join(sub, "data.json"))...)
	if err != nil {
		return nil, err
	}
	// The plugin's gRPC listener comes up on its own goroutine: wait for it.
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", grpcAddr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if i == 200 {
			s.Stop()
			return nil, fmt.Errorf("opa-envoy: gRPC listener %s not up after 10s: %v\n%s", grpcAddr, err, s.output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return s, nil
}

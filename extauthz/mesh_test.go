package extauthz

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/gatehouse-dev/gatehouse/internal/testcatalog"
	"github.com/gatehouse-dev/gatehouse/model"
)

const meshTrustDomain = "example.test"

// orders serves orders-api (/orders/v1) in the mesh and at the edge;
// checkout and pos consume it, shop does not. alice is in payments (owns
// orders), bob is not.
const meshPolicyCatalog = testcatalog.Teams + `apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: orders
  annotations:
    gatehouse.dev/mesh-address: "orders.svc:15006"
    gatehouse.dev/upstream: http://10.0.0.1:8080
spec: {type: service, lifecycle: production, owner: payments, providesApis: [orders-api]}
---
apiVersion: backstage.io/v1alpha1
kind: API
metadata:
  name: orders-api
  annotations: {gatehouse.dev/path-prefix: /orders/v1}
spec: {type: openapi, lifecycle: production, owner: payments, definition: x}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: checkout
  annotations: {gatehouse.dev/mesh-address: "checkout.svc:15006", gatehouse.dev/client-id: checkout}
spec: {type: service, lifecycle: production, owner: storefront, consumesApis: [orders-api]}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: pos
  annotations: {gatehouse.dev/mesh-address: "pos.svc:15006"}
spec: {type: service, lifecycle: production, owner: storefront, consumesApis: [orders-api]}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: shop
  annotations: {gatehouse.dev/mesh-address: "shop.svc:15006"}
spec: {type: service, lifecycle: production, owner: storefront}
`

const (
	meshOrdersAPI  = "component:default/orders@mesh:/orders/v1" // orders-api's paths on orders' sidecar
	meshOrdersBase = "component:default/orders@mesh:/"          // the rest of orders
	edgeOrdersAPI  = "api:default/orders-api@*/orders/v1"
)

func spiffe(ns, name string) string {
	return "spiffe://" + meshTrustDomain + "/ns/" + ns + "/component/" + name
}

// auditSink hands each audit record to the test as it is written.
type auditSink struct {
	mu      sync.Mutex
	partial bytes.Buffer
	ch      chan AuditRecord
}

func (a *auditSink) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.partial.Write(p)
	for {
		line, err := a.partial.ReadBytes('\n')
		if err != nil {
			a.partial.Write(line) // keep an incomplete line for the next write
			return len(p), nil
		}
		var r AuditRecord
		if json.Unmarshal(line, &r) == nil {
			a.ch <- r
		}
	}
}

type meshFixture struct {
	s      *Server
	v      *fakeVerifier
	signer *Signer
	sink   *auditSink
}

func newMeshServer(t *testing.T, trustDomain string) *meshFixture {
	t.Helper()
	_, v, signer, _, _ := newTestServer(t) // for its verifier (alice, bob and checkout tokens) and signer
	sink := &auditSink{ch: make(chan AuditRecord, 100)}
	audit := NewAudit(sink, 100)
	t.Cleanup(audit.Close)
	ms := NewServer(Options{CacheSize: 1000, CacheTTL: time.Minute, TrustDomain: trustDomain}, v, signer, audit, nil)
	ms.SetModel(testcatalog.Must(t, meshPolicyCatalog))
	return &meshFixture{s: ms, v: v, signer: signer, sink: sink}
}

// meshReq is a Check from a sidecar: ext mesh=inbound (unless mesh is
// false, an edge route), the verified mTLS peer in source.principal.
func meshReq(route, path, principal string, mesh bool, headers map[string]string) *authv3.CheckRequest {
	r := checkReq(route, "GET", path, headers)
	r.Attributes.Source.Principal = principal
	if mesh {
		r.Attributes.ContextExtensions["mesh"] = "inbound"
	}
	return r
}

// check runs one Check and returns its response and audit record.
func (f *meshFixture) check(t *testing.T, req *authv3.CheckRequest) (*authv3.CheckResponse, AuditRecord) {
	t.Helper()
	r, err := f.s.Check(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case rec := <-f.sink.ch:
		return r, rec
	case <-time.After(5 * time.Second):
		t.Fatal("no audit record")
		return nil, AuditRecord{}
	}
}

func bearer(tok string) map[string]string { return map[string]string{"authorization": "Bearer " + tok} }

func TestCheckMeshInbound(t *testing.T) {
	cases := []struct {
		name      string
		route     string
		path      string
		principal string
		mesh      bool // the route carries mesh=inbound
		headers   map[string]string
		status    int    // 200 or the denial's status
		reason    string // the audit reason
		user      string // allowed: x-gatehouse-user and the assertion's sub
		peer      string // allowed: x-gatehouse-peer and gh_peer ("" = neither)
		rule      string // substring of the audit's matched rule
	}{
		{name: "consumer peer, no token", route: meshOrdersAPI, path: "/orders/v1/items", principal: spiffe("default", "checkout"), mesh: true,
			status: 200, reason: "consumer", user: "component:default/checkout", peer: "component:default/checkout"},
		{name: "peer not a consumer", route: meshOrdersAPI, path: "/orders/v1/items", principal: spiffe("default", "shop"), mesh: true,
			status: 403, reason: "no_matching_rule"},
		{name: "consumer of the API only, not of the rest", route: meshOrdersBase, path: "/admin", principal: spiffe("default", "checkout"), mesh: true,
			status: 403, reason: "no_matching_rule"},
		{name: "peer of another trust domain", route: meshOrdersAPI, path: "/orders/v1/items", principal: "spiffe://other.test/ns/default/component/checkout", mesh: true,
			status: 403, reason: "unknown_peer"},
		{name: "peer of a longer trust domain", route: meshOrdersAPI, path: "/orders/v1/items", principal: "spiffe://example.test.evil/ns/default/component/checkout", mesh: true,
			status: 403, reason: "unknown_peer"},
		{name: "peer not a component id", route: meshOrdersAPI, path: "/orders/v1/items", principal: "spiffe://example.test/ns/default/sa/checkout", mesh: true,
			status: 403, reason: "unknown_peer"},
		{name: "peer a DNS name", route: meshOrdersAPI, path: "/orders/v1/items", principal: "checkout.svc", mesh: true,
			status: 403, reason: "unknown_peer"},
		{name: "no peer", route: meshOrdersAPI, path: "/orders/v1/items", principal: "", mesh: true,
			status: 403, reason: "unknown_peer"},
		{name: "no peer, valid token", route: meshOrdersAPI, path: "/orders/v1/items", principal: "", mesh: true, headers: bearer("alice-token"),
			status: 403, reason: "unknown_peer"},
		{name: "peer and user allowed", route: meshOrdersAPI, path: "/orders/v1/items", principal: spiffe("default", "checkout"), mesh: true, headers: bearer("alice-token"),
			status: 200, reason: "consumer", user: "user:default/alice", peer: "component:default/checkout",
			rule: "peer consumer component:default/checkout of api:default/orders-api; user owner group:default/payments"},
		{name: "peer allowed, user denied", route: meshOrdersAPI, path: "/orders/v1/items", principal: spiffe("default", "checkout"), mesh: true, headers: bearer("bob-token"),
			status: 403, reason: "no_matching_rule", rule: ""},
		{name: "peer denied, user allowed", route: meshOrdersAPI, path: "/orders/v1/items", principal: spiffe("default", "shop"), mesh: true, headers: bearer("alice-token"),
			status: 403, reason: "no_matching_rule", rule: "peer component:default/shop denied"},
		{name: "peer allowed, invalid token", route: meshOrdersAPI, path: "/orders/v1/items", principal: spiffe("default", "checkout"), mesh: true, headers: bearer("forged"),
			status: 401, reason: "invalid_token:bad_signature"},
		// At the edge a principal never grants anything.
		{name: "edge: principal of a consumer, no token", route: edgeOrdersAPI, path: "/orders/v1/items", principal: spiffe("default", "checkout"),
			status: 401, reason: "no_token"},
		{name: "edge: principal of a consumer, denied user", route: edgeOrdersAPI, path: "/orders/v1/items", principal: spiffe("default", "checkout"), headers: bearer("bob-token"),
			status: 403, reason: "no_matching_rule"},
		{name: "edge: principal ignored for an allowed user", route: edgeOrdersAPI, path: "/orders/v1/items", principal: spiffe("default", "shop"), headers: bearer("alice-token"),
			status: 200, reason: "owner", user: "user:default/alice"},
	}
	f := newMeshServer(t, meshTrustDomain)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, rec := f.check(t, meshReq(c.route, c.path, c.principal, c.mesh, c.headers))
			if rec.Reason != c.reason || rec.Status != c.status || !strings.Contains(rec.Rule, c.rule) {
				t.Errorf("audit: status %d reason %q rule %q; want %d %q, rule with %q", rec.Status, rec.Reason, rec.Rule, c.status, c.reason, c.rule)
			}
			if c.status != 200 {
				if d := r.GetDeniedResponse(); d == nil || int(d.GetStatus().GetCode()) != c.status {
					t.Fatalf("want %d, got %v", c.status, r)
				}
				return
			}
			ok := r.GetOkResponse()
			if ok == nil {
				t.Fatalf("want allow, got %v", r)
			}
			h := headerMap(ok.GetHeaders())
			if h["x-gatehouse-user"] != c.user || h["x-gatehouse-peer"] != c.peer || h["x-gatehouse-entity"] != "component:default/orders" {
				t.Errorf("headers: user %q peer %q entity %q; want user %q peer %q", h["x-gatehouse-user"], h["x-gatehouse-peer"], h["x-gatehouse-entity"], c.user, c.peer)
			}
			if _, set := h["x-gatehouse-peer"]; set != (c.peer != "") {
				t.Errorf("x-gatehouse-peer set: %v; want %v", set, c.peer != "")
			}
			claims := verifyAssertion(t, f.signer, h["x-gatehouse-assertion"])
			gotPeer, _ := claims["gh_peer"].(string)
			if claims["sub"] != c.user || gotPeer != c.peer || claims["aud"] != "component:default/orders" {
				t.Errorf("assertion: sub %v gh_peer %v aud %v; want sub %s gh_peer %q", claims["sub"], claims["gh_peer"], claims["aud"], c.user, c.peer)
			}
			if rec.Peer != c.peer || rec.Principal != c.user {
				t.Errorf("audit: peer %q principal %q", rec.Peer, rec.Principal)
			}
		})
	}
}

// Without a trust domain no peer is known: mesh routes deny everything
// rather than trust a principal they cannot place.
func TestCheckMeshWithoutTrustDomain(t *testing.T) {
	f := newMeshServer(t, "")
	for _, principal := range []string{spiffe("default", "checkout"), "spiffe:///ns/default/component/checkout", ""} {
		r, rec := f.check(t, meshReq(meshOrdersAPI, "/orders/v1/items", principal, true, bearer("alice-token")))
		if r.GetDeniedResponse().GetStatus().GetCode() != 403 || rec.Reason != "unknown_peer" {
			t.Errorf("principal %q without a trust domain: %v (%s)", principal, r, rec.Reason)
		}
	}
}

// The decision cache never answers one peer with another's decision, nor
// with another's identity headers.
func TestCheckMeshCacheIsPerPeer(t *testing.T) {
	f := newMeshServer(t, meshTrustDomain)
	type step struct {
		peer  string
		token string
		allow bool
	}
	seqs := map[string][]step{
		"allowed then denied peer, same token": {{"checkout", "alice-token", true}, {"shop", "alice-token", false}, {"checkout", "alice-token", true}},
		"denied then allowed peer, same token": {{"shop", "bob-token", false}, {"checkout", "bob-token", false}, {"shop", "alice-token", false}, {"pos", "alice-token", true}},
		"allowed then denied peer, no token":   {{"pos", "", true}, {"shop", "", false}, {"pos", "", true}},
		"two allowed peers, same token":        {{"checkout", "alice-token", true}, {"pos", "alice-token", true}, {"checkout", "alice-token", true}, {"pos", "alice-token", true}},
	}
	for name, seq := range seqs {
		t.Run(name, func(t *testing.T) {
			f.s.SetModel(func() *model.Model { m := testcatalog.Must(t, meshPolicyCatalog); m.Version = name; return m }()) // an empty cache per sequence
			for i, st := range seq {
				var hdr map[string]string
				if st.token != "" {
					hdr = bearer(st.token)
				}
				r, rec := f.check(t, meshReq(meshOrdersAPI, "/orders/v1/items", spiffe("default", st.peer), true, hdr))
				if got := r.GetOkResponse() != nil; got != st.allow {
					t.Fatalf("step %d (peer %s, token %q, cached %v): allowed %v, want %v", i, st.peer, st.token, rec.Cached, got, st.allow)
				}
				if rec.Peer != "component:default/"+st.peer {
					t.Errorf("step %d: audit peer %q", i, rec.Peer)
				}
				if !st.allow {
					continue
				}
				h := headerMap(r.GetOkResponse().GetHeaders())
				claims := verifyAssertion(t, f.signer, h["x-gatehouse-assertion"])
				if want := "component:default/" + st.peer; h["x-gatehouse-peer"] != want || claims["gh_peer"] != want {
					t.Errorf("step %d (cached %v): peer header %q, gh_peer %v; want %s", i, rec.Cached, h["x-gatehouse-peer"], claims["gh_peer"], want)
				}
			}
		})
	}
	// The cache does serve a repeated (token, peer): the token is verified
	// once.
	f.s.SetModel(func() *model.Model { m := testcatalog.Must(t, meshPolicyCatalog); m.Version = "again"; return m }())
	before := f.v.calls.Load()
	for i := 0; i < 3; i++ {
		_, rec := f.check(t, meshReq(meshOrdersAPI, "/orders/v1/items", spiffe("default", "checkout"), true, bearer("alice-token")))
		if rec.Decision != "allow" || rec.Cached != (i > 0) {
			t.Fatalf("check %d: %s cached %v", i, rec.Decision, rec.Cached)
		}
	}
	if n := f.v.calls.Load() - before; n != 1 {
		t.Errorf("token verified %d times for 3 identical mesh checks", n)
	}
	if strings.Contains(meshOrdersAPI, "api:") {
		t.Error("test bug: mesh route ids are the component's")
	}
}

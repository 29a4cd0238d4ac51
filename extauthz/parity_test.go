package extauthz

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/gatehouse-dev/gatehouse/internal/testcatalog"
	"github.com/gatehouse-dev/gatehouse/model"
)

// parityCatalog: orders (owned by payments, in the mesh and at the edge)
// with public paths and explicit rules, its API orders-api, consumers with
// their own clients, a user known by IdP subject, a forward-token ledger.
const parityCatalog = `apiVersion: backstage.io/v1alpha1
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
metadata: {name: alice}
spec: {profile: {email: alice@example.com}, memberOf: [payments]}
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata: {name: bob}
spec: {profile: {email: bob@example.com}, memberOf: [storefront]}
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata:
  name: erin
  annotations: {gatehouse.dev/idp-subject: kc-erin}
spec: {memberOf: []}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: orders
  annotations:
    gatehouse.dev/upstream: http://10.0.0.1:8080
    gatehouse.dev/mesh-address: "orders.svc:15006"
    gatehouse.dev/public-paths: /orders/healthz, /orders/docs/**
    gatehouse.dev/access: |
      - allow: [user:default/bob]
        methods: [GET, HEAD]
        paths: ["/orders/reports/**"]
      - allow: [user:default/erin, component:default/shop]
        methods: [DELETE]
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
  name: shop
  annotations: {gatehouse.dev/mesh-address: "shop.svc:15006", gatehouse.dev/client-id: shop}
spec: {type: service, lifecycle: production, owner: storefront}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: ledger
  annotations: {gatehouse.dev/upstream: "http://10.0.0.2:8080", gatehouse.dev/forward-token: "true"}
spec: {type: service, lifecycle: production, owner: payments}
`

// parityCase is one request: what Envoy would send Check, and what an
// operator would give explain.
type parityCase struct {
	name    string
	token   string // "" none
	peer    string // component name of the mTLS peer ("" none; mesh routes only)
	method  string
	path    string
	routeID string
}

// TestCheckAndExplainAgree: Check (over gRPC, as Envoy calls it) and
// explain (given the route id Envoy chose, and again matching the URL
// itself) reach the same decision, status and reason for every request
// of a table: anonymous, users, component tokens, tokens that map to
// nobody, bad tokens, mesh peers alone and with users, public paths,
// rules with methods and paths, unknown and mismatched routes, bad paths.
func TestCheckAndExplainAgree(t *testing.T) {
	m := testcatalog.Must(t, parityCatalog)
	exp := time.Now().Add(time.Hour)
	v := &fakeVerifier{ids: map[string]*Identity{
		"alice":              {Subject: "a1", Email: "alice@example.com", EmailVerified: true, Expiry: exp},
		"bob":                {Subject: "b1", Email: "bob@example.com", EmailVerified: true, Expiry: exp},
		"erin":               {Subject: "kc-erin", Expiry: exp},
		"checkout":           {Subject: "svc-c", ClientID: "checkout", Machine: true, Expiry: exp},
		"shop":               {Subject: "svc-s", ClientID: "shop", Machine: true, Expiry: exp},
		"mallory":            {Subject: "m1", Email: "alice@example.com", Expiry: exp},
		"person-at-checkout": {Subject: "p1", ClientID: "checkout", Expiry: exp},
	}}
	signer, err := NewSigner(SignerConfig{Issuer: "gatehouse-test", Lifetime: 30 * time.Second, Rotate: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	sink := &auditSink{ch: make(chan AuditRecord, 1000)}
	audit := NewAudit(sink, 1000)
	t.Cleanup(audit.Close)
	srv := NewServer(Options{CacheSize: 1000, CacheTTL: time.Minute, TrustDomain: meshTrustDomain}, v, signer, audit, nil)
	srv.SetModel(m)
	client := grpcCheckClient(t, srv)

	cases := parityCases(t, m)
	if len(cases) < 50 {
		t.Fatalf("only %d cases", len(cases))
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, reason := checkOverGRPC(t, client, sink, c)
			in := ExplainRequest{Token: c.token, Method: c.method, URL: "http://gw.example.com" + c.path, RouteID: c.routeID}
			if c.peer != "" {
				in.Peer = "component:default/" + c.peer
			}
			for _, how := range []string{"route id", "url"} {
				if how == "url" {
					if c.peer != "" || strings.HasSuffix(c.name, "route") {
						continue // mesh routes and made-up route ids are not matched from a URL
					}
					in.RouteID = ""
				}
				res, err := Explain(context.Background(), srv.Engine(), m, v, in)
				if err != nil {
					t.Fatalf("explain (%s): %v", how, err)
				}
				if res.Decision.Status != status || res.Decision.Reason != reason || res.Decision.Allow != (status == 200) {
					t.Errorf("Check: %d %s; explain (%s): %d %s allow=%v\nsteps: %+v", status, reason, how, res.Decision.Status, res.Decision.Reason, res.Decision.Allow, res.Decision.Steps)
				}
				if len(res.Decision.Steps) == 0 {
					t.Errorf("explain (%s) recorded no steps", how)
				}
			}
		})
	}
}

func parityCases(t *testing.T, m *model.Model) []parityCase {
	route := func(path string) string {
		_, r := m.Match("gw.example.com", path)
		if r == nil {
			return ""
		}
		return r.ID
	}
	var cases []parityCase
	tokens := []string{"", "alice", "bob", "erin", "checkout", "shop", "mallory", "person-at-checkout", "forged"}
	reqs := []struct{ method, path string }{
		{"GET", "/orders/1"}, {"POST", "/orders/1"}, {"DELETE", "/orders/1"}, {"GET", "/orders/reports/q1"}, {"POST", "/orders/reports/q1"},
		{"GET", "/orders/v1/items"}, {"GET", "/orders/healthz"}, {"GET", "/orders/docs/a/b"}, {"GET", "/ledger/1"},
	}
	for _, tok := range tokens {
		for _, r := range reqs {
			cases = append(cases, parityCase{name: fmt.Sprintf("%s %s by %q", r.method, r.path, tok), token: tok, method: r.method, path: r.path, routeID: route(r.path)})
		}
	}
	meshAPI := "component:default/orders@mesh:/orders/v1"
	meshBase := "component:default/orders@mesh:/"
	for _, peer := range []string{"checkout", "shop"} {
		for _, tok := range []string{"", "alice", "bob", "mallory"} {
			for _, rt := range []struct{ id, path string }{{meshAPI, "/orders/v1/items"}, {meshBase, "/admin"}} {
				cases = append(cases, parityCase{name: fmt.Sprintf("mesh peer %s %s by %q", peer, rt.path, tok), token: tok, peer: peer, method: "GET", path: rt.path, routeID: rt.id})
			}
		}
	}
	cases = append(cases,
		parityCase{name: "no route", token: "alice", method: "GET", path: "/nowhere"},
		parityCase{name: "bad path", token: "alice", method: "GET", path: "/orders/%2e%2e/ledger", routeID: route("/orders/x")},
		parityCase{name: "encoded slash path", token: "alice", method: "GET", path: "/orders//x", routeID: route("/orders/x")},
		parityCase{name: "made-up route", token: "alice", method: "GET", path: "/orders/1", routeID: "component:default/nope@*/orders"},
		parityCase{name: "mismatched route", token: "alice", method: "GET", path: "/ledger/1", routeID: route("/orders/1")},
	)
	return cases
}

// grpcCheckClient serves srv's Authorization service on a loopback port,
// as Envoy reaches it.
func grpcCheckClient(t *testing.T, srv *Server) authv3.AuthorizationClient {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(GRPCServerOptions()...)
	srv.Register(g)
	go func() { _ = g.Serve(l) }()
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return authv3.NewAuthorizationClient(conn)
}

// checkOverGRPC sends c as Envoy would and returns the HTTP status Envoy
// would answer with and the audit record's reason.
func checkOverGRPC(t *testing.T, client authv3.AuthorizationClient, sink *auditSink, c parityCase) (int, string) {
	t.Helper()
	h := map[string]string{}
	if c.token != "" {
		h["authorization"] = "Bearer " + c.token
	}
	req := checkReq("", c.method, c.path, h)
	if c.routeID != "" {
		req.Attributes.Request.Http.Headers[model.RouteHeader] = c.routeID
	}
	if c.peer != "" {
		req.Attributes.ContextExtensions[model.CtxRouteID] = c.routeID
		req.Attributes.ContextExtensions[model.CtxMesh] = model.MeshInbound
		req.Attributes.Source.Principal = spiffe("default", c.peer)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := client.Check(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	status := 200
	if d := resp.GetDeniedResponse(); d != nil {
		status = int(d.GetStatus().GetCode())
	}
	select {
	case rec := <-sink.ch:
		if rec.Status != status {
			t.Fatalf("audit status %d, answer %d", rec.Status, status)
		}
		return status, rec.Reason
	case <-time.After(5 * time.Second):
		t.Fatal("no audit record")
	}
	return 0, ""
}

package extauthz

import (
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/testcatalog"
)

const (
	ordersRoute = "component:default/orders@*/orders"
	ordersAPI   = "api:default/orders-api@*/orders/v1"
	ledgerRoute = "component:default/ledger@*/ledger"
)

func TestDecide(t *testing.T) {
	m := testcatalog.MustFiles(t, "testdata/policy-catalog.yaml")
	e := NewEngine(m)
	// user: a token whose email (if any) is verified and whose issuer maps
	// the given IdP groups.
	user := func(sub, email string, groups ...string) *Identity {
		return &Identity{Subject: sub, EntityRefSubject: strings.HasPrefix(sub, "user:"), Email: email, EmailVerified: email != "", Groups: groups, GroupsNamespace: "default"}
	}
	machine := func(client string) *Identity {
		return &Identity{Subject: "svc-" + client, ClientID: client, Machine: true}
	}
	cases := []struct {
		name          string
		id            *Identity // nil: no token
		route, method string
		path          string
		allow         bool
		status        int
		reason        string
		rule          string
	}{
		{"owner member", user("x", "alice@example.com"), ordersRoute, "POST", "/orders/1", true, 200, "owner", "owner group:default/payments"},
		{"owner by email, any case", user("x", "ALICE@example.COM"), ordersRoute, "DELETE", "/orders/1", true, 200, "owner", ""},
		{"member of a child group of the owner", user("user:default/olga", ""), ordersRoute, "GET", "/orders/1", true, 200, "owner", ""},
		{"member of the parent group is not an owner", user("x", "carol@example.com"), ordersRoute, "GET", "/orders/1", false, 403, "no_matching_rule", ""},
		{"backstage sub maps to the user", user("user:default/alice", ""), ordersRoute, "GET", "/orders/1", true, 200, "owner", ""},
		{"an entity-ref sub from an issuer that does not set entity_ref_subjects maps to nobody", &Identity{Subject: "user:default/alice"}, ordersRoute, "GET", "/orders/1", false, 403, "unknown_principal", ""},
		{"idp-subject maps to the user", user("kc-erin", ""), ordersRoute, "GET", "/orders/1", true, 200, "owner", ""},
		{"rule: user, method, path", user("x", "bob@example.com"), ordersRoute, "GET", "/orders/reports/2026/q1", true, 200, "rule", "rule 1 of component:default/orders gatehouse.dev/access"},
		{"rule: method not allowed", user("x", "bob@example.com"), ordersRoute, "POST", "/orders/reports/2026", false, 403, "no_matching_rule", ""},
		{"rule: path not allowed", user("x", "bob@example.com"), ordersRoute, "GET", "/orders/1", false, 403, "no_matching_rule", ""},
		{"rule via a user's IdP group claim", user("x", "carol@example.com", "pay-readers"), ordersRoute, "HEAD", "/orders/reports", true, 200, "rule", ""},
		{"IdP group claim naming a catalog group", user("x", "carol@example.com", "payments"), ordersRoute, "GET", "/orders/1", true, 200, "owner", ""},
		{"unknown IdP group grants nothing", user("x", "carol@example.com", "admins"), ordersRoute, "GET", "/orders/1", false, 403, "no_matching_rule", ""},
		{"IdP groups never make a stranger a member", user("stranger", "", "payments"), ordersRoute, "GET", "/orders/1", false, 403, "unknown_principal", ""},
		{"IdP group in another namespace than the issuer's", &Identity{Subject: "x", Email: "carol@example.com", EmailVerified: true, Groups: []string{"payments"}, GroupsNamespace: "teams"}, ordersRoute, "GET", "/orders/1", false, 403, "no_matching_rule", ""},
		{"unverified email maps to nobody", &Identity{Subject: "x", Email: "alice@example.com"}, ordersRoute, "GET", "/orders/1", false, 403, "unknown_principal", ""},
		{"trusted issuer's email maps (trust_email)", &Identity{Subject: "x", Email: "alice@example.com", EmailVerified: true, EmailTrust: "trust_email"}, ordersRoute, "GET", "/orders/1", true, 200, "owner", ""},
		{"verified email of no user", user("x", "nobody@example.com"), ordersRoute, "GET", "/orders/1", false, 403, "unknown_principal", ""},
		{"machine token of a client no component declares", machine("ghost"), ordersAPI, "GET", "/orders/v1/items", false, 403, "unknown_principal", ""},
		{"a machine token never maps to a user, even with a user's email", &Identity{Subject: "svc", Email: "alice@example.com", EmailVerified: true, ClientID: "checkout", Machine: true}, ordersRoute, "GET", "/orders/1", false, 403, "no_matching_rule", ""},
		{"consumer reaches the API's paths", machine("checkout"), ordersAPI, "POST", "/orders/v1/items", true, 200, "consumer", ""},
		{"consumer does not reach the rest of the provider", machine("checkout"), ordersRoute, "GET", "/orders/1", false, 403, "no_matching_rule", ""},
		{"non-consumer component", machine("shop"), ordersAPI, "GET", "/orders/v1/items", false, 403, "no_matching_rule", ""},
		{"API without prefix covers the provider", machine("checkout"), ledgerRoute, "GET", "/ledger/x", true, 200, "consumer", ""},
		{"user owner", user("x", "dave@example.com"), ledgerRoute, "GET", "/ledger/x", true, 200, "owner", "owner user:default/dave"},
		{"a user token never acts as the component of its client", &Identity{Subject: "x", Email: "stranger@example.com", EmailVerified: true, ClientID: "checkout"}, ordersAPI, "GET", "/orders/v1/items", false, 403, "unknown_principal", ""},
		{"a token without email at a component's client is not the component", &Identity{Subject: "x", ClientID: "checkout"}, ordersAPI, "GET", "/orders/v1/items", false, 403, "unknown_principal", ""},
		{"a known user at a component's client is the user", user("x", "alice@example.com"), ordersAPI, "GET", "/orders/v1/items", true, 200, "owner", ""},
		{"no token", nil, ordersRoute, "GET", "/orders/1", false, 401, "no_token", ""},
		{"unknown route", user("x", "alice@example.com"), "component:default/nope@*/nope", "GET", "/nope", false, 404, "unknown_route", ""},
		{"public path needs no token", nil, ordersRoute + "#public:/orders/healthz", "GET", "/orders/healthz", true, 200, "public_path", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var p *Principal
			if c.id != nil {
				p = e.PrincipalFor(c.id)
			}
			d := e.Decide(p, c.route, c.method, c.path, true)
			if d.Allow != c.allow || d.Status != c.status || d.Reason != c.reason || (c.rule != "" && d.Rule != c.rule) {
				t.Fatalf("got allow=%v status=%d reason=%s rule=%q; want allow=%v status=%d reason=%s rule=%q\nsteps: %+v",
					d.Allow, d.Status, d.Reason, d.Rule, c.allow, c.status, c.reason, c.rule, d.Steps)
			}
			if len(d.Steps) == 0 {
				t.Fatal("explain recorded no steps")
			}
		})
	}
}

func TestExplainMatchesRoutes(t *testing.T) {
	m := testcatalog.MustFiles(t, "testdata/policy-catalog.yaml")
	e := NewEngine(m)
	res, err := Explain(t.Context(), e, m, nil, ExplainRequest{Principal: "user:default/bob", Method: "GET", URL: "http://gw.example.com/orders/reports/1?x=1"})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Decision.Allow || res.Route == nil || res.Route.ID != ordersRoute {
		t.Fatalf("explain: %+v route %+v", res.Decision, res.Route)
	}
	var sawOwner bool
	for _, s := range res.Decision.Steps {
		if strings.HasPrefix(s.Rule, "owner ") && !s.Matched {
			sawOwner = true
		}
	}
	if !sawOwner {
		t.Errorf("the owner rule that did not match is not listed: %+v", res.Decision.Steps)
	}
	res, _ = Explain(t.Context(), e, m, nil, ExplainRequest{Principal: "component:default/checkout", URL: "http://gw/orders/v1/x"})
	if res.Route == nil || res.Route.ID != ordersAPI || !res.Decision.Allow {
		t.Fatalf("API route explain: %+v %+v", res.Route, res.Decision)
	}
	res, _ = Explain(t.Context(), e, m, nil, ExplainRequest{Principal: "user:default/bob", URL: "http://gw/elsewhere"})
	if res.Decision.Status != 404 {
		t.Fatalf("no route: %+v", res.Decision)
	}
	if _, err := Explain(t.Context(), e, m, nil, ExplainRequest{Principal: "user:default/nobody", URL: "http://gw/orders"}); err == nil {
		t.Fatal("unknown principal accepted")
	}
}

func TestCleanPath(t *testing.T) {
	cases := map[string]struct {
		out string
		ok  bool
	}{
		"/orders/1?x=/../admin": {"/orders/1", true},
		"/orders/%31":           {"/orders/1", true},
		"/orders/%2e%2e/admin":  {"", false},
		"/orders/%2E/x":         {"", false},
		"/orders/%00":           {"", false},
		"/orders/%5c..":         {"", false},
		"/orders/%zz":           {"", false},
		"/a//b":                 {"", false},
		"orders":                {"", false},
		"":                      {"", false},
		"/":                     {"/", true},
	}
	for in, want := range cases {
		out, ok := cleanPath(in)
		if out != want.out || ok != want.ok {
			t.Errorf("cleanPath(%q) = %q, %v; want %q, %v", in, out, ok, want.out, want.ok)
		}
	}
}

func FuzzCleanPath(f *testing.F) {
	for _, s := range []string{"/orders/1", "/a/%2e%2e/b", "/x?y", "/%", "//"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, ok := cleanPath(in)
		if !ok {
			return
		}
		if out == "" || out[0] != '/' || strings.Contains(out, "//") || strings.ContainsAny(out, "?#\\\x00") {
			t.Fatalf("cleanPath(%q) = %q accepted", in, out)
		}
		for _, seg := range strings.Split(out, "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("cleanPath(%q) = %q keeps a dot segment", in, out)
			}
		}
	})
}

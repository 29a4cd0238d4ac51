package extauthz

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// A SAML session is read under its IdP's settings of now: its email counts
// only with trust_email, its groups only with a groups attribute (and its
// prefix), and a removed or re-pointed IdP ends it.
func TestSAMLSessionCheck(t *testing.T) {
	s, keys, buf, audit := newSessionServer(t)
	const entity = "https://idp.example.test/saml"
	session := func(sub, email string, groups ...string) string {
		now := time.Now()
		sealed, err := keys.SealSession(Session{Issuer: entity, IssuerName: "corp", Subject: sub, Email: email, Groups: groups, Method: MethodSAML,
			IssuedAt: now.Unix(), Expiry: now.Add(time.Hour).Unix()})
		if err != nil {
			t.Fatal(err)
		}
		return sealed
	}
	check := func(idp *SAMLIssuer, sealed string) (int, string) {
		t.Helper()
		s.opts.SAMLIssuers = nil
		if idp != nil {
			s.opts.SAMLIssuers = map[string]SAMLIssuer{"corp": *idp}
		}
		r, _ := s.Check(context.Background(), withScheme(checkReq(ordersRoute, "GET", "/orders/1", map[string]string{"cookie": "gatehouse-session=" + sealed}), "http"))
		if ok := r.GetOkResponse(); ok != nil {
			return 200, headerMap(ok.GetHeaders())["x-gatehouse-user"]
		}
		return int(r.GetDeniedResponse().GetStatus().GetCode()), ""
	}
	corp := SAMLIssuer{Name: "corp"}
	trusting := SAMLIssuer{Name: "corp", TrustEmail: true}
	groups := SAMLIssuer{Name: "corp", Groups: true}
	prefixed := SAMLIssuer{Name: "corp", Groups: true, GroupsPrefix: "catalog-"}
	pinned := SAMLIssuer{Name: "corp", TrustEmail: true, EntityID: "https://other-idp.example.test"}
	for _, tc := range []struct {
		name   string
		idp    *SAMLIssuer
		sealed string
		want   int
		user   string
	}{
		{"email without trust_email is not verified", &corp, session("alice", "alice@example.com"), 403, ""},
		{"email with trust_email", &trusting, session("alice", "alice@example.com"), 200, "user:default/alice"},
		{"NameID as a User's idp-subject", &corp, session("kc-erin", ""), 200, "user:default/erin"},
		{"IdP groups without a groups attribute count for nothing", &trusting, session("dave", "dave@example.com", "payments"), 403, ""},
		{"IdP groups with a groups attribute", &SAMLIssuer{Name: "corp", TrustEmail: true, Groups: true}, session("dave", "dave@example.com", "payments"), 200, "user:default/dave"},
		{"IdP groups need the prefix", &SAMLIssuer{Name: "corp", TrustEmail: true, Groups: true, GroupsPrefix: "catalog-"}, session("dave", "dave@example.com", "payments"), 403, ""},
		{"prefixed IdP group", &SAMLIssuer{Name: "corp", TrustEmail: true, Groups: true, GroupsPrefix: "catalog-"}, session("dave", "dave@example.com", "catalog-payments"), 200, "user:default/dave"},
		{"groups alone name nobody", &groups, session("nobody", "", "payments"), 403, ""},
		{"prefixed groups alone name nobody", &prefixed, session("nobody", "", "catalog-payments"), 403, ""},
		{"IdP no longer configured", nil, session("alice", "alice@example.com"), 401, ""},
		{"IdP now pinned to another entity", &pinned, session("alice", "alice@example.com"), 401, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, user := check(tc.idp, tc.sealed)
			if got != tc.want || user != tc.user {
				t.Fatalf("%d %q, want %d %q", got, user, tc.want, tc.user)
			}
		})
	}
	audit.Close()
	saw := false
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var rec AuditRecord
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		saw = saw || (rec.Auth == "saml-session" && rec.Principal == "user:default/alice" && rec.Decision == "allow")
	}
	if !saw {
		t.Fatalf("no audit record with auth saml-session:\n%s", buf.String())
	}
}

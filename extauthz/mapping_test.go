package extauthz

import (
	"context"
	"slices"
	"strings"
	"testing"
)

// TestVerifyMappingClaims: what an issuer's settings let gatehouse believe
// of a token: a verified email, a client-credentials token, IdP groups.
func TestVerifyMappingClaims(t *testing.T) {
	k := newRSAKey(t, "rsa-1", 0)
	p := newIdP(t, k)
	plain := newTestVerifier(t, p, func(c *IssuerConfig) { c.GroupsClaim = "" })
	trusting := newTestVerifier(t, p, func(c *IssuerConfig) { c.TrustEmail = true })
	keycloak := newTestVerifier(t, p, func(c *IssuerConfig) { c.MachineClaims = []string{"client_id={client}"} })
	auth0 := newTestVerifier(t, p, func(c *IssuerConfig) {
		c.MachineClaims = []string{"gty=client-credentials", "sub={client}@clients"}
	})
	prefixed := newTestVerifier(t, p, func(c *IssuerConfig) { c.GroupsPrefix = "catalog-"; c.GroupsNamespace = "teams" })
	cases := []struct {
		name     string
		v        *Verifier
		mods     []func(map[string]any)
		verified bool
		trust    string // substring of EmailTrust
		machine  bool
		groups   []string
	}{
		{"email_verified true", plain, []func(map[string]any){withClaim("email_verified", true)}, true, "email_verified", false, nil},
		{"email_verified \"true\"", plain, []func(map[string]any){withClaim("email_verified", "true")}, true, "email_verified", false, nil},
		{"email_verified false", plain, []func(map[string]any){withClaim("email_verified", false)}, false, "not verified", false, nil},
		{"email_verified absent", plain, nil, false, "does not set trust_email", false, nil},
		{"trust_email issuer, unverified", trusting, []func(map[string]any){withClaim("email_verified", false)}, true, "trust_email", false, []string{"payments", "ops"}},
		{"groups off by default (no groups_claim)", plain, nil, false, "", false, nil},
		{"keycloak service-account token", keycloak, []func(map[string]any){withClaim("azp", "checkout"), withClaim("client_id", "checkout"), withoutClaim("email")}, false, "", true, []string{"payments", "ops"}},
		{"keycloak user token at the same client", keycloak, []func(map[string]any){withClaim("azp", "checkout"), withoutClaim("email")}, false, "", false, []string{"payments", "ops"}},
		{"keycloak: client_id naming another client", keycloak, []func(map[string]any){withClaim("azp", "checkout"), withClaim("client_id", "other")}, false, "", false, []string{"payments", "ops"}},
		{"keycloak: client_id not a string", keycloak, []func(map[string]any){withClaim("azp", "checkout"), withClaim("client_id", 7)}, false, "", false, []string{"payments", "ops"}},
		{"auth0 client-credentials", auth0, []func(map[string]any){withClaim("azp", "abc"), withClaim("gty", "client-credentials"), withClaim("sub", "abc@clients")}, false, "", true, []string{"payments", "ops"}},
		{"auth0: only one of two claims", auth0, []func(map[string]any){withClaim("azp", "abc"), withClaim("gty", "client-credentials")}, false, "", false, []string{"payments", "ops"}},
		{"no machine claims: never a machine token", plain, []func(map[string]any){withClaim("azp", "checkout"), withClaim("client_id", "checkout")}, false, "", false, nil},
		{"groups prefix keeps only prefixed groups", prefixed, []func(map[string]any){withClaim("groups", []string{"catalog-payments", "payments", "/catalog-ops", "catalog-"})}, false, "", false, []string{"payments", "ops"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id, err := c.v.Verify(context.Background(), k.sign(t, claimsFor(p.URL, c.mods...), ""))
			if err != nil {
				t.Fatal(err)
			}
			why := id.EmailTrust
			if !id.EmailVerified && id.Email != "" {
				why = id.EmailWhyNot()
			}
			if id.EmailVerified != c.verified || !strings.Contains(why, c.trust) {
				t.Errorf("email verified %v (%q), want %v (%q)", id.EmailVerified, why, c.verified, c.trust)
			}
			if id.Machine != c.machine {
				t.Errorf("machine %v (%q), want %v", id.Machine, id.NotMachine(), c.machine)
			}
			if !c.machine && id.ClientID != "" && !strings.Contains(id.NotMachine(), "machine_token_claims") {
				t.Error("no reason why the token is not a machine token")
			}
			if !slices.Equal(id.Groups, c.groups) {
				t.Errorf("groups %q, want %q", id.Groups, c.groups)
			}
		})
	}
	if id, _ := prefixed.Verify(context.Background(), k.sign(t, claimsFor(p.URL), "")); id.GroupsNamespace != "teams" {
		t.Errorf("groups namespace %q", id.GroupsNamespace)
	}
	if _, err := plain.Verify(context.Background(), k.sign(t, claimsFor(p.URL, withClaim("email_verified", []int{1})), "")); reasonOf(err) != "malformed" {
		t.Errorf("email_verified not a boolean: %v", err)
	}
}

// TestNonCanonicalBase64URL: a token re-spelled with the unused low bits of
// a part's last character set, with padding or with line breaks, is a
// different string that Go's lenient decoder reads as the same bytes: it
// must be refused, never verified.
func TestNonCanonicalBase64URL(t *testing.T) {
	k := newRSAKey(t, "rsa-1", 0)
	p := newIdP(t, k)
	v := newTestVerifier(t, p, nil)
	tok := ""
	// A payload and signature whose encodings have unused bits (lengths not a multiple of 3).
	for i := 0; ; i++ {
		tok = k.sign(t, claimsFor(p.URL, withClaim("pad", strings.Repeat("x", i))), "")
		parts := strings.Split(tok, ".")
		if len(parts[0])%4 != 0 && len(parts[1])%4 != 0 && len(parts[2])%4 != 0 {
			break
		}
	}
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("the canonical token: %v", err)
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	flipLow := func(part string) string {
		last := strings.IndexByte(alphabet, part[len(part)-1])
		return part[:len(part)-1] + string(alphabet[last^1])
	}
	for i, name := range []string{"header", "payload", "signature"} {
		parts := strings.Split(tok, ".")
		parts[i] = flipLow(parts[i])
		bad := strings.Join(parts, ".")
		if _, err := v.Verify(context.Background(), bad); err == nil {
			t.Errorf("%s with a set unused bit verified", name)
		}
		parts = strings.Split(tok, ".")
		parts[i] = parts[i][:4] + "\n" + parts[i][4:]
		if _, err := v.Verify(context.Background(), strings.Join(parts, ".")); err == nil {
			t.Errorf("%s with a line break verified", name)
		}
		parts = strings.Split(tok, ".")
		parts[i] += strings.Repeat("=", 4-len(parts[i])%4)
		if _, err := v.Verify(context.Background(), strings.Join(parts, ".")); err == nil {
			t.Errorf("%s with padding verified", name)
		}
	}
}

func reasonOf(err error) string {
	if te, ok := err.(*TokenError); ok {
		return te.Reason
	}
	return ""
}

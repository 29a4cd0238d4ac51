package extauthz

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestCredentialsNeverReachUpstreams: the Authorization header and the
// credential cookie are removed on every allowed request, public paths
// included, unless the route forwards the token; other cookies stay.
func TestCredentialsNeverReachUpstreams(t *testing.T) {
	s, v, _, _, _ := newTestServer(t)
	s.opts.CookieName = "gh_session"
	v.ids["dave-token"] = &Identity{Subject: "d", Email: "dave@example.com", EmailVerified: true, Expiry: aliceExpiry(v)}
	ctx := context.Background()
	cases := []struct {
		name, route, path string
		headers           map[string]string
		wantCookie        string // "": the cookie header is removed; "-": untouched
		wantAuthRemoved   bool
	}{
		{"cookie token, other cookies kept", ordersRoute, "/orders/1", map[string]string{"cookie": "theme=dark; gh_session=alice-token; lang=en"}, "theme=dark; lang=en", false},
		{"cookie token alone: the header goes", ordersRoute, "/orders/1", map[string]string{"cookie": "gh_session=alice-token"}, "", false},
		{"bearer token and a credential cookie: both go", ordersRoute, "/orders/1", map[string]string{"authorization": "Bearer alice-token", "cookie": "gh_session=bob-token; a=1"}, "a=1", true},
		{"repeated credential cookie, comma-joined", ordersRoute, "/orders/1", map[string]string{"cookie": "gh_session=alice-token, gh_session=x; a=1"}, "a=1", false},
		{"no credential cookie: untouched", ordersRoute, "/orders/1", map[string]string{"authorization": "Bearer alice-token", "cookie": "theme=dark"}, "-", true},
		{"public path: the caller's credentials go too", ordersRoute + "#public:/orders/healthz", "/orders/healthz", map[string]string{"authorization": "Bearer whatever", "cookie": "gh_session=alice-token; theme=dark"}, "theme=dark", true},
		{"forward-token route keeps both", ledgerRoute, "/ledger/1", map[string]string{"authorization": "Bearer dave-token", "cookie": "gh_session=x; a=1"}, "-", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, _ := s.Check(ctx, checkReq(c.route, "GET", c.path, c.headers))
			ok := r.GetOkResponse()
			if ok == nil {
				t.Fatalf("denied: %v", r)
			}
			removed := ok.GetHeadersToRemove()
			set := headerMap(ok.GetHeaders())
			if got := slices.Contains(removed, "authorization"); got != c.wantAuthRemoved {
				t.Errorf("authorization removed = %v, want %v (%v)", got, c.wantAuthRemoved, removed)
			}
			switch {
			case c.wantCookie == "-":
				if _, ok := set["cookie"]; ok || slices.Contains(removed, "cookie") {
					t.Errorf("cookie touched: set %q, removed %v", set["cookie"], removed)
				}
			case c.wantCookie == "":
				if !slices.Contains(removed, "cookie") {
					t.Errorf("cookie header not removed: %v %v", removed, set)
				}
			default:
				if set["cookie"] != c.wantCookie {
					t.Errorf("cookie = %q, want %q", set["cookie"], c.wantCookie)
				}
			}
		})
	}
}

func aliceExpiry(v *fakeVerifier) time.Time { return v.ids["alice-token"].Expiry }

func TestWithoutCookie(t *testing.T) {
	for in, want := range map[string]string{
		"gh=1":                         "",
		"a=1; gh=1":                    "a=1",
		"gh=1;a=1;;b=2":                "a=1; b=2",
		" gh =1; a=1":                  "a=1",
		"a=1, gh=2, b=3":               "a=1; b=3",
		"gh":                           "",
		"a=gh=1":                       "a=gh=1",
		"ghx=1; xgh=2":                 "ghx=1; xgh=2",
		"gh=1; gh=2; GH=3":             "GH=3",
		"a=\"quoted;\"; gh=\"x\"; b=4": "a=\"quoted; \"\"; b=4",
	} {
		// What Check uses; without a credential the header stays as sent.
		got, found := withoutCookies(in, "gh", false)
		if found != (want != in) {
			t.Errorf("withoutCookies(%q) found = %v", in, found)
		}
		if in == "a=\"quoted;\"; gh=\"x\"; b=4" {
			// A quoted value with a separator is not valid (RFC 6265); what
			// matters is that the credential is gone.
			if strings.Contains(got, "gh=") {
				t.Errorf("%q: credential kept: %q", in, got)
			}
			continue
		}
		if got != want {
			t.Errorf("withoutCookies(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzWithoutCookie: whatever the header, the credential cookie never
// survives, and every other cookie does.
func FuzzWithoutCookie(f *testing.F) {
	for _, s := range []string{"gh=1", "a=1; gh=2", "gh=1,gh=2", "; ;gh=;", "\tgh\t=x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		rest, found := withoutCookie(header, "gh")
		// The one Check uses (one pass, vectorised splitting) agrees with
		// this plain reference (the rest is used only when one was found).
		if r2, f2 := withoutCookies(header, "gh", false); f2 != found || (found && r2 != rest) {
			t.Fatalf("%q: withoutCookies = %q %v, reference %q %v", header, r2, f2, rest, found)
		}
		if tok := bearerToken(map[string]string{"cookie": rest}, "gh"); tok != "" {
			t.Fatalf("%q -> %q: the credential cookie is still readable (%q)", header, rest, tok)
		}
		if bearerToken(map[string]string{"cookie": header}, "gh") != "" && !found {
			t.Fatalf("%q: a readable credential was not found", header)
		}
		for _, part := range strings.FieldsFunc(rest, func(r rune) bool { return r == ';' || r == ',' }) {
			k, _, _ := strings.Cut(strings.TrimSpace(part), "=")
			if strings.TrimSpace(k) == "gh" {
				t.Fatalf("%q -> %q keeps a gh cookie", header, rest)
			}
			if !strings.Contains(header, strings.TrimSpace(part)) {
				t.Fatalf("%q -> %q invents %q", header, rest, part)
			}
		}
	})
}

// cookieParts splits a Cookie header into its name=value pairs, trimmed
// (the plain reference for withoutCookies, below).
func cookieParts(header string) []string {
	parts := strings.FieldsFunc(header, func(r rune) bool { return r == ';' || r == ',' })
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

// withoutCookie is the plain reference the fuzz target holds
// withoutCookies (one pass, what Check uses) to: a Cookie header without
// every cookie named name, and whether there was one.
func withoutCookie(header, name string) (string, bool) {
	var kept []string
	found := false
	for _, part := range cookieParts(header) {
		k, _, _ := strings.Cut(part, "=")
		if strings.TrimSpace(k) == name {
			found = true
			continue
		}
		if part != "" {
			kept = append(kept, part)
		}
	}
	return strings.Join(kept, "; "), found
}

// TestSignInCookiesNeverReachUpstreams: gatehouse's session and sign-in
// binding cookies are removed before every upstream, on a route that
// forwards the token too (forwarding is for the caller's token, never for
// gatehouse's own cookies).
func TestSignInCookiesNeverReachUpstreams(t *testing.T) {
	s, v, _, audit, _ := newTestServer(t)
	defer audit.Close()
	s.opts.Sessions = testKeys(t, 9)
	s.opts.CookieName = "gh_token"
	v.ids["dave-token"] = &Identity{Subject: "d", Email: "dave@example.com", EmailVerified: true, Expiry: aliceExpiry(v)}
	own := "gatehouse-signin=b; __Host-gatehouse-signin=b2; gatehouse-session=s; __Host-gatehouse-session=s2"
	for _, c := range []struct {
		name, route, path, token, want string
	}{
		{"plain route", ordersRoute, "/orders/1", "alice-token", "a=1"},
		{"forward-token route keeps the credential cookie only", ledgerRoute, "/ledger/1", "dave-token", "gh_token=t; a=1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, _ := s.Check(context.Background(), checkReq(c.route, "GET", c.path, map[string]string{"authorization": "Bearer " + c.token, "cookie": own + "; gh_token=t; a=1"}))
			ok := r.GetOkResponse()
			if ok == nil {
				t.Fatalf("denied: %v", r)
			}
			if got := headerMap(ok.GetHeaders())["cookie"]; got != c.want {
				t.Errorf("cookie for the upstream = %q, want %q", got, c.want)
			}
		})
	}
}

package extauthz

import (
	"context"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
)

// Token exchanges per second, in process (the HTTP handler, no network):
// the form parsed, both tokens verified, the agent's reach looked up, a
// token signed (ES256) and answered. -rs256: both tokens are real RS256
// tokens verified as Check verifies any; fake: a map lookup, so the
// exchange's own work shows.
//
//	go test -run XXX -bench 'TokenExchange|DelegatedVsPlain' -benchmem ./extauthz/
func BenchmarkTokenExchange(b *testing.B) {
	b.Run("fake-verifier", func(b *testing.B) { benchExchange(b, false) })
	b.Run("rs256", func(b *testing.B) { benchExchange(b, true) })
}

// benchWorld is the agents world with, when real, an RS256 IdP verifier;
// it returns the person's and the agent's tokens.
func benchWorld(b *testing.B, real bool) (*agentWorld, string, string) {
	w := newAgentWorldAudit(b, NewAudit(io.Discard, 8192))
	b.Cleanup(w.srv.audit.Close)
	if !real {
		return w, "alice", "copilot"
	}
	k := newRSAKey(b, "rsa-1", 0)
	idp := newIdP(b, k)
	w.srv.SetVerifier(newTestVerifier(b, idp, func(c *IssuerConfig) { c.MachineClaims = []string{"client_id={client}"} }))
	alice := k.sign(b, claimsFor(idp.URL, withClaim("email", "alice@example.com"), withClaim("email_verified", true), withoutClaim("groups")), "at+jwt")
	agent := k.sign(b, claimsFor(idp.URL, withClaim("sub", "sa-copilot"), withClaim("client_id", "copilot"), withClaim("azp", "copilot"), withoutClaim("email"), withoutClaim("groups")), "at+jwt")
	return w, alice, agent
}

func benchExchange(b *testing.B, real bool) {
	w, alice, agent := benchWorld(b, real)
	body := exchangeForm(alice, agent, "component:default/orders").Encode()
	once := func() {
		req := httptest.NewRequest("POST", ExchangePath, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		w.ex.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatalf("exchange: %d %s", rec.Code, rec.Body)
		}
	}
	once()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		once()
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "exchanges/s")
}

// A delegated Check (a person's token exchanged for an agent: two
// principals, the agent's limits, the audience) against a plain Check of
// the person's own token on the same route, cached and fresh (cache off:
// the plain token is a real RS256 token, the delegated one gatehouse's
// ES256, each verified as Check verifies them).
func BenchmarkDelegatedVsPlain(b *testing.B) {
	for _, c := range []struct {
		name      string
		delegated bool
		cache     int
		real      bool
	}{
		{"plain/cached", false, 1000, true}, {"delegated/cached", true, 1000, true},
		{"plain/fresh-rs256", false, 0, true}, {"delegated/fresh-es256", true, 0, true},
		{"plain/fresh-fake", false, 0, false}, {"delegated/fresh-fake-idp", true, 0, false},
	} {
		b.Run(c.name, func(b *testing.B) {
			w, alice, agent := benchWorld(b, c.real)
			tok := alice
			if c.delegated {
				tok = w.issued(b, alice, agent, "component:default/orders")
			}
			w.srv.state.Load().cache = newDecisionCache(c.cache)
			benchCheck(b, w.srv, checkReq(apiRoute, "GET", "/orders/v1/items", map[string]string{"authorization": "Bearer " + tok}))
		})
	}
	// The floor of a fresh delegated Check: verifying gatehouse's token
	// (signature and claims), and its ES256 signature alone.
	b.Run("delegated/verify-token-only", func(b *testing.B) {
		w, alice, agent := benchWorld(b, false)
		tok := w.issued(b, alice, agent, "component:default/orders")
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := w.d.verify(tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("delegated/es256-signature-only", func(b *testing.B) {
		w, alice, agent := benchWorld(b, false)
		tok := w.issued(b, alice, agent, "component:default/orders")
		j, _ := parseCompact(tok)
		pub := w.signer.publicKey(j.kid)
		j.release()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			j, _ := parseCompact(tok)
			if j.decodeSig() != nil || !j.verifyWith(pub) {
				b.Fatal("signature")
			}
			j.release()
		}
	})
}

func benchCheck(b *testing.B, s *Server, req *authv3.CheckRequest) {
	ctx := context.Background()
	if r, _ := s.Check(ctx, req); r.GetOkResponse() == nil {
		b.Fatalf("denied: %v", r.GetDeniedResponse())
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if r, _ := s.Check(ctx, req); r.GetOkResponse() == nil {
			b.Fatal("denied")
		}
	}
}

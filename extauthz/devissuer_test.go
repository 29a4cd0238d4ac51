package extauthz

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

// devIssuerVerifier serves a development issuer and a Verifier that trusts
// it exactly as serve --dev does (audiences: gatehouse-dev only).
func devIssuerVerifier(t *testing.T) (*DevIssuer, *httptest.Server, *Verifier) {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	d, err := NewDevIssuer("http://"+srv.Listener.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = d.Handler()
	srv.Start()
	t.Cleanup(srv.Close)
	v, err := NewVerifier(context.Background(), []IssuerConfig{{Name: "dev", IssuerURL: d.Issuer(), Audiences: []string{DevAudience},
		Algorithms: []string{"ES256"}, EntityRefSubjects: true}}, srv.Client(), discardLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return d, srv, v
}

// An added audience joins gatehouse-dev (never replaces it), so the token
// passes the development issuer's own audience check and names the MCP
// API an MCP route requires; without one, aud is gatehouse-dev alone.
func TestDevTokenAudiences(t *testing.T) {
	d, _, v := devIssuerVerifier(t)
	for _, c := range []struct {
		auds, want []string
	}{
		{nil, []string{DevAudience}},
		{[]string{"api:default/platform-tools"}, []string{DevAudience, "api:default/platform-tools"}},
		{[]string{"api:default/a", "https://gw.example.com/tools/mcp"}, []string{DevAudience, "api:default/a", "https://gw.example.com/tools/mcp"}},
	} {
		tok, err := d.Mint(DevTokenRequest{Subject: "user:default/alice", Audiences: c.auds}, time.Now())
		if err != nil {
			t.Fatalf("%v: %v", c.auds, err)
		}
		id, err := v.Verify(context.Background(), tok)
		if err != nil {
			t.Fatalf("%v: the dev issuer's verifier refuses its token: %v", c.auds, err)
		}
		if !slices.Equal(id.Audiences, c.want) {
			t.Errorf("%v: aud %q, want %q", c.auds, id.Audiences, c.want)
		}
	}
}

// Hostile audiences are refused with what is wrong, at Mint and at POST
// /dev/token (400), and never yield a token.
func TestDevTokenAudienceRefusals(t *testing.T) {
	d, srv, _ := devIssuerVerifier(t)
	many := make([]string, maxDevAudiences+1)
	for i := range many {
		many[i] = "api:default/a" + strings.Repeat("x", i)
	}
	for _, c := range []struct {
		name string
		auds []string
		want string
	}{
		{"empty", []string{""}, "1 to 256 characters"},
		{"long", []string{strings.Repeat("a", 257)}, "1 to 256 characters"},
		{"space", []string{"api:default/a b"}, "printable ASCII"},
		{"newline", []string{"api:default/a\nb"}, "printable ASCII"},
		{"control", []string{"api\x00"}, "printable ASCII"},
		{"non-ascii", []string{"api:default/é"}, "printable ASCII"},
		{"twice", []string{"api:default/a", "api:default/a"}, "given twice"},
		{"the dev audience", []string{DevAudience}, "given twice"},
		{"too many", many, "at most 8"},
	} {
		tok, err := d.Mint(DevTokenRequest{Subject: "user:default/alice", Audiences: c.auds}, time.Now())
		if err == nil || tok != "" || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Mint = %q, %v; want an error saying %q", c.name, tok, err, c.want)
		}
		body, _ := json.Marshal(map[string]any{"sub": "user:default/alice", "aud": c.auds})
		resp, err := srv.Client().Post(srv.URL+"/dev/token", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: POST /dev/token answered %d, want 400", c.name, resp.StatusCode)
		}
	}
	// aud of another JSON type is a bad request, not a token.
	resp, err := srv.Client().Post(srv.URL+"/dev/token", "application/json", strings.NewReader(`{"sub":"user:default/alice","aud":"api:default/a"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("aud as a string: %d, want 400", resp.StatusCode)
	}
}

// FuzzDevTokenAudience: any audience either mints a token the dev
// issuer's verifier accepts with aud gatehouse-dev first and that
// audience next, or is refused; never a token without gatehouse-dev.
func FuzzDevTokenAudience(f *testing.F) {
	for _, s := range []string{"api:default/platform-tools", "", " ", "gatehouse-dev", "https://gw/x", "a\"b", "\xff", strings.Repeat("z", 300)} {
		f.Add(s)
	}
	d, err := NewDevIssuer("http://127.0.0.1:1", nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, aud string) {
		tok, err := d.Mint(DevTokenRequest{Subject: "user:default/alice", Audiences: []string{aud}}, time.Now())
		if err != nil {
			return
		}
		parts := strings.Split(tok, ".")
		payload, err := b64.DecodeString(parts[1])
		if err != nil {
			t.Fatal(err)
		}
		var claims struct {
			Aud []string `json:"aud"`
		}
		if err := json.Unmarshal(payload, &claims); err != nil {
			t.Fatalf("minted aud is not a list: %v", err)
		}
		if len(claims.Aud) != 2 || claims.Aud[0] != DevAudience || claims.Aud[1] != aud {
			t.Fatalf("aud %q minted as %q", aud, claims.Aud)
		}
	})
}

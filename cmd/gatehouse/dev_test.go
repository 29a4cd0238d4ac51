package main

import (
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/extauthz"
)

// dev.key_file: created once (0600), then reused, so a restarted demo keeps
// accepting the tokens it minted before.
func TestDevKeyFileSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "dev-issuer.pem")
	k1, created, err := devKey(path)
	if err != nil || !created {
		t.Fatalf("first start: created=%v err=%v", created, err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v (%v), want 0600", st.Mode().Perm(), err)
	}
	k2, created, err := devKey(path)
	if err != nil || created || !k1.Equal(k2) {
		t.Fatalf("second start: created=%v err=%v same key=%v", created, err, k1.Equal(k2))
	}
	if a, b := devJWKS(t, k1), devJWKS(t, k2); a != b {
		t.Fatalf("the restarted issuer publishes another key:\n%s\n%s", a, b)
	}

	if err := os.WriteFile(path, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := devKey(path); err == nil || !strings.Contains(err.Error(), "fix: delete it") {
		t.Fatalf("a garbage key file: %v, want an error with the fix", err)
	}
}

func devJWKS(t *testing.T, k *ecdsa.PrivateKey) string {
	t.Helper()
	d, err := extauthz.NewDevIssuer("http://127.0.0.1:9090", k)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	d.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/dev/oidc/jwks", nil))
	return rec.Body.String()
}

// gatehouse token warns (on stderr, the token still printed) when the
// running gatehouse's catalog has no such user or client id.
func TestTokenWarnsForUnknownPrincipal(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/dev/token":
			_, _ = w.Write([]byte(`{"access_token":"tok","token_type":"Bearer"}`))
		case "/debug/model":
			_, _ = w.Write([]byte(`{"directory":{"users":[{"ref":"user:default/alice","email":"alice@example.com"}],"clients":[{"ref":"component:default/shop","clientIds":["shop"]}]}}`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	for _, c := range []struct {
		args []string
		warn string
	}{
		{[]string{"--user", "user:default/alice"}, ""},
		{[]string{"--user", "user:default/carol"}, "user:default/carol is not a User in gatehouse's catalog"},
		{[]string{"--user", "user:default/carol", "--email", "ALICE@example.com"}, ""},
		{[]string{"--client-id", "shop"}, ""},
		{[]string{"--client-id", "reports"}, `no Component has gatehouse.dev/client-id "reports"`},
	} {
		out, err := runCommand(t, tokenCmd(), append(c.args, "--admin", srv.URL)...)
		if err != nil || !strings.HasPrefix(out, "tok\n") {
			t.Fatalf("%v: %q %v", c.args, out, err)
		}
		if got := strings.Contains(out, "warning:"); got != (c.warn != "") || !strings.Contains(out, c.warn) {
			t.Errorf("%v: output %q, want warning %q", c.args, out, c.warn)
		}
	}
}

// gatehouse token finds a demo whose admin port moved (DEMO_ADMIN_PORT) by
// the GATEHOUSE_ADMIN_LISTEN the demo tells you to export.
func TestTokenAdminFromEnvironment(t *testing.T) {
	for env, want := range map[string]string{
		"":                "http://127.0.0.1:9090",
		"127.0.0.1:19090": "http://127.0.0.1:19090",
		"0.0.0.0:9191":    "http://127.0.0.1:9191",
		"localhost:9292":  "http://localhost:9292",
		"not an address":  "http://127.0.0.1:9090",
	} {
		t.Setenv("GATEHOUSE_ADMIN_LISTEN", env)
		if got := defaultAdminURL(); got != want {
			t.Errorf("GATEHOUSE_ADMIN_LISTEN=%q: %s, want %s", env, got, want)
		}
	}
}

// gatehouse token --audience asks the real development issuer for the
// extra audiences, and the token carries them after gatehouse-dev; a bad
// one is the issuer's error, and no token is printed.
func TestTokenAudience(t *testing.T) {
	d, err := extauthz.NewDevIssuer("http://127.0.0.1:9090", nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()
	out, err := runCommand(t, tokenCmd(), "--admin", srv.URL, "--user", "user:default/alice", "--audience", "api:default/platform-tools")
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(strings.SplitN(out, "\n", 2)[0], ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", out)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		Aud []string `json:"aud"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil || strings.Join(claims.Aud, ",") != "gatehouse-dev,api:default/platform-tools" {
		t.Fatalf("aud %q (%v), want [gatehouse-dev api:default/platform-tools]", claims.Aud, err)
	}
	out, err = runCommand(t, tokenCmd(), "--admin", srv.URL, "--user", "user:default/alice", "--audience", "gatehouse-dev")
	if err == nil || !strings.Contains(err.Error(), "given twice") || strings.Contains(out, ".") {
		t.Fatalf("--audience gatehouse-dev: %q %v, want the issuer's refusal", out, err)
	}
}

package main

import (
	"crypto/ecdsa"
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

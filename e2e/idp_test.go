package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/harness"
)

// keycloak is the real OIDC provider of the tests (examples/idp): one
// instance per test binary, started on first use and stopped by TestMain.
type keycloak struct {
	issuer string
	proc   *harness.Proc
	err    error
}

var (
	idpOnce sync.Once
	idp     *keycloak
)

// startIDP returns the shared Keycloak, starting it if needed. A Keycloak
// that cannot start fails the test with its log.
func startIDP(t *testing.T) *keycloak {
	t.Helper()
	idpOnce.Do(func() {
		idp = &keycloak{}
		idp.proc, idp.issuer, idp.err = harness.StartKeycloak(repoRoot, 240*time.Second)
	})
	if idp.err != nil {
		t.Fatalf("the real OIDC provider (Keycloak, examples/idp) could not start: %v", idp.err)
	}
	return idp
}

func stopIDP() {
	if idp == nil || idp.proc == nil {
		return
	}
	if idp.proc.Stop(15 * time.Second) {
		fmt.Fprintln(os.Stderr, "e2e: Keycloak did not stop within 15s of SIGTERM; killed")
	}
}

// token asks Keycloak for an access token.
func (k *keycloak) token(t *testing.T, form url.Values) string {
	t.Helper()
	return k.tokenAt(t, k.issuer+"/protocol/openid-connect/token", form)
}

// tokenAt asks a Keycloak token endpoint (another realm's) for a token.
func (k *keycloak) tokenAt(t *testing.T, endpoint string, form url.Values) string {
	t.Helper()
	resp, err := http.PostForm(endpoint, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(b, &tr) != nil || tr.AccessToken == "" {
		t.Fatalf("Keycloak token request (%v): %d %s", form.Get("grant_type"), resp.StatusCode, b)
	}
	return tr.AccessToken
}

// userToken: the password grant through the public client gatehouse-cli.
func (k *keycloak) userToken(t *testing.T, user, client string) string {
	return k.token(t, url.Values{"grant_type": {"password"}, "client_id": {client}, "username": {user}, "password": {user + "-password"}, "scope": {"openid"}})
}

// clientToken: the client-credentials grant of a confidential client.
func (k *keycloak) clientToken(t *testing.T, client, secret string) string {
	return k.token(t, url.Values{"grant_type": {"client_credentials"}, "client_id": {client}, "client_secret": {secret}})
}

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
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

// optionalScope makes scope an optional client scope of client (created
// once, through Keycloak's admin REST API with the bootstrap admin of
// examples/idp/run.sh), so that a token asked with it carries it in its
// `scope` claim. (Done here rather than in the realm file: a realm file
// that declares any client scope loses Keycloak's built-in ones.)
func (k *keycloak) optionalScope(t *testing.T, client, scope string) {
	t.Helper()
	base := strings.TrimSuffix(k.issuer, "/realms/gatehouse")
	admin := k.tokenAt(t, base+"/realms/master/protocol/openid-connect/token",
		url.Values{"grant_type": {"password"}, "client_id": {"admin-cli"}, "username": {"admin"}, "password": {"admin"}})
	call := func(method, path string, body any, out any) int {
		t.Helper()
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, base+"/admin/realms/gatehouse"+path, rd)
		req.Header.Set("Authorization", "Bearer "+admin)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if out != nil && json.Unmarshal(b, out) != nil {
			t.Fatalf("Keycloak admin %s %s: %d %s", method, path, resp.StatusCode, b)
		}
		return resp.StatusCode
	}
	code := call("POST", "/client-scopes", map[string]any{"name": scope, "protocol": "openid-connect",
		"attributes": map[string]string{"include.in.token.scope": "true", "display.on.consent.screen": "false"}}, nil)
	if code != 201 && code != 409 {
		t.Fatalf("Keycloak admin: creating client scope %s: %d", scope, code)
	}
	var scopes []struct{ ID, Name string }
	call("GET", "/client-scopes", nil, &scopes)
	var clients []struct{ ID string }
	call("GET", "/clients?clientId="+url.QueryEscape(client), nil, &clients)
	for _, s := range scopes {
		if s.Name == scope && len(clients) == 1 {
			if code := call("PUT", "/clients/"+clients[0].ID+"/optional-client-scopes/"+s.ID, nil, nil); code != 204 {
				t.Fatalf("Keycloak admin: adding %s to %s: %d", scope, client, code)
			}
			return
		}
	}
	t.Fatalf("Keycloak admin: client scope %s or client %s not found", scope, client)
}

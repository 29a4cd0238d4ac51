package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// TestBrowserSAMLSignIn: a real headless Chromium signs in through a real
// Envoy edge and gatehouse at the real Keycloak acting as a SAML 2.0 IdP
// (client gatehouse-saml of examples/idp), which imports gatehouse's SP
// metadata first, as an operator would.
func TestBrowserSAMLSignIn(t *testing.T) {
	kc := startIDP(t)
	page := startPageUpstream(t)
	dir := t.TempDir()
	cat := filepath.Join(dir, "catalog.yaml")
	if err := os.WriteFile(cat, []byte(signInCatalog(t, "[payments]", page)), 0o644); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "session.key")
	if err := os.WriteFile(key, []byte(strings.Repeat("5a", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	spCert, spKey := writeSPKeyPair(t, dir)
	ports := []int{freePort(t), freePort(t), freePort(t), freePort(t)}
	signInPort := freePort(t)
	g := startGatehouseEnv(t, cat, fmt.Sprintf(`signin:
  listen: 127.0.0.1:%d
  issuer: keycloak-saml
  key_file: %s
  public_port: %d
  saml_sp:
    entity_id: gatehouse-saml
    cert_file: %s
    key_file: %s
  saml:
    - name: keycloak-saml
      metadata_url: %s/protocol/saml/descriptor
      trust_email: true
      groups_attribute: groups
`, signInPort, key, ports[2], spCert, spKey, kc.issuer), nil, ports...)
	e := startEnvoy(t, g, "edge-saml", false)
	base := fmt.Sprintf("http://127.0.0.1:%d", e.edgePort)
	protected := base + "/orders/1"
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: 5 * time.Second}
	get := func(url, cookie string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Accept", "text/html")
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return resp
	}
	// The first sign-in waits for gatehouse's first fetch of Keycloak's
	// metadata (a cold Keycloak on a busy machine answers in seconds).
	eventually(t, 30*time.Second, "the edge sends a browser to SAML sign-in", func() error {
		r, err := noRedirect.Get(base + "/.gatehouse/signin?rd=%2Forders%2F1")
		if err != nil {
			return err
		}
		r.Body.Close()
		if r.StatusCode != 302 || !strings.HasPrefix(r.Header.Get("Location"), kc.issuer+"/protocol/saml?SAMLRequest=") {
			return fmt.Errorf("%d to %q", r.StatusCode, r.Header.Get("Location"))
		}
		return nil
	})

	// The operator's step: Keycloak imports gatehouse's SP metadata (from
	// the edge, as an IdP would fetch it) into the SAML client: the SP's
	// signing certificate (Keycloak then requires signed requests) and its
	// logout URL.
	resp, err := http.Get(base + "/.gatehouse/saml/metadata")
	if err != nil {
		t.Fatal(err)
	}
	metadata, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(metadata, []byte(base+"/.gatehouse/saml/acs")) {
		t.Fatalf("SP metadata: %d %s", resp.StatusCode, metadata)
	}
	importSPMetadata(t, kc, metadata)

	ctx, cancel := chromium(t)
	defer cancel()
	location := func() string {
		t.Helper()
		u, err := chromedp.Run(ctx, chromedp.Location())
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("reading %s: %v", sel, err)
		}
		return s
	}
	sessionCookie := func() string {
		t.Helper()
		res, err := chromedp.Run(ctx, func(ctx context.Context, tg *chromedp.Target) (network.GetCookiesResult, error) {
			return cdp.Call(ctx, tg, network.GetCookies, network.GetCookiesParams{URLs: []string{base}})
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range res.Cookies {
			if c.Name == "gatehouse-session" {
				return c.Name + "=" + c.Value
			}
		}
		return ""
	}

	// Keycloak's answer as the browser posts it, with the binding cookie it
	// sends along: replayed below.
	var mu sync.Mutex
	var acsID network.RequestID
	var acsForm []byte
	cookiesOf := map[network.RequestID]string{}
	if err := chromedp.Listen(ctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			if ev.Request.Method == "POST" && ev.Request.URL == base+"/.gatehouse/saml/acs" {
				acsID, acsForm = ev.RequestID, nil
				for _, e := range ev.Request.PostDataEntries {
					acsForm = append(acsForm, e.Bytes...)
				}
			}
		case *network.EventRequestWillBeSentExtraInfo:
			for _, c := range ev.AssociatedCookies {
				if len(c.BlockedReasons) == 0 && c.Cookie.Name == "gatehouse-signin" {
					cookiesOf[ev.RequestID] = c.Cookie.Name + "=" + c.Cookie.Value
				}
			}
		}
	}); err != nil {
		t.Fatal(err)
	}

	t.Run("sign in at Keycloak over SAML and come back to the page", func(t *testing.T) {
		if err := chromedp.Do(ctx, chromedp.Navigate(protected), chromedp.WaitVisible(chromedp.CSS("#username"))); err != nil {
			t.Fatalf("the Keycloak login form: %v (at %s)", err, location())
		}
		if u := location(); !strings.HasPrefix(u, kc.issuer+"/protocol/saml") {
			t.Fatalf("the login form is at %s, want Keycloak's SAML endpoint", u)
		}
		start := time.Now()
		if err := chromedp.Do(ctx,
			chromedp.SendKeys(chromedp.CSS("#username"), "alice"),
			chromedp.SendKeys(chromedp.CSS("#password"), "alice-password"),
			chromedp.Click(chromedp.CSS("#kc-login")),
			chromedp.WaitVisible(chromedp.CSS("#user")),
		); err != nil {
			t.Fatalf("after the login form: %v (at %s)", err, location())
		}
		if u := location(); u != protected {
			t.Fatalf("back at %s, want %s", u, protected)
		}
		if who := text("#user"); who != "user:default/alice" {
			t.Fatalf("the page shows user %q, want user:default/alice", who)
		}
		if c := text("#cookie"); strings.Contains(c, "gatehouse-") {
			t.Fatalf("a gatehouse cookie reached the upstream: %q", c)
		}
		t.Logf("signed in over SAML and back on the page in %s", time.Since(start).Round(time.Millisecond))
	})

	cookie := sessionCookie()
	if cookie == "" {
		t.Fatal("no gatehouse-session cookie after the SAML sign-in")
	}

	t.Run("reload: no redirect; the audit says saml-session", func(t *testing.T) {
		if r := get(protected, cookie); r.StatusCode != 200 {
			t.Fatalf("with the session cookie: %d, want 200 at once", r.StatusCode)
		}
		if err := chromedp.Do(ctx, chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#user"))); err != nil {
			t.Fatal(err)
		}
		if u := location(); u != protected {
			t.Fatalf("after reload at %s", u)
		}
		eventually(t, 5*time.Second, "the audit records alice's SAML session", func() error {
			b, _ := os.ReadFile(g.auditPath)
			for _, line := range strings.Split(string(b), "\n") {
				if strings.Contains(line, `"principal":"user:default/alice"`) && strings.Contains(line, `"auth":"saml-session"`) && strings.Contains(line, `"decision":"allow"`) {
					return nil
				}
			}
			return fmt.Errorf("no allow with auth saml-session for alice in %d bytes", len(b))
		})
	})

	t.Run("Keycloak's answer replayed is refused", func(t *testing.T) {
		mu.Lock()
		form, binding := acsForm, cookiesOf[acsID]
		mu.Unlock()
		answer, err := url.ParseQuery(string(form))
		if err != nil || answer.Get("SAMLResponse") == "" || binding == "" {
			t.Fatalf("the browser's post to the ACS was not captured (form %d bytes, cookie %q, %v)", len(form), binding, err)
		}
		post := func(form url.Values, cookie string) *http.Response {
			t.Helper()
			req, _ := http.NewRequest("POST", base+"/.gatehouse/saml/acs", strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Cookie", cookie)
			r, err := noRedirect.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			r.Body.Close()
			if strings.Contains(r.Header.Get("Set-Cookie"), "gatehouse-session=v1") {
				t.Fatalf("a replayed answer made a session")
			}
			return r
		}
		if r := post(answer, binding); r.StatusCode != 400 {
			t.Fatalf("the same answer with the same binding cookie: %d, want 400", r.StatusCode)
		}
		// A new sign-in of another browser: its binding and RelayState,
		// with Keycloak's old answer (InResponseTo another request).
		r := get(base+"/.gatehouse/signin?rd=%2F", "")
		loc, _ := url.Parse(r.Header.Get("Location"))
		var fresh string
		for _, c := range r.Cookies() {
			if c.Name == "gatehouse-signin" {
				fresh = c.Name + "=" + c.Value
			}
		}
		if fresh == "" || loc == nil || loc.Query().Get("RelayState") == "" {
			t.Fatalf("a new sign-in: %d %q", r.StatusCode, r.Header.Get("Location"))
		}
		answer.Set("RelayState", loc.Query().Get("RelayState"))
		if r := post(answer, fresh); r.StatusCode != 400 {
			t.Fatalf("the answer to another request: %d, want 400", r.StatusCode)
		}
	})

	t.Run("a forged answer posted to the ACS makes no session", func(t *testing.T) {
		req, _ := http.NewRequest("POST", base+"/.gatehouse/saml/acs", strings.NewReader("SAMLResponse=PHNhbWxwOlJlc3BvbnNlLz4%3D&RelayState=x"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != 400 || strings.Contains(r.Header.Get("Set-Cookie"), "gatehouse-session=v1") {
			t.Fatalf("%d %q, want 400 without a session", r.StatusCode, r.Header.Get("Set-Cookie"))
		}
	})

	t.Run("logout ends the session here and at Keycloak", func(t *testing.T) {
		if err := chromedp.Do(ctx, chromedp.Navigate(base+"/.gatehouse/logout")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool { return strings.HasPrefix(location(), base+"/.gatehouse/signed-out") }, "the signed-out page", location)
		if c := sessionCookie(); c != "" {
			t.Fatal("the session cookie is still set after logout")
		}
		if r := get(protected, ""); r.StatusCode != 302 {
			t.Fatalf("the protected page without the session: %d, want 302 to sign in", r.StatusCode)
		}
		// Keycloak's session ended too (single logout): the login form again.
		if err := chromedp.Do(ctx, chromedp.Navigate(protected), chromedp.WaitVisible(chromedp.CSS("#username"))); err != nil {
			t.Fatalf("after logout the protected page should show Keycloak's login form: %v (at %s)", err, location())
		}
	})
}

// writeSPKeyPair writes gatehouse's SAML SP certificate and key (PEM).
func writeSPKeyPair(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gatehouse-saml"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "sp.crt"), filepath.Join(dir, "sp.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// importSPMetadata converts gatehouse's SP metadata with Keycloak's admin
// API (client-description-converter, what "Import client" does) and puts
// the signing certificate and logout URL it finds into the realm's
// gatehouse-saml client, which then requires signed requests.
func importSPMetadata(t *testing.T, kc *keycloak, metadata []byte) {
	t.Helper()
	admin := strings.TrimSuffix(kc.issuer, "/realms/gatehouse") + "/admin/realms/gatehouse"
	tok := masterToken(t, kc)
	call := func(method, url, ctype string, body []byte, out any) {
		t.Helper()
		req, _ := http.NewRequest(method, url, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode/100 != 2 {
			t.Fatalf("Keycloak admin %s %s: %d %s", method, url, resp.StatusCode, b)
		}
		if out != nil {
			if err := json.Unmarshal(b, out); err != nil {
				t.Fatalf("Keycloak admin %s %s: %v", method, url, err)
			}
		}
	}
	var imported struct {
		ClientID   string            `json:"clientId"`
		Attributes map[string]string `json:"attributes"`
	}
	call("POST", admin+"/client-description-converter", "text/plain", metadata, &imported)
	cert, slo := imported.Attributes["saml.signing.certificate"], imported.Attributes["saml_single_logout_service_url_redirect"]
	if imported.ClientID != "gatehouse-saml" || cert == "" || slo == "" {
		t.Fatalf("Keycloak read the SP metadata as %+v: want client gatehouse-saml with a signing certificate and a logout URL", imported)
	}
	var clients []map[string]any
	call("GET", admin+"/clients?clientId=gatehouse-saml", "", nil, &clients)
	if len(clients) == 0 {
		// The Keycloak home (and its import directory) is shared by every
		// checkout on a machine: a concurrent start from another branch may
		// have imported its own realm file. Add this branch's client.
		var realm struct {
			Clients []map[string]any `json:"clients"`
		}
		b, err := os.ReadFile(filepath.Join(repoRoot, "examples/idp/realm-gatehouse.json"))
		if err != nil || json.Unmarshal(b, &realm) != nil {
			t.Fatalf("reading the realm file: %v", err)
		}
		for _, c := range realm.Clients {
			if c["clientId"] == "gatehouse-saml" {
				body, _ := json.Marshal(c)
				call("POST", admin+"/clients", "application/json", body, nil)
				t.Log("the realm had no gatehouse-saml client (imported from another checkout's realm file); created it from examples/idp")
			}
		}
		call("GET", admin+"/clients?clientId=gatehouse-saml", "", nil, &clients)
	}
	if len(clients) != 1 {
		t.Fatalf("realm has %d clients gatehouse-saml", len(clients))
	}
	c := clients[0]
	attrs := c["attributes"].(map[string]any)
	attrs["saml.signing.certificate"], attrs["saml_single_logout_service_url_redirect"], attrs["saml.client.signature"] = cert, slo, "true"
	body, _ := json.Marshal(c)
	call("PUT", admin+"/clients/"+c["id"].(string), "application/json", body, nil)
}

package e2e

import (
	"context"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/gatehouse-dev/gatehouse/internal/testcatalog"
)

// signInCatalog: orders (owned by payments, where alice is) serves pages;
// ledger is a pure API (gatehouse.dev/sign-in: off). groups are alice's;
// page is the upstream of both.
func signInCatalog(t *testing.T, groups, page string) string {
	t.Helper()
	const alice = "memberOf: [payments]}"
	if !strings.Contains(testcatalog.Teams, alice) {
		t.Fatal("testcatalog.Teams no longer has alice in payments")
	}
	return strings.Replace(testcatalog.Teams, alice, "memberOf: "+groups+"}", 1) + fmt.Sprintf(`apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: orders
  annotations: {gatehouse.dev/upstream: %s}
spec: {type: website, lifecycle: production, owner: payments}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: ledger
  annotations: {gatehouse.dev/upstream: %s, gatehouse.dev/sign-in: "off"}
spec: {type: service, lifecycle: production, owner: payments}
`, page, page)
}

// startPageUpstream is an upstream that answers an HTML page naming the
// user gatehouse asserted.
func startPageUpstream(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>orders</title><h1 id="user">%s</h1><p id="path">%s</p><p id="cookie">%s</p>`,
			html.EscapeString(r.Header.Get("x-gatehouse-user")), html.EscapeString(r.URL.Path), html.EscapeString(r.Header.Get("Cookie")))
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return "http://" + l.Addr().String()
}

// chromium is the headless system browser (e2e/browser/install.sh).
func chromium(t *testing.T) (context.Context, context.CancelFunc) {
	t.Helper()
	out, err := exec.Command("bash", filepath.Join(repoRoot, "e2e/browser/install.sh")).Output()
	if err != nil {
		t.Fatalf("e2e/browser/install.sh: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	bin := lines[len(lines)-1]
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.UserDataDir(t.TempDir()))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 3*time.Minute)
	return ctx, func() { cancelT(); cancelC(); cancelA() }
}

// TestBrowserSignIn: a real headless Chromium signs in through a real
// Envoy edge, gatehouse and the real Keycloak (OIDC, authorization code
// with PKCE), and the session it gets is decided like a token: groups come
// from the catalog on every request.
func TestBrowserSignIn(t *testing.T) {
	kc := startIDP(t)
	page := startPageUpstream(t)
	dir := t.TempDir()
	cat := filepath.Join(dir, "catalog.yaml")
	writeCatalog := func(groups string) {
		t.Helper()
		tmp := cat + ".tmp"
		if err := os.WriteFile(tmp, []byte(signInCatalog(t, groups, page)), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, cat); err != nil {
			t.Fatal(err)
		}
	}
	writeCatalog("[payments]")
	secret := filepath.Join(dir, "client-secret")
	if err := os.WriteFile(secret, []byte("gatehouse-web-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Two replicas behind one Envoy: one edge port, each its own other
	// ports, one session key file (as a Secret would be mounted), and the
	// ext_authz and sign-in clusters list both.
	key := filepath.Join(dir, "session.key")
	if err := os.WriteFile(key, []byte(strings.Repeat("5e", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var ports [2][]int
	var signInPorts [2]int
	for i := range ports {
		ports[i] = []int{freePort(t), freePort(t), freePort(t), freePort(t)}
		signInPorts[i] = freePort(t)
	}
	edgePort := ports[0][2]
	ports[1][2] = edgePort
	var replicas [2]*gatehouse
	for i := range replicas {
		replicas[i] = startGatehouseEnv(t, cat, fmt.Sprintf(`issuers:
  - name: keycloak
    issuer_url: %s
    audiences: [gatehouse]
    algorithms: [RS256]
    sign_in:
      client_id: gatehouse-web
      client_secret_file: %s
signin:
  listen: 127.0.0.1:%d
  envoy_address: [127.0.0.1:%d, 127.0.0.1:%d]
  issuer: keycloak
  key_file: %s
  public_port: %d
`, kc.issuer, secret, signInPorts[i], signInPorts[0], signInPorts[1], key, edgePort),
			[]string{fmt.Sprintf("GATEHOUSE_AUTHZ_ENVOY_ADDRESS=127.0.0.1:%d,127.0.0.1:%d", ports[0][3], ports[1][3])}, ports[i]...)
	}
	g := replicas[0]
	e := startEnvoy(t, g, "edge-signin", false, "--xds-address", replicas[1].xdsAddr)
	base := fmt.Sprintf("http://127.0.0.1:%d", e.edgePort)
	protected := base + "/orders/1"
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: 5 * time.Second}
	get := func(url, accept, cookie string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	const browserAccept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
	eventually(t, 10*time.Second, "the edge answers the protected page", func() error {
		if r := get(protected, "application/json", ""); r.StatusCode != 401 {
			return fmt.Errorf("status %d", r.StatusCode)
		}
		return nil
	})

	t.Run("content negotiation without a session", func(t *testing.T) {
		if r := get(protected, browserAccept, ""); r.StatusCode != 302 || r.Header.Get("Location") != "/.gatehouse/signin?rd=%2Forders%2F1" {
			t.Fatalf("a browser: %d Location %q, want 302 to sign in", r.StatusCode, r.Header.Get("Location"))
		}
		for _, accept := range []string{"application/json", "*/*", "", "application/grpc"} {
			if r := get(protected, accept, ""); r.StatusCode != 401 || r.Header.Get("Www-Authenticate") == "" {
				t.Fatalf("Accept %q: %d, want 401 with WWW-Authenticate", accept, r.StatusCode)
			}
		}
		req, _ := http.NewRequest("GET", protected, nil)
		req.Header.Set("Accept", browserAccept)
		req.Header.Set("Authorization", "Bearer not-a-token")
		if r, err := noRedirect.Do(req); err != nil || r.StatusCode != 401 {
			t.Fatalf("a browser with a bearer token: %v %v, want 401", r, err)
		}
		if r := get(base+"/ledger/1", browserAccept, ""); r.StatusCode != 401 {
			t.Fatalf("a browser on the pure API (sign-in: off): %d, want 401", r.StatusCode)
		}
	})

	ctx, cancel := chromium(t)
	defer cancel()
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("reading %s: %v", sel, err)
		}
		return s
	}
	location := func() string {
		t.Helper()
		u, err := chromedp.Run(ctx, chromedp.Location())
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	fetchStatus := func(path, accept string) int {
		t.Helper()
		js := fmt.Sprintf(`fetch(%q, {headers: {Accept: %q}, redirect: "manual"}).then(r => r.status)`, path, accept)
		status, err := chromedp.Run(ctx, chromedp.Evaluate[int](js, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("fetch: %v", err)
		}
		return status
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
				if !c.HTTPOnly || c.SameSite != network.CookieSameSiteLax || c.Path != "/" {
					t.Errorf("session cookie attributes: HttpOnly %v SameSite %v Path %q", c.HTTPOnly, c.SameSite, c.Path)
				}
				return c.Name + "=" + c.Value
			}
		}
		return ""
	}

	t.Run("fetch with Accept: application/json gets 401, not 302", func(t *testing.T) {
		if err := chromedp.Do(ctx, chromedp.Navigate(base+"/.gatehouse/signed-out")); err != nil {
			t.Fatal(err)
		}
		if s := fetchStatus("/orders/1", "application/json"); s != 401 {
			t.Fatalf("fetch: %d, want 401", s)
		}
	})

	t.Run("sign in at Keycloak and come back to the page", func(t *testing.T) {
		if err := chromedp.Do(ctx,
			chromedp.Navigate(protected),
			chromedp.WaitVisible(chromedp.CSS("#username")),
		); err != nil {
			t.Fatalf("the Keycloak login form: %v (at %s)", err, location())
		}
		if u := location(); !strings.HasPrefix(u, kc.issuer+"/protocol/openid-connect/auth?") || !strings.Contains(u, "code_challenge_method=S256") || !strings.Contains(u, "nonce=") || !strings.Contains(u, "state=") {
			t.Fatalf("the login form is at %s, want Keycloak's authorization endpoint with PKCE, state and nonce", u)
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
		if c := text("#cookie"); strings.Contains(c, "gatehouse-session") {
			t.Fatalf("the session cookie reached the upstream: %q", c)
		}
		t.Logf("signed in and back on the page in %s", time.Since(start).Round(time.Millisecond))
	})

	cookie := sessionCookie()
	if cookie == "" {
		t.Fatal("no gatehouse-session cookie after sign-in")
	}

	t.Run("reload: no redirect", func(t *testing.T) {
		if r := get(protected, browserAccept, cookie); r.StatusCode != 200 {
			t.Fatalf("with the session cookie: %d, want 200 at once", r.StatusCode)
		}
		if err := chromedp.Do(ctx, chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#user"))); err != nil {
			t.Fatal(err)
		}
		if u := location(); u != protected {
			t.Fatalf("after reload at %s", u)
		}
		if s := fetchStatus("/orders/2", "application/json"); s != 200 {
			t.Fatalf("fetch with the session: %d, want 200", s)
		}
	})

	t.Run("the other replica accepts the session", func(t *testing.T) {
		replicas[0].proc.stop(t)
		eventually(t, 10*time.Second, "replica 2 alone decides the session", func() error {
			if r := get(protected, browserAccept, cookie); r.StatusCode != 200 {
				return fmt.Errorf("status %d", r.StatusCode)
			}
			return nil
		})
		if err := chromedp.Do(ctx, chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#user"))); err != nil {
			t.Fatal(err)
		}
		if u, who := location(), text("#user"); u != protected || who != "user:default/alice" {
			t.Fatalf("after replica 1 stopped: at %s as %q", u, who)
		}
		eventually(t, 5*time.Second, "replica 2's audit records alice's session", func() error {
			b, _ := os.ReadFile(replicas[1].auditPath)
			for _, line := range strings.Split(string(b), "\n") {
				if strings.Contains(line, `"principal":"user:default/alice"`) && strings.Contains(line, `"auth":"oidc-session"`) && strings.Contains(line, `"decision":"allow"`) {
					return nil
				}
			}
			return fmt.Errorf("no allow with auth oidc-session for alice in %d bytes", len(b))
		})
	})

	t.Run("a tampered session cookie is no session", func(t *testing.T) {
		bad := cookie[:len(cookie)-2] + "AA"
		if r := get(protected, "application/json", bad); r.StatusCode != 401 {
			t.Fatalf("tampered cookie: %d, want 401", r.StatusCode)
		}
	})

	t.Run("a return URL pointing elsewhere is refused", func(t *testing.T) {
		for _, rd := range []string{"https://evil.example.com/", "//evil.example.com/", "/\\evil.example.com"} {
			if r := get(base+"/.gatehouse/signin?rd="+url.QueryEscape(rd), browserAccept, ""); r.StatusCode != 400 {
				t.Fatalf("rd=%s: %d, want 400", rd, r.StatusCode)
			}
		}
		if err := chromedp.Do(ctx, chromedp.Navigate(base+"/.gatehouse/signin?rd=https://evil.example.com/")); err != nil {
			t.Fatal(err)
		}
		if u := location(); !strings.HasPrefix(u, base) || !strings.Contains(text("h1"), "refused") {
			t.Fatalf("the browser is at %s (%q), want gatehouse's refusal", u, text("h1"))
		}
	})

	t.Run("alice leaves the owner group: 403 within 2s", func(t *testing.T) {
		writeCatalog("[storefront]")
		start := time.Now()
		for {
			r := get(protected, browserAccept, cookie)
			if r.StatusCode == 403 {
				break
			}
			if time.Since(start) > 2*time.Second {
				t.Fatalf("still %d 2s after the catalog change", r.StatusCode)
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Logf("403 %s after the catalog change", time.Since(start).Round(time.Millisecond))
		if err := chromedp.Do(ctx, chromedp.Navigate(protected)); err != nil {
			t.Fatal(err)
		}
		body := text("body")
		if !strings.Contains(body, "forbidden") {
			t.Fatalf("the browser shows %q, want the 403", body)
		}
		writeCatalog("[payments]")
		eventually(t, 5*time.Second, "alice back in payments", func() error {
			if r := get(protected, browserAccept, cookie); r.StatusCode != 200 {
				return fmt.Errorf("status %d", r.StatusCode)
			}
			return nil
		})
	})

	t.Run("logout: the protected URL sends back to sign-in", func(t *testing.T) {
		if err := chromedp.Do(ctx, chromedp.Navigate(base+"/.gatehouse/logout")); err != nil {
			t.Fatal(err)
		}
		// Keycloak asks to confirm a logout without an id_token_hint
		// (gatehouse keeps no IdP token).
		confirm, _ := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("#kc-logout")).map(e => e.id)`))
		if len(confirm) > 0 {
			if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#kc-logout"))); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, func() bool { return strings.HasPrefix(location(), base+"/.gatehouse/signed-out") }, "the signed-out page", location)
		if c := sessionCookie(); c != "" {
			t.Fatalf("the session cookie is still set after logout")
		}
		if err := chromedp.Do(ctx, chromedp.Navigate(protected), chromedp.WaitVisible(chromedp.CSS("#username"))); err != nil {
			t.Fatalf("after logout the protected page should send to Keycloak's login form: %v (at %s)", err, location())
		}
	})
}

// waitFor polls cond for 10s.
func waitFor(t *testing.T, cond func() bool, what string, where func() string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s (at %s)", what, where())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

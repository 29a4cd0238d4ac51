package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// navLog records, from the browser's own events, every request a tab sends
// and every document its main frame shows: what tells a silent renewal (a
// chain of redirects through the IdP) from a login form (a page of the IdP
// shown).
type navLog struct {
	mu        sync.Mutex
	requests  []string
	documents []string
}

func listenNavigations(t *testing.T, ctx context.Context) *navLog {
	t.Helper()
	l := &navLog{}
	// Open the tab first, so that Listen misses nothing.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatal(err)
	}
	err := chromedp.Listen(ctx, func(ev any) {
		l.mu.Lock()
		defer l.mu.Unlock()
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			l.requests = append(l.requests, e.Request.URL)
		case *page.EventFrameNavigated:
			if e.Frame.ParentID == "" {
				l.documents = append(l.documents, e.Frame.URL)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// reset forgets what was recorded and returns it.
func (l *navLog) reset() (requests, documents []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	requests, documents = l.requests, l.documents
	l.requests, l.documents = nil, nil
	return
}

// TestBrowserSessionRenewal: sessions have a bounded lifetime (6 s here)
// and are renewed without a form while the IdP's session lives: a real
// headless Chromium, a real Envoy edge, gatehouse and the real Keycloak.
// In a session's last quarter, and after its end, a navigation goes
// through Keycloak with prompt=none and lands on the page again without
// any Keycloak page shown;
// a page's fetch() is never redirected (401 and x-gatehouse-sign-in:
// reload); once Keycloak's own session is logged out, the next expiry ends
// on Keycloak's login form.
func TestBrowserSessionRenewal(t *testing.T) {
	kc := startIDP(t)
	pageURL := startPageUpstream(t)
	dir := t.TempDir()
	cat := filepath.Join(dir, "catalog.yaml")
	if err := os.WriteFile(cat, []byte(signInCatalog(t, "[payments]", pageURL)), 0o644); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(dir, "client-secret")
	if err := os.WriteFile(secret, []byte("gatehouse-web-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const lifetime = 6 * time.Second
	ports := []int{freePort(t), freePort(t), freePort(t), freePort(t)}
	signInPort := freePort(t)
	g := startGatehouse(t, cat, fmt.Sprintf(`issuers:
  - name: keycloak
    issuer_url: %s
    audiences: [gatehouse]
    algorithms: [RS256]
    sign_in:
      client_id: gatehouse-web
      client_secret_file: %s
signin:
  listen: 127.0.0.1:%d
  issuer: keycloak
  generate_key: true
  key_file: %s
  public_port: %d
  session_lifetime: %s
  renew_grace: 1m
`, kc.issuer, secret, signInPort, filepath.Join(dir, "session.key"), ports[2], lifetime), ports...)
	e := startEnvoy(t, g, "edge-renewal", false)
	base := fmt.Sprintf("http://127.0.0.1:%d", e.edgePort)
	protected := base + "/orders/1"
	eventually(t, 10*time.Second, "the edge answers the protected page", func() error {
		if r := httpGet(t, protected, "application/json"); r != 401 {
			return fmt.Errorf("status %d", r)
		}
		return nil
	})

	ctx, cancel := chromium(t)
	defer cancel()
	nav := listenNavigations(t, ctx)
	location := func() string {
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		return loc
	}
	session := func() string {
		t.Helper()
		res, err := chromedp.Run(ctx, func(ctx context.Context, tg *chromedp.Target) (network.GetCookiesResult, error) {
			return cdp.Call(ctx, tg, network.GetCookies, network.GetCookiesParams{URLs: []string{base}})
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range res.Cookies {
			if c.Name == "gatehouse-session" {
				return c.Value
			}
		}
		return ""
	}
	keycloakPages := func(docs []string) []string {
		var out []string
		for _, d := range docs {
			if strings.HasPrefix(d, kc.issuer) {
				out = append(out, d)
			}
		}
		return out
	}
	silentTries := func(reqs []string) int {
		n := 0
		for _, r := range reqs {
			if strings.HasPrefix(r, kc.issuer+"/protocol/openid-connect/auth?") && strings.Contains(r, "prompt=none") {
				n++
			}
		}
		return n
	}

	// Sign in once with the form.
	start := time.Now()
	if err := chromedp.Do(ctx, chromedp.Navigate(protected), chromedp.WaitVisible(chromedp.CSS("#username"))); err != nil {
		t.Fatalf("Keycloak's login form: %v (at %s)", err, location())
	}
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#username"), "alice"),
		chromedp.SendKeys(chromedp.CSS("#password"), "alice-password"),
		chromedp.Click(chromedp.CSS("#kc-login")),
		chromedp.WaitVisible(chromedp.CSS("#user")),
	); err != nil {
		t.Fatalf("after the login form: %v (at %s)", err, location())
	}
	signedIn := time.Now()
	t.Logf("sign-in with Keycloak's form: %s from the first navigation (typing included)", signedIn.Sub(start).Round(time.Millisecond))
	first := session()
	if first == "" {
		t.Fatal("no session cookie after sign-in")
	}

	fetch := func() (int, string) {
		t.Helper()
		type answer struct {
			Status int    `json:"status"`
			Reload string `json:"reload"`
		}
		js := `fetch("/orders/2", {headers: {Accept: "application/json"}, redirect: "manual"}).then(r => ({status: r.status, reload: r.headers.get("x-gatehouse-sign-in") || ""}))`
		res, err := chromedp.Run(ctx, chromedp.Evaluate[answer](js, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("fetch: %v", err)
		}
		return res.Status, res.Reload
	}

	t.Run("while the session lives, fetch() is served", func(t *testing.T) {
		if s, _ := fetch(); s != 200 {
			t.Fatalf("fetch with a live session: %d", s)
		}
	})

	// renewsSilently navigates to the page and expects it back without a
	// page of Keycloak, through one prompt=none request, with a new
	// session cookie.
	renewsSilently := func(t *testing.T, before string) {
		t.Helper()
		nav.reset()
		start := time.Now()
		if err := chromedp.Do(ctx, chromedp.Navigate(protected), chromedp.WaitVisible(chromedp.CSS("#user"))); err != nil {
			t.Fatalf("renewal: %v (at %s)", err, location())
		}
		took := time.Since(start)
		reqs, docs := nav.reset()
		if u := location(); u != protected {
			t.Fatalf("after renewal at %s, want %s", u, protected)
		}
		if kp := keycloakPages(docs); len(kp) > 0 {
			t.Fatalf("Keycloak showed a page during the renewal: %v", kp)
		}
		if silentTries(reqs) != 1 {
			t.Fatalf("want one prompt=none authorization request, the browser sent: %v", reqs)
		}
		if now := session(); now == "" || now == before {
			t.Fatal("the session cookie was not renewed")
		}
		t.Logf("silent renewal through Keycloak: %s, %d requests", took.Round(time.Millisecond), len(reqs))
	}

	// The last quarter of the session (4.5-6 s; the cookie's times are
	// whole seconds, so 4.4 s after the page came back is inside it).
	time.Sleep(time.Until(signedIn.Add(lifetime*3/4 - 100*time.Millisecond)))
	t.Run("in the session's last quarter, a navigation is renewed without Keycloak's form", func(t *testing.T) {
		renewsSilently(t, first)
	})
	second := session()
	renewedEarly := time.Now()

	time.Sleep(time.Until(renewedEarly.Add(lifetime + 1500*time.Millisecond)))

	t.Run("after the end, fetch() gets 401 and the reload header, never a redirect", func(t *testing.T) {
		if s, reload := fetch(); s != 401 || reload != "reload" {
			t.Fatalf("fetch after the session's end: %d, x-gatehouse-sign-in %q; want 401 and reload", s, reload)
		}
	})

	t.Run("after the end, a navigation is renewed without Keycloak's form", func(t *testing.T) {
		renewsSilently(t, second)
	})
	renewed := time.Now()

	t.Run("Keycloak's session logged out: the next end leads to the form", func(t *testing.T) {
		// Keycloak's own logout, not gatehouse's: gatehouse's cookie stays.
		if err := chromedp.Do(ctx, chromedp.Navigate(kc.issuer+"/protocol/openid-connect/logout"), chromedp.WaitVisible(chromedp.CSS("#kc-logout")),
			chromedp.Click(chromedp.CSS("#kc-logout"))); err != nil {
			t.Fatalf("Keycloak's logout: %v (at %s)", err, location())
		}
		waitFor(t, func() bool {
			body, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
			return strings.Contains(strings.ToLower(body), "logged out") || strings.Contains(strings.ToLower(body), "signed out")
		}, "Keycloak's logged-out page", location)
		if session() == "" {
			t.Fatal("gatehouse's session cookie went with Keycloak's logout")
		}
		time.Sleep(time.Until(renewed.Add(lifetime + 1500*time.Millisecond)))
		nav.reset()
		if err := chromedp.Do(ctx, chromedp.Navigate(protected), chromedp.WaitVisible(chromedp.CSS("#username"))); err != nil {
			t.Fatalf("after Keycloak's logout and the session's end, want Keycloak's login form: %v (at %s)", err, location())
		}
		reqs, _ := nav.reset()
		if silentTries(reqs) != 1 {
			t.Fatalf("want one prompt=none try first (then the form), the browser sent: %v", reqs)
		}
	})
}

// httpGet is a GET without redirects; its status.
func httpGet(t *testing.T, url, accept string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Accept", accept)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: 5 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

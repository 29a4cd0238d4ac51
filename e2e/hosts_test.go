package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserSignInAcrossHosts: several hosts under one edge share one
// sign-in with signin.cookie_domain. A real headless Chromium signs in on
// a.gh.localhost (Chromium resolves *.localhost to loopback) at the
// development issuer's picker, then opens b.gh.localhost on the same
// Envoy edge and is there at once, without the picker; return URLs name
// configured hosts only.
func TestBrowserSignInAcrossHosts(t *testing.T) {
	pageURL := startPageUpstream(t)
	dir := t.TempDir()
	cat := filepath.Join(dir, "catalog.yaml")
	if err := os.WriteFile(cat, []byte(signInCatalog(t, "[payments]", pageURL)), 0o644); err != nil {
		t.Fatal(err)
	}
	ports := []int{freePort(t), freePort(t), freePort(t), freePort(t)}
	g := startGatehouseFlags(t, cat, fmt.Sprintf(`signin:
  listen: 127.0.0.1:%d
  issuer: dev
  generate_key: true
  key_file: %s
  public_port: %d
  cookie_domain: gh.localhost
  return_hosts: [b.gh.localhost]
`, freePort(t), filepath.Join(dir, "session.key"), ports[2]), nil, []string{"--dev"}, ports...)
	e := startEnvoy(t, g, "edge-hosts", false)
	hostURL := func(host, path string) string { return fmt.Sprintf("http://%s:%d%s", host, e.edgePort, path) }
	a, b := hostURL("a.gh.localhost", "/orders/1"), hostURL("b.gh.localhost", "/orders/1")

	// From Go, with Host headers on 127.0.0.1: the return URL rules.
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: 5 * time.Second}
	signInFrom := func(host, rd string) int {
		t.Helper()
		req, _ := http.NewRequest("GET", fmt.Sprintf("http://127.0.0.1:%d/.gatehouse/signin?rd=%s", e.edgePort, url.QueryEscape(rd)), nil)
		req.Host = host
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	eventually(t, 10*time.Second, "the edge routes sign-in", func() error {
		if s := signInFrom("a.gh.localhost", "/orders/1"); s != 302 {
			return fmt.Errorf("status %d", s)
		}
		return nil
	})
	for _, tc := range []struct {
		host, rd string
		want     int
	}{
		{"a.gh.localhost", "/orders/1", 302},
		{"a.gh.localhost", b, 302},                                      // a configured host
		{"a.gh.localhost", hostURL("c.gh.localhost", "/orders/1"), 400}, // under the cookie domain, not configured
		{"a.gh.localhost", "http://evil.example.com/", 400},
		{"a.gh.localhost", "//b.gh.localhost/orders/1", 400},
		{"other.example.com", "/orders/1", 400}, // a host outside the cookie domain could not keep the cookie
	} {
		if got := signInFrom(tc.host, tc.rd); got != tc.want {
			t.Errorf("sign-in on %s with rd=%s: %d, want %d", tc.host, tc.rd, got, tc.want)
		}
	}

	ctx, cancel := chromium(t)
	defer cancel()
	nav := listenNavigations(t, ctx)
	location := func() string {
		u, _ := chromedp.Run(ctx, chromedp.Location())
		return u
	}
	text := func(sel string) string {
		s, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		return s
	}
	alice := chromedp.CSS(`button[value="user:default/alice"]`)
	if err := chromedp.Do(ctx, chromedp.Navigate(a), chromedp.WaitVisible(alice)); err != nil {
		t.Fatalf("the picker from a.gh.localhost: %v (at %s)", err, location())
	}
	if err := chromedp.Do(ctx, chromedp.Click(alice), chromedp.WaitVisible(chromedp.CSS("#user"))); err != nil {
		t.Fatalf("after picking alice: %v (at %s)", err, location())
	}
	if u, who := location(), text("#user"); u != a || who != "user:default/alice" {
		t.Fatalf("after sign-in on a: at %s as %q", u, who)
	}
	nav.reset()
	start := time.Now()
	step, cancelStep := context.WithTimeout(ctx, 15*time.Second)
	defer cancelStep()
	if err := chromedp.Do(step, chromedp.Navigate(b), chromedp.WaitVisible(chromedp.CSS("#user"))); err != nil {
		t.Fatalf("b.gh.localhost with a's session: %v (at %s)", err, location())
	}
	_, docs := nav.reset()
	if u, who := location(), text("#user"); u != b || who != "user:default/alice" {
		t.Fatalf("on b: at %s as %q", u, who)
	}
	for _, d := range docs {
		if !strings.HasPrefix(d, hostURL("b.gh.localhost", "")) {
			t.Fatalf("opening b showed %s: want the page at once, the session shared by the cookie domain", d)
		}
	}
	if c := text("#cookie"); strings.Contains(c, "gatehouse-session") {
		t.Fatalf("the session cookie reached b's upstream: %q", c)
	}
	t.Logf("b.gh.localhost served with a's session in %s", time.Since(start).Round(time.Millisecond))
}

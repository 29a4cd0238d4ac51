package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestDemoBrowserSignIn is README's browser step of `make demo`, on free
// ports: a real headless Chromium opens http://localhost:<edge>/orders/1,
// is sent to the development issuer's user picker, picks alice and is back
// on the page, which the FastAPI orders service answers for the user it
// verified from gatehouse's assertion; bob gets the 403 page.
func TestDemoBrowserSignIn(t *testing.T) {
	dir := copyRepo(t)
	ports := newDemoPorts(t)
	d := startDemo(t, dir, ports)
	if !strings.Contains(d.banner.String(), "/orders/1, pick alice") {
		t.Errorf("the banner does not say how to sign in with a browser:\n%s", d.banner.String())
	}
	ctx, cancel := chromium(t)
	defer cancel()
	location := func() string {
		u, _ := chromedp.Run(ctx, chromedp.Location())
		return u
	}
	body := func() string {
		s, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
		return s
	}
	page := fmt.Sprintf("http://localhost:%d/orders/1", ports.edge)
	picker := fmt.Sprintf("http://127.0.0.1:%d/dev/oidc/authorize?", ports.admin)
	signIn := func(user string) (toPicker, toPage time.Duration) {
		t.Helper()
		start := time.Now()
		if err := chromedp.Do(ctx, chromedp.Navigate(page), chromedp.WaitVisible(chromedp.CSS(`button[value="user:default/`+user+`"]`))); err != nil {
			t.Fatalf("the user picker: %v (at %s: %q)", err, location(), body())
		}
		toPicker = time.Since(start)
		if u := location(); !strings.HasPrefix(u, picker) || !strings.Contains(u, "code_challenge_method=S256") {
			t.Fatalf("the picker is at %s, want the development issuer's authorization endpoint with PKCE", u)
		}
		if b := body(); !strings.Contains(b, "DEVELOPMENT SIGN-IN") || !strings.Contains(b, "never use it in production") {
			t.Fatalf("the picker is not labelled as development only: %q", b)
		}
		start = time.Now()
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`button[value="user:default/`+user+`"]`))); err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool { return location() == page && body() != "" }, "back on "+page, location)
		toPage = time.Since(start)
		return
	}

	toPicker, toPage := signIn("alice")
	if b := body(); !strings.Contains(b, `"order":"1"`) || !strings.Contains(b, "user:default/alice") {
		t.Fatalf("after picking alice the page shows %q, want order 1 for user:default/alice", b)
	}
	t.Logf("dev picker sign-in: protected page -> picker %s, pick -> page %s", toPicker.Round(time.Millisecond), toPage.Round(time.Millisecond))

	// Reload: the session holds, no picker.
	if err := chromedp.Do(ctx, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	if u, b := location(), body(); u != page || !strings.Contains(b, "user:default/alice") {
		t.Fatalf("after reload at %s: %q", u, b)
	}

	// Sign out, pick bob: his team does not own orders.
	if err := chromedp.Do(ctx, chromedp.Navigate(fmt.Sprintf("http://localhost:%d/.gatehouse/logout", ports.edge))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return strings.Contains(location(), "/.gatehouse/signed-out") }, "the signed-out page", location)
	toPicker, toPage = signIn("bob")
	t.Logf("dev picker sign-in, browser warm: protected page -> picker %s, pick -> page %s", toPicker.Round(time.Millisecond), toPage.Round(time.Millisecond))
	if b := body(); !strings.Contains(strings.ToLower(b), "forbidden") {
		t.Fatalf("bob sees %q, want the 403 page", b)
	}
	d.interrupt(t, ports)
}

package harness

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Poll calls f every interval until it returns nil, p (when not nil)
// exits, or timeout passes; the error names what was awaited and ends with
// the tail of p's log.
func Poll(p *Proc, timeout, interval time.Duration, what string, f func() error) error {
	start := time.Now()
	var err error
	for time.Since(start) < timeout {
		if p != nil && p.Exited() {
			return fmt.Errorf("%s exited (%v) before %s:\n%s", p.name, p.Err(), what, p.Tail(30))
		}
		if err = f(); err == nil {
			return nil
		}
		time.Sleep(interval)
	}
	if p != nil {
		return fmt.Errorf("%s: not within %s: %v\n%s", what, timeout, err, p.Tail(30))
	}
	return fmt.Errorf("%s: not within %s: %v", what, timeout, err)
}

// WaitHTTP waits until url answers 200, p (when not nil) exits, or timeout
// passes.
func WaitHTTP(p *Proc, url string, timeout time.Duration) error {
	return Poll(p, timeout, 25*time.Millisecond, "GET "+url, func() error { return HTTPOK(url) })
}

var client = &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// HTTPOK is nil when a GET of url answers 200.
func HTTPOK(url string) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s: %d %s", url, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return nil
}

// WaitReadyLine reads a runner script's stdout until its "READY <url>" line
// (examples/idp/run.sh, examples/backstage/run.sh) and returns the URL. It
// keeps reading (and dropping) the rest of out so the script never blocks.
func WaitReadyLine(out io.Reader, timeout time.Duration) (string, error) {
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		found := false
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); !found && len(f) == 2 && f[0] == "READY" {
				ready <- f[1]
				found = true
			}
		}
		_, _ = io.Copy(io.Discard, out)
		close(ready)
	}()
	select {
	case u, ok := <-ready:
		if !ok {
			return "", fmt.Errorf("exited before it was ready")
		}
		return u, nil
	case <-time.After(timeout):
		return "", fmt.Errorf("not ready within %s", timeout)
	}
}

// StartReady starts a runner script that prints "READY <url>" on stdout
// when it serves, and waits for that line, timeout or ctx; its standard
// error is the log. Unless Start failed (nil Proc), the process is left
// running for the caller to Stop (and show the log of), ready or not.
func StartReady(ctx context.Context, s Spec, timeout time.Duration) (*Proc, string, error) {
	pr, pw := io.Pipe()
	s.Stdout = pw
	p, err := Start(s)
	if err != nil {
		return nil, "", err
	}
	go func() { <-p.Done(); pw.Close() }()
	type ready struct {
		url string
		err error
	}
	c := make(chan ready, 1)
	go func() {
		u, err := WaitReadyLine(pr, timeout)
		c <- ready{u, err}
	}()
	select {
	case r := <-c:
		return p, r.url, r.err
	case <-ctx.Done():
		return p, "", ctx.Err()
	}
}

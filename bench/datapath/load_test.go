package main

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestReadResponse(t *testing.T) {
	for _, c := range []struct {
		name, in string
		status   int
		body     string
		closing  bool
	}{
		{"length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX: y\r\n\r\nhello", 200, "hello", false},
		{"lower-case headers (Envoy)", "HTTP/1.1 403 Forbidden\r\ncontent-length: 19\r\n\r\nRBAC: access denied", 403, "RBAC: access denied", false},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=1\r\nde\r\n0\r\nTrailer: t\r\n\r\n", 200, "abcde", false},
		{"no body", "HTTP/1.1 204 No Content\r\n\r\n", 204, "", false},
		{"close", "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", 401, "", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			br := bufio.NewReader(strings.NewReader(c.in + "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
			st, body, err := readResponse(br)
			if c.closing != (err == errClosing) || (err != nil && err != errClosing) {
				t.Fatalf("err %v, closing %v", err, c.closing)
			}
			if st != c.status || string(body) != c.body {
				t.Fatalf("got %d %q, want %d %q", st, body, c.status, c.body)
			}
			// The next response on the connection is read from the right place.
			if st, _, err := readResponse(br); err != nil || st != 200 {
				t.Fatalf("next response: %d %v", st, err)
			}
		})
	}
	for _, bad := range []string{"", "SSH-2.0\r\n", "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", "HTTP/1.1 200 OK\r\n\r\n"} {
		if _, _, err := readResponse(bufio.NewReader(strings.NewReader(bad))); err == nil || err == errClosing {
			t.Errorf("%q: no error", bad)
		}
	}
}

// Both loops count every request and flag every wrong status.
func TestLoops(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/deny" {
			w.WriteHeader(403)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	ok := target{addr: addr, req: request("GET", "/", "x", "Authorization", "Bearer t"), want: 200}
	deny := target{addr: addr, req: request("GET", "/deny", "x"), want: 200}
	if r := closedLoop(ok, 2, 100*time.Millisecond); r.requests == 0 || r.bad != 0 {
		t.Fatalf("closed loop: %d requests, %d bad (%s)", r.requests, r.bad, r.firstBad)
	}
	if r := closedLoop(deny, 2, 50*time.Millisecond); r.bad == 0 || !strings.Contains(r.firstBad, "status 403") {
		t.Fatalf("closed loop on 403s: %d bad (%s)", r.bad, r.firstBad)
	}
	r := openLoop(ok, 2, 200, 200*time.Millisecond)
	if r.requests == 0 || r.bad != 0 || len(r.lat) != r.requests {
		t.Fatalf("open loop: %d requests, %d bad, %d latencies", r.requests, r.bad, len(r.lat))
	}
	if r := openLoop(deny, 2, 200, 50*time.Millisecond); r.bad == 0 {
		t.Fatal("open loop on 403s: no failure")
	}
}

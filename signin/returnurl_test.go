package signin

import (
	"net/url"
	"strings"
	"testing"
)

func TestReturnURL(t *testing.T) {
	hosts := []string{"docs.example.com", "app.example.com:8443"}
	for _, tc := range []struct {
		rd, want string // want "" = refused
	}{
		{"", "/"},
		{"/", "/"},
		{"/orders/1", "/orders/1"},
		{"/orders/1?x=y&z=%2F", "/orders/1?x=y&z=%2F"},
		{"/orders/a%20b", "/orders/a%20b"},
		{"https://shop.example.com/orders/1", "https://shop.example.com/orders/1"},
		{"http://SHOP.example.com/x", "http://SHOP.example.com/x"},
		{"https://docs.example.com/a", "https://docs.example.com/a"},
		{"https://docs.example.com:9999/a", "https://docs.example.com:9999/a"},
		{"https://app.example.com:8443/", "https://app.example.com:8443/"},
		{"https://shop.example.com", "https://shop.example.com"},
		// Refused.
		{"//evil.com", ""},
		{"//evil.com/orders", ""},
		{"///evil.com", ""},
		{"/\\evil.com", ""},
		{"\\\\evil.com", ""},
		{"/%2F/evil.com", ""},
		{"/%2f%2fevil.com", ""},
		{"%2F%2Fevil.com", ""},
		{"/%5Cevil.com", ""},
		{"/%5cevil.com", ""},
		{"/%09/evil.com", ""},
		{"/\t/evil.com", ""},
		{" /orders", ""},
		{"/orders ", ""},
		{"/\r\nLocation: x", ""},
		{"/%0d%0aSet-Cookie:x", ""},
		{"/\x00", ""},
		{"/é", ""},
		{"https://evil.com/", ""},
		{"https://shop.example.com.evil.com/", ""},
		{"https://evil.com/shop.example.com", ""},
		{"https://shop.example.com@evil.com/", ""},
		{"https://user:pw@shop.example.com/", ""},
		{"https:evil.com", ""},
		{"https:/evil.com", ""},
		{"https:///evil.com", ""},
		{"https://shop.example.com//evil.com", ""},
		{"javascript:alert(1)", ""},
		{"JavaScript:alert(1)", ""},
		{"data:text/html,x", ""},
		{"ftp://shop.example.com/", ""},
		{"evil.com", ""},
		{"orders/1", ""},
		{"https://app.example.com/", ""},      // configured with a port: that port only
		{"https://app.example.com:8444/", ""}, // another port
		{"http://[::1]/", ""},
		{"/" + string(make([]byte, 3000)), ""},
	} {
		got, err := ReturnURL(tc.rd, "shop.example.com:10000", hosts)
		if tc.want == "" {
			if err == nil {
				t.Errorf("ReturnURL(%q) = %q, want refused", tc.rd, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ReturnURL(%q) = %q, %v; want %q", tc.rd, got, err, tc.want)
		}
	}
}

// FuzzReturnURL: whatever ReturnURL accepts, a browser following it as a
// Location stays on the host (a path without a second leading slash or
// backslash, or an http(s) URL of that very host).
func FuzzReturnURL(f *testing.F) {
	for _, s := range []string{"/a", "//evil", "/\\evil", "https://shop.example.com/", "/%2F%2Fevil", "javascript:x", "https://shop.example.com@evil/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rd string) {
		got, err := ReturnURL(rd, "shop.example.com", nil)
		if err != nil {
			return
		}
		if strings.HasPrefix(got, "/") {
			if len(got) > 1 && (got[1] == '/' || got[1] == '\\') {
				t.Fatalf("%q -> %q leaves the host", rd, got)
			}
			return
		}
		u, err := url.Parse(got)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil || strings.ToLower(u.Hostname()) != "shop.example.com" {
			t.Fatalf("%q -> %q leaves the host", rd, got)
		}
	})
}

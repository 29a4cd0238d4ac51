package clip

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestString(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"", 3, ""},
		{"abc", 3, "abc"},
		{"abcd", 3, "abc…"},
		{"héllo", 2, "h…"}, // é is two bytes: never half of it
		{"héllo", 3, "hé…"},
		{"日本語", 4, "日…"},
		{"abc", 0, "…"},
		{"abc", -1, "…"},
	} {
		if got := String(tc.in, tc.n); got != tc.want {
			t.Errorf("String(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

func FuzzString(f *testing.F) {
	f.Add("héllo wörld", 4)
	f.Add(strings.Repeat("\xff", 10), 3)
	f.Fuzz(func(t *testing.T, s string, n int) {
		if n > 1<<20 {
			return
		}
		got := String(s, n)
		if len(s) <= n && got != s {
			t.Fatalf("short string changed: %q -> %q", s, got)
		}
		if len(s) > n {
			body, ok := strings.CutSuffix(got, "…")
			if !ok || len(body) > max(n, 0) || !strings.HasPrefix(s, body) {
				t.Fatalf("String(%q, %d) = %q", s, n, got)
			}
			if utf8.ValidString(s) && !utf8.ValidString(got) {
				t.Fatalf("String(%q, %d) = %q is not valid UTF-8", s, n, got)
			}
		}
	})
}

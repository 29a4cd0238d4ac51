package pathglob

import "testing"

func TestMatch(t *testing.T) {
	cases := []struct {
		pattern, path string
		want          bool
	}{
		{"/", "/", true},
		{"/", "/a", false},
		{"/health", "/health", true},
		{"/health", "/health/", true},
		{"/health", "/healthz", false},
		{"/health", "/health/x", false},
		{"/orders/*", "/orders/7", true},
		{"/orders/*", "/orders", false},
		{"/orders/*", "/orders/7/items", false},
		{"/orders/*/items", "/orders/7/items", true},
		{"/orders/*/items", "/orders//items", false},
		{"/orders/**", "/orders", true},
		{"/orders/**", "/orders/", true},
		{"/orders/**", "/orders/7/items/9", true},
		{"/orders/**", "/ordersx", false},
		{"/orders/**", "/other", false},
		{"/**", "/anything/at/all", true},
		{"/**", "/", true},
		{"/a/b", "a/b", false},
	}
	for _, c := range cases {
		if got := MustCompile(c.pattern).Match(c.path); got != c.want {
			t.Errorf("%q.Match(%q) = %v, want %v", c.pattern, c.path, got, c.want)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	for _, p := range []string{"orders", "/a/**/b", "/a/b*", "/a//b", "/a/../b", "/a?x=1"} {
		if _, err := Compile(p); err == nil {
			t.Errorf("Compile(%q) accepted an invalid pattern", p)
		}
	}
}

func TestPrefix(t *testing.T) {
	if p, ok := MustCompile("/docs/**").Prefix(); !ok || p != "/docs" {
		t.Errorf("Prefix of /docs/** = %q %v", p, ok)
	}
	if _, ok := MustCompile("/docs/*/x/**").Prefix(); ok {
		t.Error("a pattern with * has no literal prefix")
	}
	if !MustCompile("/health").Exact() || MustCompile("/a/*").Exact() {
		t.Error("Exact")
	}
}

func FuzzMatch(f *testing.F) {
	f.Add("/orders/**", "/orders/1")
	f.Add("/a/*/b", "/a/x/b")
	f.Fuzz(func(t *testing.T, pattern, path string) {
		p, err := Compile(pattern)
		if err != nil {
			return
		}
		got := p.Match(path)
		// A pattern without wildcards matches exactly itself (modulo one trailing slash).
		if p.Exact() && got {
			clean := path
			if len(clean) > 1 && clean[len(clean)-1] == '/' {
				clean = clean[:len(clean)-1]
			}
			want := pattern
			if len(want) > 1 && want[len(want)-1] == '/' {
				want = want[:len(want)-1]
			}
			if clean != want {
				t.Fatalf("exact pattern %q matched %q", pattern, path)
			}
		}
	})
}

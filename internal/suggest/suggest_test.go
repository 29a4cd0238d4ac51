package suggest

import "testing"

func TestClosest(t *testing.T) {
	known := []string{"gatehouse.dev/upstream", "gatehouse.dev/timeout", "gatehouse.dev/public-paths", "gatehouse.dev/path-prefix"}
	cases := map[string]string{
		"gatehouse.dev/upstrem":     "gatehouse.dev/upstream",
		"gatehouse.dev/timout":      "gatehouse.dev/timeout",
		"gatehouse.dev/public-path": "gatehouse.dev/public-paths",
		"gatehouse.dev/Path-Prefix": "gatehouse.dev/path-prefix", // case only
		"gatehouse.dev/owner":       "",                          // nothing close
		"":                          "",
	}
	for in, want := range cases {
		if got := Closest(in, known); got != want {
			t.Errorf("Closest(%q) = %q, want %q", in, got, want)
		}
	}
	if got := Closest("GATEHOUSE_ADMN_LISTEN", []string{"GATEHOUSE_ADMIN_LISTEN", "GATEHOUSE_AUTHZ_LISTEN"}); got != "GATEHOUSE_ADMIN_LISTEN" {
		t.Errorf("env var: got %q", got)
	}
}

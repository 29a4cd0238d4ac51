// Package clip shortens strings that come from outside (tokens, paths,
// IdP answers) before they go into logs, audit records and explanations.
package clip

import "unicode/utf8"

// String is s cut to at most n bytes, at a character boundary so the
// result stays valid UTF-8, with "…" after it when something was cut.
func String(s string, n int) string {
	if len(s) <= n {
		return s
	}
	if n < 0 {
		n = 0
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

package extauthz

import (
	"strconv"
	"strings"
)

// prefersHTML reports whether an Accept header asks for a page first: it
// names text/html (or application/xhtml+xml) with a weight above 0 and at
// least that of every other type it names. Browsers navigating send such a
// header; fetch() and XHR send */* or a JSON type unless told otherwise,
// and gRPC clients send no Accept: those keep the 401.
func prefersHTML(accept string) bool {
	if accept == "" || len(accept) > 2048 {
		return false
	}
	html, other := -1.0, 0.0
	for _, part := range strings.Split(accept, ",") {
		typ, params, _ := strings.Cut(part, ";")
		typ = strings.ToLower(strings.TrimSpace(typ))
		q := 1.0
		for _, p := range strings.Split(params, ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
			if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
				f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				if err != nil || f < 0 || f > 1 {
					f = 0
				}
				q = f
			}
		}
		switch typ {
		case "text/html", "application/xhtml+xml":
			html = max(html, q)
		default:
			other = max(other, q)
		}
	}
	return html > 0 && html >= other
}

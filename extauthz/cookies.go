package extauthz

import "strings"

// bearerToken reads "Authorization: Bearer <token>", or the session cookie.
func bearerToken(h map[string]string, cookie string) string {
	if a := h["authorization"]; a != "" {
		if len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
			return strings.TrimSpace(a[7:])
		}
		return ""
	}
	return cookieValue(h["cookie"], cookie)
}

// cookieValue is the value of the first cookie named name in a Cookie
// header ("" when there is none). One pass, no allocation: it runs on
// every Check of a browser.
func cookieValue(header, name string) string {
	if name == "" || header == "" {
		return ""
	}
	for rest := header; rest != ""; {
		var part string
		part, rest = nextCookie(rest)
		k, v, ok := strings.Cut(part, "=")
		if ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// nextCookie splits the first name=value pair (untrimmed) off a Cookie
// header, at a semicolon or a comma: Envoy joins repeated Cookie headers of
// HTTP/1.1 with one, and no cookie value may contain one (RFC 6265). Two vectorised
// byte searches: a sealed session is a few hundred bytes, and a byte loop
// over it was a sixth of a cached session Check.
func nextCookie(header string) (part, rest string) {
	i := strings.IndexByte(header, ';')
	if j := strings.IndexByte(header, ','); j >= 0 && (i < 0 || j < i) {
		i = j
	}
	if i < 0 {
		return header, ""
	}
	return header[:i], header[i+1:]
}

// withoutCookies is a Cookie header without the credential cookie (when
// named) and, with sessions, the session and sign-in binding cookies, and
// whether one was there; the rest keeps its order and values. One pass to
// look, and the header is rebuilt only when one of them is in it.
func withoutCookies(header, credential string, sessions bool) (string, bool) {
	drop := func(k string) bool {
		return (credential != "" && k == credential) ||
			(sessions && (k == SessionCookiePlain || k == SessionCookieTLS || k == SessionCookieDomain || k == BindingCookiePlain || k == BindingCookieTLS))
	}
	found := false
	for rest := header; rest != "" && !found; {
		var part string
		part, rest = nextCookie(rest)
		k, _, _ := strings.Cut(part, "=")
		found = drop(strings.TrimSpace(k))
	}
	if !found {
		return header, false
	}
	var b strings.Builder
	b.Grow(len(header))
	for rest := header; rest != ""; {
		var part string
		part, rest = nextCookie(rest)
		part = strings.TrimSpace(part)
		k, _, _ := strings.Cut(part, "=")
		if part == "" || drop(strings.TrimSpace(k)) {
			continue
		}
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		b.WriteString(part)
	}
	return b.String(), true
}

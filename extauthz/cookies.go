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
// header, at a semicolon or a comma (see cookieParts). Two vectorised
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

// cookieParts splits a Cookie header into its name=value pairs, trimmed.
// Commas separate too: Envoy joins repeated Cookie headers of HTTP/1.1
// with one, and no cookie value may contain one (RFC 6265).
func cookieParts(header string) []string {
	parts := strings.FieldsFunc(header, func(r rune) bool { return r == ';' || r == ',' })
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

// withoutCookie is a Cookie header without every cookie named name, and
// whether there was one. The rest keeps its order and values as sent.
func withoutCookie(header, name string) (string, bool) {
	var kept []string
	found := false
	for _, part := range cookieParts(header) {
		k, _, _ := strings.Cut(part, "=")
		if strings.TrimSpace(k) == name {
			found = true
			continue
		}
		if part != "" {
			kept = append(kept, part)
		}
	}
	return strings.Join(kept, "; "), found
}

// withoutCookies is withoutCookie for the credential cookie (when named)
// and, with sessions, both session cookies, in one pass: the header is
// rebuilt only when one of them is in it.
func withoutCookies(header, credential string, sessions bool) (string, bool) {
	drop := func(k string) bool {
		return (credential != "" && k == credential) || (sessions && (k == SessionCookiePlain || k == SessionCookieTLS))
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

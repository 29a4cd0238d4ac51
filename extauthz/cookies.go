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
	if cookie == "" || h["cookie"] == "" {
		return ""
	}
	for _, part := range cookieParts(h["cookie"]) {
		k, v, ok := strings.Cut(part, "=")
		if ok && strings.TrimSpace(k) == cookie {
			return strings.TrimSpace(v)
		}
	}
	return ""
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

package extauthz

import (
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"strings"
	"unsafe"
)

// cleanPath strips the query and decodes percent-escapes for matching. A
// path whose decoding yields dot segments, empty segments, a backslash or
// a NUL is refused: Envoy normalised the raw path already, so such a path
// means somebody is hiding a traversal from the matcher.
func cleanPath(raw string) (string, bool) {
	raw = pathOnly(raw)
	if raw == "" || raw[0] != '/' {
		return "", false
	}
	p := raw
	if strings.IndexByte(raw, '%') >= 0 {
		var err error
		if p, err = url.PathUnescape(raw); err != nil {
			return "", false
		}
	}
	if strings.ContainsAny(p, "\\\x00") {
		return "", false
	}
	for rest := p[1:]; ; {
		seg, tail, more := strings.Cut(rest, "/")
		if seg == "." || seg == ".." {
			return "", false
		}
		if !more {
			break
		}
		rest = tail
	}
	if strings.Contains(p, "//") {
		return "", false
	}
	return p, true
}

// pathOnly is a path without its query or fragment, as Envoy matches it.
func pathOnly(p string) string {
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		return p[:i]
	}
	return p
}

// credentialKey is the decision cache key of a credential of a kind: 0 a
// bearer token, 's' a session cookie, so that equal strings of two kinds
// never share a decision. One allocation.
func credentialKey(kind byte, cred, route, method, path string, pathMatters bool) string {
	var sum [sha256.Size]byte
	if kind == 0 {
		sum = sha256.Sum256(bytesOf(cred))
	} else {
		h := sha256.New()
		h.Write([]byte{kind, 0})
		h.Write(bytesOf(cred))
		h.Sum(sum[:0])
	}
	n := 32 + 1 + len(route) + 1 + len(method)
	if pathMatters {
		n += 1 + len(path)
	}
	k := make([]byte, 32, n)
	hex.Encode(k, sum[:16])
	k = append(append(append(append(k, 0), route...), 0), method...)
	if pathMatters {
		k = append(append(k, 0), path...)
	}
	return unsafe.String(unsafe.SliceData(k), len(k)) // k is not written again
}

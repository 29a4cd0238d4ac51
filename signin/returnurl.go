package signin

import (
	"errors"
	"net"
	"net/url"
	"slices"
	"strings"
)

// errReturnURL: the return URL is not one gatehouse sends a browser to.
var errReturnURL = errors.New("return URL refused: only a path on this host, or an http(s) URL of a configured host")

// ReturnURL checks where a browser may be sent after sign-in: a path on
// the host it signed in on ("/orders/1?x=y"), or an absolute http(s) URL of
// that host or one of hosts (signin.return_hosts). It returns what to put
// in Location. Refused, in the open-redirect classes seen in oauth2-proxy
// and Pomerium: protocol-relative "//evil" and "/\evil" (browsers read a
// backslash as a slash), other schemes (javascript:, data:), user info
// (https://host@evil), whitespace and control characters anywhere
// (browsers strip some of them: "/\t/evil"), and any of these hidden by
// percent-encoding ("/%2F%2Fevil", "/%5Cevil"). Hosts are matched exactly,
// never as a suffix or a pattern, and only the path is kept relative.
// Empty is "/".
func ReturnURL(rd, host string, hosts []string) (string, error) {
	if rd == "" {
		return "/", nil
	}
	if len(rd) > 2048 || unsafeChars(rd) {
		return "", errReturnURL
	}
	// Encoded tricks: what the URL decodes to must pass the same checks.
	dec, err := url.PathUnescape(rd)
	if err != nil || controlChars(dec) || strings.HasPrefix(dec, "//") {
		return "", errReturnURL
	}
	if strings.HasPrefix(rd, "/") {
		if strings.HasPrefix(rd, "//") {
			return "", errReturnURL
		}
		u, err := url.Parse(rd)
		if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
			return "", errReturnURL
		}
		return rd, nil
	}
	u, err := url.Parse(rd)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil || u.Opaque != "" || u.Host == "" {
		return "", errReturnURL
	}
	if u.Path != "" && !strings.HasPrefix(u.Path, "/") || strings.HasPrefix(u.Path, "//") {
		return "", errReturnURL
	}
	if !sameHost(u.Host, hostname(host)) && !slices.ContainsFunc(hosts, func(h string) bool { return sameHost(u.Host, h) }) {
		return "", errReturnURL
	}
	return u.String(), nil
}

// unsafeChars: a backslash, whitespace, a control character or anything
// outside printable ASCII.
func unsafeChars(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '\\' {
			return true
		}
	}
	return false
}

// controlChars: a backslash or a control character (what a decoded URL
// must not hold; a decoded space or letter is harmless).
func controlChars(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c == 0x7f || c == '\\' {
			return true
		}
	}
	return false
}

// hostname is host[:port] without the port.
func hostname(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	return host
}

// sameHost compares host[:port] values case-insensitively; a configured
// host without a port matches that host on any port.
func sameHost(got, want string) bool {
	got, want = strings.ToLower(got), strings.ToLower(want)
	if got == want {
		return true
	}
	if h, _, err := net.SplitHostPort(got); err == nil && !strings.Contains(want, ":") {
		return h == want
	}
	return false
}

// Package pathglob matches URL paths against the patterns of access rules:
// "/orders/*" (one segment), "/orders/**" (the prefix itself and anything
// below it), "/health" (exact). Patterns are compiled once; matching does not
// allocate.
package pathglob

import (
	"fmt"
	"strings"
)

// Pattern is a compiled path pattern.
type Pattern struct {
	raw  string
	segs []string // "*" one segment, "**" any number (only last), else literal
}

// Compile checks and compiles a pattern.
func Compile(p string) (Pattern, error) {
	if !strings.HasPrefix(p, "/") {
		return Pattern{}, fmt.Errorf("path pattern %q must start with /", p)
	}
	if strings.ContainsAny(p, "?#") {
		return Pattern{}, fmt.Errorf("path pattern %q must not contain a query or fragment", p)
	}
	if strings.Contains(p, "//") {
		return Pattern{}, fmt.Errorf("path pattern %q contains an empty segment (//)", p)
	}
	var segs []string
	if p != "/" {
		segs = strings.Split(strings.TrimSuffix(p[1:], "/"), "/")
	}
	for i, s := range segs {
		switch {
		case s == "**" && i != len(segs)-1:
			return Pattern{}, fmt.Errorf("path pattern %q: ** is only allowed as the last segment", p)
		case s == "." || s == "..":
			return Pattern{}, fmt.Errorf("path pattern %q contains a . or .. segment", p)
		case s != "*" && s != "**" && strings.Contains(s, "*"):
			return Pattern{}, fmt.Errorf("path pattern %q: * must be a whole segment (/a/*/b), not part of one", p)
		}
	}
	return Pattern{raw: p, segs: segs}, nil
}

// MustCompile compiles a pattern known to be valid.
func MustCompile(p string) Pattern {
	c, err := Compile(p)
	if err != nil {
		panic(err)
	}
	return c
}

func (p Pattern) String() string { return p.raw }

// Exact reports whether the pattern has no wildcard.
func (p Pattern) Exact() bool { return !strings.Contains(p.raw, "*") }

// Prefix returns the literal prefix of a "/a/b/**" pattern (without the
// trailing /**) and true; false for other patterns.
func (p Pattern) Prefix() (string, bool) {
	if len(p.segs) == 0 || p.segs[len(p.segs)-1] != "**" {
		return "", false
	}
	for _, s := range p.segs[:len(p.segs)-1] {
		if s == "*" {
			return "", false
		}
	}
	return "/" + strings.Join(p.segs[:len(p.segs)-1], "/"), true
}

// Match reports whether a clean path (no query, already normalised) matches.
// A trailing slash on the path is ignored.
func (p Pattern) Match(path string) bool {
	if path == "" || path[0] != '/' {
		return false
	}
	rest := path[1:]
	for _, s := range p.segs {
		if s == "**" {
			return true
		}
		if rest == "" {
			return false
		}
		var seg string
		if j := strings.IndexByte(rest, '/'); j >= 0 {
			seg, rest = rest[:j], rest[j+1:]
		} else {
			seg, rest = rest, ""
		}
		if seg == "" {
			return false
		}
		if s != "*" && s != seg {
			return false
		}
	}
	return rest == ""
}

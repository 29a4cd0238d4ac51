package catalogsync

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// DefaultNamespace is the namespace Backstage assumes when a ref or an entity
// does not name one.
const DefaultNamespace = "default"

// Ref identifies an entity as Backstage does: kind:namespace/name. The parts
// keep the case they were written with; Key() is the case-insensitive identity
// Backstage compares by.
type Ref struct {
	Kind      string `json:"kind" yaml:"kind"`
	Namespace string `json:"namespace" yaml:"namespace"`
	Name      string `json:"name" yaml:"name"`
}

// String renders the ref in Backstage's canonical form (kind lower-cased,
// namespace and name as written).
func (r Ref) String() string {
	return strings.ToLower(r.Kind) + ":" + r.Namespace + "/" + r.Name
}

// Key is the comparison key: the whole ref lower-cased, as Backstage compares
// refs (and as it writes relation targets).
func (r Ref) Key() string {
	b := make([]byte, 0, len(r.Kind)+len(r.Namespace)+len(r.Name)+2)
	b = appendLower(b, r.Kind)
	b = append(b, ':')
	b = appendLower(b, r.Namespace)
	b = append(b, '/')
	b = appendLower(b, r.Name)
	return unsafe.String(unsafe.SliceData(b), len(b)) // b is not written again
}

// appendLower appends s lower-cased as strings.ToLower would: ASCII by
// byte, anything else through strings.ToLower.
func appendLower(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			return append(b, strings.ToLower(s)...)
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return b
}

// IsZero reports whether r is the zero Ref.
func (r Ref) IsZero() bool { return r.Kind == "" && r.Name == "" }

// ParseRef parses "[kind:][namespace/]name". defaultKind is used when the ref
// has no kind (Backstage fills it from the field: spec.owner defaults to
// group, spec.providesApis to api, ...); an empty defaultKind makes the kind
// mandatory. The namespace defaults to the given one, or "default".
func ParseRef(s, defaultKind, defaultNamespace string) (Ref, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return Ref{}, fmt.Errorf("empty entity ref")
	}
	var r Ref
	rest := in
	if i := strings.IndexByte(rest, ':'); i >= 0 {
		r.Kind, rest = rest[:i], rest[i+1:]
		if r.Kind == "" {
			return Ref{}, fmt.Errorf("entity ref %q has an empty kind before ':'", s)
		}
	} else {
		if defaultKind == "" {
			return Ref{}, fmt.Errorf("entity ref %q has no kind; write it as kind:namespace/name", s)
		}
		r.Kind = defaultKind
	}
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		r.Namespace, r.Name = rest[:i], rest[i+1:]
		if r.Namespace == "" {
			return Ref{}, fmt.Errorf("entity ref %q has an empty namespace before '/'", s)
		}
	} else {
		r.Name = rest
		r.Namespace = defaultNamespace
		if r.Namespace == "" {
			r.Namespace = DefaultNamespace
		}
	}
	if r.Name == "" {
		return Ref{}, fmt.Errorf("entity ref %q has an empty name", s)
	}
	if strings.ContainsAny(r.Name, ":/") {
		return Ref{}, fmt.Errorf("entity ref %q has a malformed name %q", s, r.Name)
	}
	if _, ok := kindByLower[strings.ToLower(r.Kind)]; ok {
		r.Kind = kindByLower[strings.ToLower(r.Kind)]
	}
	return r, nil
}

// MustRef parses a ref that is known to be valid (tests, constants).
func MustRef(s string) Ref {
	r, err := ParseRef(s, "", "")
	if err != nil {
		panic(err)
	}
	return r
}

// Backstage's name rules: 1-63 chars of [a-zA-Z0-9] separated by single
// [-_.]; namespaces follow the same pattern.
var namePattern = regexp.MustCompile(`^[a-zA-Z0-9]+([-_.][a-zA-Z0-9]+)*$`)

func validName(s string) bool { return len(s) <= 63 && namePattern.MatchString(s) }

package extauthz

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// maxScopes bounds the scopes kept of one token (a token with more is
// malformed: scopes are a handful of names, and they are in every audit
// line and cache entry of the token).
const maxScopes = 64

// scopesClaim reads the OAuth scopes a token grants: `scope`, a
// space-separated string (RFC 8693 §4.2, RFC 9068), and `scp`, a string
// or an array of strings (Okta, Entra ID); both when both are present.
// The result is sorted and unique (Principal.Scopes is searched). A claim
// of another type makes the token malformed, as for groups: a scope is
// never guessed.
func scopesClaim(claims members) ([]string, error) {
	var out []string
	for _, name := range [...]string{"scope", "scp"} {
		r, ok := claims.get(name)
		if !ok || string(r) == "null" {
			continue
		}
		var list []string
		if s, ok := plainString(r); ok {
			list = strings.Split(s, " ")
		} else if s, ok := unmarshalString(r); ok {
			list = strings.Split(s, " ")
		} else if l, ok := plainStrings(r); ok {
			list = l
		} else if err := json.Unmarshal(r, &list); err != nil {
			return nil, fmt.Errorf("claim %q is neither a string nor an array of strings", name)
		}
		// Only a space separates scopes (RFC 6749 §3.3); anything else
		// stays part of a scope, which then names nothing a rule asks for.
		for _, sc := range list {
			if sc != "" {
				out = append(out, sc)
			}
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) > maxScopes {
		return nil, fmt.Errorf("the token grants %d scopes (at most %d)", len(out), maxScopes)
	}
	return out, nil
}

package extauthz

// knownPrincipal: a token that maps to no catalog User and is not a
// machine token is refused before anything else (403 unknown_principal):
// no rule, IdP group or ownership can reach it.
type knownPrincipal struct{}

func (knownPrincipal) decide(c evalCtx) verdict {
	if c.p.Kind != "unknown" {
		return verdict{}
	}
	if c.explain {
		c.step("principal", false, "the token maps to no catalog User and is not a machine token: "+c.p.Unmatched)
	}
	return verdict{outcome: denied, status: 403, reason: "unknown_principal"}
}

package extauthz

// owner: the entity's owner (a User, or a member of the owning Group or
// of one of its sub-groups) may call everything on it; on an API route,
// the API's owner as well.
type owner struct{}

func (owner) decide(c evalCtx) verdict {
	rp, p := c.rp, c.p
	for i, o := range rp.Owners {
		switch {
		case p.Ref == o:
			if c.explain {
				c.step("owner "+o, true, "the caller is the owner")
			}
			return allowBy("owner", rp.ownerRules[i])
		case contains(p.Groups, o):
			if c.explain {
				c.step("owner "+o, true, "the caller is a member of "+o)
			}
			return allowBy("owner", rp.ownerRules[i])
		case c.explain:
			c.step("owner "+o, false, "the caller is not a member of "+o)
		}
	}
	if len(rp.Owners) == 0 && c.explain {
		c.step("owner", false, "the entity has no owner")
	}
	return verdict{}
}

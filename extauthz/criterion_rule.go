package extauthz

// accessRule: the explicit rules of gatehouse.dev/access, in order; the
// first whose allow list names the principal (or one of its groups) and
// whose methods and paths match the operation allows.
type accessRule struct{}

func (accessRule) decide(c evalCtx) verdict {
	p, op := c.p, c.op
	for _, r := range c.rp.rules {
		who := r.allow[p.Ref]
		for _, g := range p.Groups {
			if who {
				break
			}
			who = r.allow[g]
		}
		switch {
		case !who:
			if c.explain {
				c.step(r.name, false, "the caller is not in allow")
			}
		case r.methods != nil && !r.methods[op.Method]:
			if c.explain {
				c.step(r.name, false, "method "+op.Method+" is not in methods")
			}
		case len(r.paths) > 0 && !matchAny(r.paths, op.Path):
			if c.explain {
				c.step(r.name, false, "path "+op.Path+" matches none of paths")
			}
		default:
			if c.explain {
				c.step(r.name, true, "allow, methods and paths match")
			}
			return allowBy("rule", r.name)
		}
	}
	return verdict{}
}

package extauthz

import "strings"

// consumer: a Component that declares an API served on this route
// (spec.consumesApis, or spec.dependsOn the provider) may call it. Only a
// component principal (a machine token or a verified mTLS peer) consumes.
type consumer struct{}

func (consumer) decide(c evalCtx) verdict {
	rp, p := c.rp, c.p
	if p.Kind != "component" {
		if len(rp.Consumers) > 0 && c.explain {
			c.step("consumers", false, "only the components "+strings.Join(rp.Consumers, ", ")+" consume this route's API; the caller is not a component")
		}
		return verdict{}
	}
	if !rp.consumers[p.Ref] {
		if c.explain {
			c.step("consumers", false, p.Ref+" does not consume an API served on this route")
		}
		return verdict{}
	}
	what := "an API served here"
	if rp.API != "" {
		what = rp.API
	}
	if c.explain {
		c.step("consumer "+p.Ref, true, p.Ref+" declares consumesApis "+what)
	}
	return allowBy("consumer", "consumer "+p.Ref+" of "+what)
}

package extauthz

import (
	"net"
	"net/url"
	"path"
	"slices"
	"strings"

	"github.com/gatehouse-dev/gatehouse/internal/clip"
	"github.com/gatehouse-dev/gatehouse/model"
)

// mcpTool: a tools/call of a tool that a gatehouse.dev/mcp-tools rule
// names (by name or pattern) needs every matching rule to hold for the
// principal (any name of its allow list); it then still needs the route
// (owner, consumer, rule), like a tool without rules. It runs before the
// route's criteria, so an owner of the route is refused a tool whose rule
// does not name owners. Other methods (initialize, ping, notifications,
// tools/list, resources/*, prompts/*) are the route's alone.
type mcpTool struct{}

func (mcpTool) decide(c evalCtx) verdict {
	if c.op.Kind != model.InspectorMCP || c.rp.MCP == nil || c.op.Method != "tools/call" {
		return verdict{}
	}
	r, ok := toolRuleFails(c.rp, c.p, c.op.Name)
	if ok {
		if c.explain {
			c.step("mcp tool "+c.op.Name, true, "no rule of "+c.rp.MCP.API+" refuses it")
		}
		return verdict{}
	}
	if c.explain {
		c.step("mcp tool "+c.op.Name, false, "gatehouse.dev/mcp-tools "+r.Pattern+" of "+c.rp.MCP.API+" does not allow "+c.p.Name())
	}
	return verdict{outcome: denied, status: 403, reason: "tool_forbidden", rule: "gatehouse.dev/mcp-tools " + r.Pattern + " of " + c.rp.MCP.API}
}

// toolRuleFails is the first rule matching tool that does not hold for p
// (ok when every matching rule holds, or none matches).
func toolRuleFails(rp *routePolicy, p *Principal, tool string) (model.MCPToolRule, bool) {
	for _, r := range rp.MCP.Tools {
		if m, err := path.Match(r.Pattern, tool); err != nil || !m {
			continue // patterns were validated in catalogsync
		}
		if !slices.ContainsFunc(r.Allow, func(name string) bool { return nameHolds(rp, p, name) }) {
			return r, false
		}
	}
	return model.MCPToolRule{}, true
}

// toolMatches: name matches one of patterns (path.Match).
func toolMatches(patterns []string, name string) bool {
	for _, p := range patterns {
		if m, err := path.Match(p, name); err == nil && m {
			return true
		}
	}
	return false
}

// ToolAllowed reports whether p may call tool on the route: its rules and
// the route's criteria (for filtering tools/list, explain).
func (e *Engine) ToolAllowed(routeID string, p *Principal, tool string) bool {
	rp := e.routes[routeID]
	if rp == nil || rp.MCP == nil {
		return false
	}
	ops := []Operation{{Kind: model.InspectorMCP, Method: "tools/call", Name: tool, HTTPMethod: "POST", Path: rp.MCP.Prefix, ReadOnly: toolMatches(rp.MCP.ReadOnly, tool)}}
	return mcpVerdict(rp, p, ops, false, nil).outcome == allowed
}

// mcpVerdict is principalVerdict for the messages of an MCP request: each
// message's tool rule, then the route's criteria once (they see the same
// method and path for every message).
func mcpVerdict(rp *routePolicy, p *Principal, ops []Operation, explain bool, steps *[]Step) verdict {
	for _, op := range ops {
		c := evalCtx{rp: rp, p: p, op: op, explain: explain, steps: steps}
		if explain && op.Method != "" {
			c.step("mcp "+op.Method, true, mcpOpText(op)+", for "+p.Name())
		}
		for _, cr := range criteria {
			if _, route := cr.(routeCriterion); route {
				continue
			}
			if v := cr.decide(c); v.outcome == denied {
				return v
			}
		}
	}
	return routeVerdict(rp, p, ops[:1], routeCriteria, explain, steps)
}

func mcpOpText(op Operation) string {
	if op.Name != "" {
		return op.Method + " of tool " + op.Name
	}
	return op.Method
}

// mcpAudience: on an MCP route a token must be meant for this resource
// (the MCP specification's audience binding, RFC 8707): its `aud` names
// the MCP API's entity ref, its provider's, or the route's URL. A token
// gatehouse's exchange issued is bound to one entity already (Evaluate
// checked Subject.Audience); an actor rides on the user's token. A
// session cookie is not a credential for MCP. The mTLS peer of a sidecar
// route needs neither.
func mcpAudience(rp *routePolicy, sub *Subject, host string) *Result {
	u := sub.User
	if u == nil || sub.Auth == AuthCatalogRef || sub.Audience != "" {
		return nil
	}
	if sub.Auth != AuthBearer {
		return &Result{Status: 401, Reason: "invalid_token:not_bearer", Steps: []Step{{Rule: "mcp audience", Why: "an MCP route takes bearer tokens only (no session cookie)"}}}
	}
	if !slices.ContainsFunc(u.Audiences, func(a string) bool { return a == rp.Entity || audienceNames(a, rp.MCP, host) }) {
		return &Result{Status: 401, Reason: "invalid_token:wrong_audience", Steps: []Step{{Rule: "mcp audience",
			Why: "the token's aud " + clip.String(joinClipped(u.Audiences), 100) + " names neither " + rp.MCP.API + ", " + rp.Entity + " nor this route's URL"}}}
	}
	return nil
}

// audienceNames: a is the MCP API's ref key or the URL of its route on
// host (any scheme; a trailing slash is the same resource).
func audienceNames(a string, p *model.MCPPolicy, host string) bool {
	if a == p.API {
		return true
	}
	u, err := url.Parse(a)
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || (u.Scheme != "https" && u.Scheme != "http") {
		return false
	}
	pth := u.Path
	if len(pth) > 1 && pth[len(pth)-1] == '/' {
		pth = pth[:len(pth)-1]
	}
	if pth == "" {
		pth = "/"
	}
	h := host
	if hn, _, err := net.SplitHostPort(host); err == nil {
		h = hn
	}
	return strings.EqualFold(u.Hostname(), strings.Trim(h, "[]")) && pth == p.Prefix
}

func joinClipped(ss []string) string {
	out := ""
	for i, s := range ss {
		if i > 0 {
			out += ", "
		}
		out += s
		if len(out) > 200 {
			break
		}
	}
	return out
}

// deniedTool is the first tool of ops whose rule refuses a principal of sub.
func deniedTool(rp *routePolicy, sub *Subject, ops []Operation) string {
	for _, pr := range sub.chain() {
		if pr.p == nil {
			continue
		}
		for _, op := range ops {
			if op.Method != "tools/call" {
				continue
			}
			if _, ok := toolRuleFails(rp, pr.p, op.Name); !ok {
				return op.Name
			}
			if a := pr.p.Agent; a != nil {
				if _, ok := agentMay(a, op); !ok {
					return op.Name
				}
			}
		}
	}
	return ""
}

package extauthz

import (
	"slices"
	"strings"

	"github.com/gatehouse-dev/gatehouse/model"
)

// agentLimit: an AI agent (alone, or as the actor of a person's delegated
// token) may use only the operations of its gatehouse.dev/agent-limits
// (read-only by default), whatever else would allow it: HTTP methods,
// GraphQL operation types, MCP tools. It runs before the rules that
// allow, so an owner's or consumer's right never lifts it.
type agentLimit struct{}

func (agentLimit) decide(c evalCtx) verdict {
	a := c.p.Agent
	if a == nil {
		return verdict{}
	}
	what, ok := agentMay(a, c.op)
	if ok {
		if c.explain {
			c.step("agent limits", true, c.p.Ref+" may use "+what+" (gatehouse.dev/agent-limits)")
		}
		return verdict{}
	}
	if c.explain {
		c.step("agent limits", false, c.p.Ref+" may not use "+what+": its gatehouse.dev/agent-limits do not grant it (agents are read-only unless granted)")
	}
	return verdict{outcome: denied, status: 403, reason: "agent_limit", rule: "agent limits of " + c.p.Ref}
}

// agentMay: whether the limits grant the operation, and what it is.
func agentMay(a *model.Agent, op Operation) (string, bool) {
	switch op.Kind {
	case model.InspectorHTTP:
		return "method " + op.Method, slices.Contains(a.Methods, op.Method)
	case model.InspectorGraphQL:
		return "GraphQL " + op.Method + "s", slices.Contains(a.GraphQL, op.Method)
	case inspectorMCP:
		if op.Method != "tools/call" {
			// The session's housekeeping (initialize, tools/list, ping,
			// notifications): tools/list shows only what it may call.
			return "MCP " + op.Method, true
		}
		return "tool " + op.Name, (op.ReadOnly && slices.Contains(a.MCPTools, readOnlyTools)) || toolAllowed(a.MCPTools, op.Name)
	}
	// An operation of a protocol the limits do not know: refused.
	return op.Kind + " " + op.Method, false
}

// inspectorMCP is the MCP inspector's operation kind (model.InspectorMCP
// of the MCP gateway).
const inspectorMCP = "mcp"

// readOnlyTools in mcp-tools grants the tools the MCP API marks
// read-only (Operation.ReadOnly).
const readOnlyTools = "read-only"

// toolAllowed: a pattern is a name, "*", or a prefix ending in "*"
// ("read-only" is no pattern).
func toolAllowed(patterns []string, name string) bool {
	if name == "" {
		return false
	}
	for _, p := range patterns {
		switch {
		case p == readOnlyTools:
		case p == "*", p == name:
			return true
		case strings.HasSuffix(p, "*") && strings.HasPrefix(name, strings.TrimSuffix(p, "*")):
			return true
		}
	}
	return false
}

package catalogsync

import (
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// AI agents in the catalog (docs/agents.md): a Component with spec.type
// ai-agent is software that calls APIs, for itself or on behalf of a
// person. It is a Component (not a new kind) so that Backstage shows it,
// owns it, and relates it to the APIs it consumes with no plugin: an agent
// is deployed software with an owner, a lifecycle and declared
// dependencies, which is what a Component is.
const (
	// ComponentTypeAIAgent is the spec.type of an agent.
	ComponentTypeAIAgent = "ai-agent"
	// AnnAgentLimits narrows what an agent may do anywhere, whatever its
	// rules allow: the HTTP methods, GraphQL operation types and MCP tools
	// it may use. Without it an agent is read-only.
	AnnAgentLimits = "gatehouse.dev/agent-limits"
)

// Agent is an ai-agent Component's limits.
type Agent struct {
	// Methods are the HTTP methods it may use (upper case).
	Methods []string `json:"methods" yaml:"methods"`
	// GraphQL are the GraphQL operation types it may send (query,
	// mutation, subscription).
	GraphQL []string `json:"graphql" yaml:"graphql"`
	// MCPTools are patterns of MCP tool names it may call ("*" any;
	// "read-only": the tools the MCP API marks read-only).
	MCPTools []string `json:"mcpTools" yaml:"mcpTools"`
}

// DefaultAgentLimits: read-only (GET and HEAD, GraphQL queries, MCP tools
// marked read-only).
func DefaultAgentLimits() Agent {
	return Agent{Methods: []string{"GET", "HEAD"}, GraphQL: []string{"query"}, MCPTools: []string{"read-only"}}
}

var graphqlOperationTypes = []string{"query", "mutation", "subscription"}

// agentLimitsShape is the fix for a gatehouse.dev/agent-limits value of the
// wrong shape.
const agentLimitsShape = `write a YAML mapping, e.g. "{methods: [GET, HEAD, POST], graphql: [query, mutation], mcp-tools: [read-only, 'orders_*']}"; ` +
	`each key is optional and defaults to read-only (docs/agents.md)`

// parseAgent validates an agent's annotations and sets e.Agent: an
// ai-agent Component must name its IdP client (gatehouse.dev/client-id),
// the only way a token is recognised as the agent's; agent limits belong
// on an agent only.
func parseAgent(e *Entity, n *yaml.Node) Problems {
	v, hasLimits := e.Annotation(AnnAgentLimits)
	isAgent := e.Kind == KindComponent && e.Spec.Type == ComponentTypeAIAgent
	if !isAgent && !hasLimits {
		return nil
	}
	var ps Problems
	bad := func(line int, field, msg, fix string) {
		ps = append(ps, Problem{Severity: SeverityError, Line: line, Field: field, Message: msg, Fix: fix})
	}
	limField := "metadata.annotations[" + AnnAgentLimits + "]"
	limLine := lineOf(n, "metadata", "annotations", AnnAgentLimits)
	if !isAgent {
		bad(limLine, limField, "agent limits apply to AI agents only, and this "+e.Kind+" is not one (spec.type is "+quote(e.Spec.Type)+")",
			"set spec.type: ai-agent on the agent's Component, or remove the annotation")
		return ps
	}
	if _, ok := e.Annotation(AnnClientID); !ok {
		bad(lineOf(n, "spec", "type"), "metadata.annotations["+AnnClientID+"]",
			"an ai-agent Component needs the IdP client id of the agent: without it no token is ever the agent's",
			"add gatehouse.dev/client-id: <the agent's OAuth client id at the IdP> (its client-credentials token is the agent)")
	}
	a := DefaultAgentLimits()
	if hasLimits {
		got, msg := decodeAgentLimits(v)
		if msg != "" {
			bad(limLine, limField, msg, agentLimitsShape)
		} else {
			a = got
		}
	}
	if ps.Errors() == 0 {
		e.Agent = &a
	}
	return ps
}

// decodeAgentLimits reads a gatehouse.dev/agent-limits value, or says in
// catalog terms what is wrong with it.
func decodeAgentLimits(v string) (Agent, string) {
	a := DefaultAgentLimits()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(v), &doc); err != nil {
		return a, "invalid YAML: " + trimYAMLErr(err)
	}
	if len(doc.Content) == 0 {
		return a, "empty value: expected a mapping with methods, graphql and mcp-tools"
	}
	m := doc.Content[0]
	if m.Kind != yaml.MappingNode {
		return a, "the value is " + nodeKindName[m.Kind] + ", not a mapping with methods, graphql and mcp-tools"
	}
	for j := 0; j+1 < len(m.Content); j += 2 {
		key, val := m.Content[j].Value, m.Content[j+1]
		var list []string
		if val.Kind != yaml.SequenceNode || val.Decode(&list) != nil {
			return a, key + " is not a list of plain values (write " + key + ": [a, b])"
		}
		switch key {
		case "methods":
			a.Methods = nil
			for _, x := range list {
				mu := strings.ToUpper(strings.TrimSpace(x))
				if !httpMethods[mu] {
					return a, "methods: unknown HTTP method " + quote(x)
				}
				if !slices.Contains(a.Methods, mu) {
					a.Methods = append(a.Methods, mu)
				}
			}
		case "graphql":
			a.GraphQL = nil
			for _, x := range list {
				t := strings.ToLower(strings.TrimSpace(x))
				if !slices.Contains(graphqlOperationTypes, t) {
					return a, "graphql: " + quote(x) + " is not a GraphQL operation type (query, mutation, subscription)"
				}
				if !slices.Contains(a.GraphQL, t) {
					a.GraphQL = append(a.GraphQL, t)
				}
			}
		case "mcp-tools":
			a.MCPTools = nil
			for _, x := range list {
				t := strings.TrimSpace(x)
				if t == "" || strings.ContainsAny(t, " \t\n") {
					return a, "mcp-tools: " + quote(x) + " is not a tool name or pattern"
				}
				a.MCPTools = append(a.MCPTools, t)
			}
		default:
			return a, "unknown key " + quote(key) + "; agent limits have methods, graphql and mcp-tools"
		}
	}
	return a, ""
}

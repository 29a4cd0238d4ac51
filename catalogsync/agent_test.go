package catalogsync

import (
	"reflect"
	"strings"
	"testing"
)

func agentDoc(name, typ string, annotations map[string]string) string {
	var b strings.Builder
	b.WriteString("apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: " + name + "\n")
	if len(annotations) > 0 {
		b.WriteString("  annotations:\n")
		for k, v := range annotations {
			b.WriteString("    " + k + ": '" + strings.ReplaceAll(v, "'", "''") + "'\n")
		}
	}
	b.WriteString("spec: {type: " + typ + ", lifecycle: production, owner: group:default/payments}\n")
	return b.String()
}

// An ai-agent Component: its client id is required, its limits default
// to read-only, and every mistake names the entity's field and a fix.
func TestAgentEntities(t *testing.T) {
	cases := []struct {
		name        string
		typ         string
		annotations map[string]string
		want        *Agent
		field, msg  string
		fix         string
	}{
		{name: "read-only by default", typ: "ai-agent", annotations: map[string]string{AnnClientID: "copilot"},
			want: &Agent{Methods: []string{"GET", "HEAD"}, GraphQL: []string{"query"}, MCPTools: []string{"read-only"}}},
		{name: "granted writes", typ: "ai-agent", annotations: map[string]string{AnnClientID: "w", AnnAgentLimits: "{methods: [get, post, GET], graphql: [Query, mutation], mcp-tools: ['orders_*']}"},
			want: &Agent{Methods: []string{"GET", "POST"}, GraphQL: []string{"query", "mutation"}, MCPTools: []string{"orders_*"}}},
		{name: "only methods set", typ: "ai-agent", annotations: map[string]string{AnnClientID: "w", AnnAgentLimits: "methods: [GET]"},
			want: &Agent{Methods: []string{"GET"}, GraphQL: []string{"query"}, MCPTools: []string{"read-only"}}},
		{name: "nothing at all", typ: "ai-agent", annotations: map[string]string{AnnClientID: "w", AnnAgentLimits: "{methods: [], graphql: [], mcp-tools: []}"},
			want: &Agent{}},
		{name: "no client id", typ: "ai-agent", field: "metadata.annotations[gatehouse.dev/client-id]", msg: "needs the IdP client id", fix: "add gatehouse.dev/client-id"},
		{name: "limits on a service", typ: "service", annotations: map[string]string{AnnAgentLimits: "{methods: [GET]}"},
			field: "metadata.annotations[gatehouse.dev/agent-limits]", msg: "not one", fix: "spec.type: ai-agent"},
		{name: "unknown method", typ: "ai-agent", annotations: map[string]string{AnnClientID: "c", AnnAgentLimits: "{methods: [FETCH]}"},
			field: "metadata.annotations[gatehouse.dev/agent-limits]", msg: `unknown HTTP method "FETCH"`, fix: "methods: [GET, HEAD, POST]"},
		{name: "unknown graphql type", typ: "ai-agent", annotations: map[string]string{AnnClientID: "c", AnnAgentLimits: "{graphql: [read]}"},
			field: "metadata.annotations[gatehouse.dev/agent-limits]", msg: "not a GraphQL operation type", fix: "graphql: [query, mutation]"},
		{name: "unknown key", typ: "ai-agent", annotations: map[string]string{AnnClientID: "c", AnnAgentLimits: "{verbs: [GET]}"},
			field: "metadata.annotations[gatehouse.dev/agent-limits]", msg: `unknown key "verbs"`, fix: "docs/agents.md"},
		{name: "a list", typ: "ai-agent", annotations: map[string]string{AnnClientID: "c", AnnAgentLimits: "[GET]"},
			field: "metadata.annotations[gatehouse.dev/agent-limits]", msg: "not a mapping", fix: "YAML mapping"},
		{name: "scalar method list", typ: "ai-agent", annotations: map[string]string{AnnClientID: "c", AnnAgentLimits: "methods: GET"},
			field: "metadata.annotations[gatehouse.dev/agent-limits]", msg: "methods is not a list", fix: "YAML mapping"},
		{name: "bad YAML", typ: "ai-agent", annotations: map[string]string{AnnClientID: "c", AnnAgentLimits: "{methods: [GET"},
			field: "metadata.annotations[gatehouse.dev/agent-limits]", msg: "invalid YAML", fix: "YAML mapping"},
		{name: "tool with a space", typ: "ai-agent", annotations: map[string]string{AnnClientID: "c", AnnAgentLimits: "{mcp-tools: ['a b']}"},
			field: "metadata.annotations[gatehouse.dev/agent-limits]", msg: "not a tool name", fix: "YAML mapping"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := ParseFile("files", "agents.yaml", []byte(agentDoc("copilot", c.typ, c.annotations)))
			if c.want != nil {
				if len(p.Problems) != 0 || len(p.Entities) != 1 {
					t.Fatalf("problems %v, %d entities", p.Problems, len(p.Entities))
				}
				got := p.Entities[0].Agent
				if got == nil {
					t.Fatal("no agent limits")
				}
				norm := func(a *Agent) Agent {
					return Agent{Methods: append([]string{}, a.Methods...), GraphQL: append([]string{}, a.GraphQL...), MCPTools: append([]string{}, a.MCPTools...)}
				}
				if !reflect.DeepEqual(norm(got), norm(c.want)) {
					t.Fatalf("limits %+v, want %+v", got, c.want)
				}
				return
			}
			if len(p.Problems) != 1 {
				t.Fatalf("problems = %v; want one", p.Problems)
			}
			pr := p.Problems[0]
			if pr.Severity != SeverityError || pr.Field != c.field || !strings.Contains(pr.Message, c.msg) || !strings.Contains(pr.Fix, c.fix) || pr.Line == 0 {
				t.Fatalf("problem %+v; want field %s, message ~%q, fix ~%q, a line", pr, c.field, c.msg, c.fix)
			}
			if !strings.Contains(pr.String(), "component:default/copilot") {
				t.Fatalf("the problem does not name the entity: %s", pr.String())
			}
		})
	}
}

// One broken agent leaves the others (and the rest of the file) alone.
func TestBrokenAgentAlone(t *testing.T) {
	src := agentDoc("broken", "ai-agent", nil) + "---\n" + agentDoc("copilot", "ai-agent", map[string]string{AnnClientID: "copilot"})
	p := ParseFile("files", "agents.yaml", []byte(src))
	if len(p.Problems) != 1 || len(p.Entities) != 1 || p.Entities[0].Metadata.Name != "copilot" || p.Entities[0].Agent == nil {
		t.Fatalf("problems %v, entities %d", p.Problems, len(p.Entities))
	}
}

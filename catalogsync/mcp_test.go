package catalogsync

import (
	"strings"
	"testing"
)

func mcpAPIDoc(typ, annotations string) string {
	return "apiVersion: backstage.io/v1alpha1\nkind: API\nmetadata:\n  name: tools\n  annotations:\n    gatehouse.dev/path-prefix: /tools/mcp\n" + annotations +
		"spec:\n  type: " + typ + "\n  lifecycle: production\n  owner: payments\n  definition: tools\n"
}

func TestMCPToolRulesParse(t *testing.T) {
	ann := "    gatehouse.dev/mcp-tools: |\n      deploy: [owners]\n      \"read_*\": [owners, consumers, group:sre, user:default/alice]\n"
	p := ParseFile("files", "m.yaml", []byte(mcpAPIDoc("mcp", ann)))
	if len(p.Problems) != 0 || len(p.Entities) != 1 {
		t.Fatalf("problems %v", p.Problems)
	}
	m := p.Entities[0].MCP
	if m == nil || len(m.Tools) != 2 || m.Tools[0].Pattern != "deploy" || m.Tools[1].Pattern != "read_*" ||
		strings.Join(m.Tools[1].Allow, ",") != "owners,consumers,group:default/sre,user:default/alice" {
		t.Fatalf("rules %+v", m)
	}
	// Without the annotation an MCP API still is one (every tool open to the route).
	p = ParseFile("files", "m.yaml", []byte(mcpAPIDoc("mcp", "")))
	if len(p.Problems) != 0 || p.Entities[0].MCP == nil || len(p.Entities[0].MCP.Tools) != 0 {
		t.Fatalf("no annotation: %v %+v", p.Problems, p.Entities[0].MCP)
	}
}

// Bad rules: the entity is rejected (its last good version stays) with a
// problem naming the annotation, the tool and a fix.
func TestMCPToolRuleErrors(t *testing.T) {
	cases := map[string]struct{ typ, ann, want string }{
		"not mcp":      {"openapi", "    gatehouse.dev/mcp-tools: \"deploy: [owners]\"\n", "only on an API with spec.type mcp"},
		"not mapping":  {"mcp", "    gatehouse.dev/mcp-tools: \"- deploy\"\n", "not a mapping"},
		"bad yaml":     {"mcp", "    gatehouse.dev/mcp-tools: \"deploy: [owners\"\n", "invalid YAML"},
		"empty allow":  {"mcp", "    gatehouse.dev/mcp-tools: \"deploy: []\"\n", "empty allow list"},
		"scalar allow": {"mcp", "    gatehouse.dev/mcp-tools: \"deploy: owners\"\n", "must be a list"},
		"bad name":     {"mcp", "    gatehouse.dev/mcp-tools: \"deploy: [admins]\"\n", "not owners, consumers or a ref"},
		"api ref":      {"mcp", "    gatehouse.dev/mcp-tools: \"deploy: [api:default/x]\"\n", "only users, groups and components"},
		"bad pattern":  {"mcp", "    gatehouse.dev/mcp-tools: \"'read_[': [owners]\"\n", "not a valid pattern"},
		"white space":  {"mcp", "    gatehouse.dev/mcp-tools: \"'read it': [owners]\"\n", "white space"},
		"too long":     {"mcp", "    gatehouse.dev/mcp-tools: \"" + strings.Repeat("a", 129) + ": [owners]\"\n", "longer than 128"},
		"duplicate":    {"mcp", "    gatehouse.dev/mcp-tools: |\n      deploy: [owners]\n      deploy: [consumers]\n", "deploy"},
	}
	for name, c := range cases {
		p := ParseFile("files", "m.yaml", []byte(mcpAPIDoc(c.typ, c.ann)))
		if len(p.Problems) == 0 || len(p.Entities) != 0 {
			t.Errorf("%s: want the entity rejected, got %v", name, p.Problems)
			continue
		}
		pr := p.Problems[0]
		if pr.Entity != "api:default/tools" || pr.Field != "metadata.annotations[gatehouse.dev/mcp-tools]" || pr.Fix == "" || !strings.Contains(pr.Message, c.want) || pr.Line == 0 {
			t.Errorf("%s: %s", name, pr)
		}
	}
}

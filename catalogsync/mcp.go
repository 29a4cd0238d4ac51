package catalogsync

import (
	"path"
	"strings"

	"gopkg.in/yaml.v3"
)

// AnnMCPTools maps MCP tool names or glob patterns to who may call them,
// on an API entity with spec.type mcp (docs/mcp.md).
const AnnMCPTools = "gatehouse.dev/mcp-tools"

// AnnMCPReadOnlyTools lists the tools (names or patterns) that change
// nothing: an agent limited to read-only tools may call them
// (docs/agents.md, docs/mcp.md).
const AnnMCPReadOnlyTools = "gatehouse.dev/mcp-read-only-tools"

// MCPAPI is what the catalog says about an MCP server's API: the tool
// rules of AnnMCPTools, in the order written. An API with spec.type mcp
// always has one (no rules: every tool is open to whoever the route
// allows).
type MCPAPI struct {
	Tools []MCPToolRule
	// ReadOnly: AnnMCPReadOnlyTools, names or patterns.
	ReadOnly []string
}

// MCPToolRule: the tools whose name matches Pattern (path.Match syntax:
// *, ?, [a-z]) may be called by the names in Allow (owners, consumers or
// ref keys), any of them.
type MCPToolRule struct {
	Pattern string
	Allow   []string
}

// maxToolName bounds a tool name or pattern (the MCP specification's
// tool names are at most 128 characters).
const maxToolName = 128

// parseMCP validates an MCP API's tool rules and sets e.MCP; the
// annotation anywhere else is an error.
func parseMCP(e *Entity, n *yaml.Node) Problems {
	var ps Problems
	line := lineOf(n, "metadata", "annotations", AnnMCPTools)
	field := "metadata.annotations[" + AnnMCPTools + "]"
	v, has := e.Annotation(AnnMCPTools)
	ro, hasRO := e.Annotation(AnnMCPReadOnlyTools)
	if e.Kind != KindAPI || e.Spec.Type != "mcp" {
		for k, set := range map[string]bool{AnnMCPTools: has, AnnMCPReadOnlyTools: hasRO} {
			if set {
				ps = append(ps, Problem{Severity: SeverityError, Line: lineOf(n, "metadata", "annotations", k), Field: "metadata.annotations[" + k + "]",
					Message: k + " is read only on an API with spec.type mcp", Fix: "move it to the MCP server's API entity (spec.type: mcp), or remove it"})
			}
		}
		return ps
	}
	m := &MCPAPI{}
	if has {
		rules, errs := parseMCPTools(v, e.Ref().Namespace)
		for _, msg := range errs {
			ps = append(ps, Problem{Severity: SeverityError, Line: line, Field: field, Message: msg,
				Fix: "write one tool name or pattern per line with its allow list, e.g. deploy: [owners] or \"read_*\": [owners, consumers, group:default/sre]"})
		}
		m.Tools = rules
	}
	if hasRO {
		var list []string
		var doc yaml.Node
		err := yaml.Unmarshal([]byte(ro), &doc)
		if err == nil && len(doc.Content) == 1 && doc.Content[0].Kind == yaml.SequenceNode && doc.Content[0].Decode(&list) == nil && len(list) > 0 {
			for _, p := range list {
				if msg := checkToolPattern(p); msg != "" {
					list = nil
					ps = append(ps, Problem{Severity: SeverityError, Line: lineOf(n, "metadata", "annotations", AnnMCPReadOnlyTools), Field: "metadata.annotations[" + AnnMCPReadOnlyTools + "]",
						Message: msg, Fix: "list tool names or patterns, e.g. [list_components, \"read_*\"]"})
					break
				}
			}
			m.ReadOnly = list
		} else {
			ps = append(ps, Problem{Severity: SeverityError, Line: lineOf(n, "metadata", "annotations", AnnMCPReadOnlyTools), Field: "metadata.annotations[" + AnnMCPReadOnlyTools + "]",
				Message: "not a non-empty YAML list of tool names or patterns", Fix: "write e.g. [list_components, \"read_*\"]"})
		}
	}
	if ps.Errors() == 0 {
		e.MCP = m
	}
	return ps
}

// parseMCPTools reads the mapping of tool name or pattern to allow list,
// keeping the order written.
func parseMCPTools(v, ns string) ([]MCPToolRule, []string) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(v), &doc); err != nil {
		return nil, []string{"invalid YAML: " + trimYAMLErr(err) + " (expected a mapping of tool name or pattern to a list)"}
	}
	if len(doc.Content) == 0 {
		return nil, []string{"empty value: expected a mapping of tool name or pattern to an allow list"}
	}
	m := doc.Content[0]
	if m.Kind != yaml.MappingNode {
		return nil, []string{"the value is " + nodeKindName[m.Kind] + ", not a mapping of tool name or pattern to an allow list"}
	}
	var out []MCPToolRule
	var errs []string
	seen := map[string]bool{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		key, val := m.Content[i].Value, m.Content[i+1]
		switch msg := checkToolPattern(key); {
		case msg != "":
			errs = append(errs, msg)
			continue
		case seen[key]:
			errs = append(errs, "tool "+quote(key)+" is listed twice")
			continue
		}
		seen[key] = true
		var allow []string
		if val.Kind != yaml.SequenceNode || val.Decode(&allow) != nil {
			errs = append(errs, "tool "+quote(key)+": the allow list must be a list of names (write "+key+": [owners, group:default/sre])")
			continue
		}
		if len(allow) == 0 {
			errs = append(errs, "tool "+quote(key)+" has an empty allow list (nobody could call it); list owners, consumers or refs")
			continue
		}
		r := MCPToolRule{Pattern: key}
		for _, name := range allow {
			k, msg := PolicyName(name, ns)
			if msg != "" {
				errs = append(errs, "tool "+quote(key)+": "+msg)
				continue
			}
			r.Allow = append(r.Allow, k)
		}
		if len(r.Allow) == len(allow) {
			out = append(out, r)
		}
	}
	return out, errs
}

// checkToolPattern: a tool name or a path.Match pattern of one.
func checkToolPattern(p string) string {
	switch {
	case strings.TrimSpace(p) == "":
		return "an empty tool name"
	case len(p) > maxToolName:
		return "tool pattern " + quote(p[:32]+"…") + " is longer than 128 characters"
	case strings.ContainsAny(p, " \t\r\n\x00"):
		return "tool pattern " + quote(p) + " contains white space"
	}
	if _, err := path.Match(p, ""); err != nil {
		return "tool pattern " + quote(p) + " is not a valid pattern (use *, ? and [a-z]; escape with \\)"
	}
	return ""
}

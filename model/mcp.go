package model

// MCP tool authorization (docs/mcp.md): what Compile makes of an API
// entity with spec.type mcp.

// InspectorMCP reads a request as MCP JSON-RPC: one operation per
// message, with its method and, for tools/call, the tool.
const InspectorMCP = "mcp"

// InspectorResourceMetadata marks the route that serves an MCP route's
// OAuth Protected Resource Metadata (RFC 9728): Check answers it with the
// document, without credentials.
const InspectorResourceMetadata = "oauth-resource-metadata"

// ResourceMetadataPrefix: the metadata of the resource at https://host/p
// is at https://host/.well-known/oauth-protected-resource/p (RFC 9728 §3.1).
const ResourceMetadataPrefix = "/.well-known/oauth-protected-resource"

// MCPHeaderPrefix starts the MCP transport's headers (Mcp-Method,
// Mcp-Name, Mcp-Protocol-Version): Envoy sends them to Check.
const MCPHeaderPrefix = "mcp-"

// DefaultMCPBodyBytes is the body Envoy buffers for Check on an MCP route.
const DefaultMCPBodyBytes = 256 << 10

// MCPPolicy is one MCP API's tool rules.
type MCPPolicy struct {
	// API is the MCP API's ref key: tokens on its route must name it (or
	// the route's URL) in `aud`.
	API string `json:"api" yaml:"api"`
	// Prefix is the MCP route's path (the resource's path; its metadata
	// is served at ResourceMetadataPrefix + Prefix).
	Prefix string `json:"prefix" yaml:"prefix"`
	// Tools: the rules in the order written; a tool matching none is
	// open to whoever the route allows, one matching several needs all.
	Tools []MCPToolRule `json:"tools,omitempty" yaml:"tools,omitempty"`
	// ReadOnly: the tools (names or path.Match patterns) that change
	// nothing (gatehouse.dev/mcp-read-only-tools): what an agent limited
	// to read-only tools may call.
	ReadOnly []string `json:"readOnly,omitempty" yaml:"readOnly,omitempty"`
}

// MCPToolRule: a tool whose name matches Pattern (path.Match) may be
// called by any name in Allow ("owners", "consumers", or a user:, group:
// or component: ref key).
type MCPToolRule struct {
	Pattern string   `json:"pattern" yaml:"pattern"`
	Allow   []string `json:"allow" yaml:"allow"`
}

package model

// Policy is who may call one route, derived from the catalog. Evaluation
// order is documented in docs/policy.md: public, owners, consumers, rules;
// everything else is denied.
type Policy struct {
	RouteID string `json:"routeId" yaml:"routeId"`
	Entity  string `json:"entity" yaml:"entity"`
	API     string `json:"api,omitempty" yaml:"api,omitempty"`
	System  string `json:"system,omitempty" yaml:"system,omitempty"`
	// Owners: group or user refs whose members may call everything.
	Owners []string `json:"owners,omitempty" yaml:"owners,omitempty"`
	// Consumers: components that declare (consumesApis) an API served here.
	Consumers []string     `json:"consumers,omitempty" yaml:"consumers,omitempty"`
	Rules     []AccessRule `json:"rules,omitempty" yaml:"rules,omitempty"`
	Public    bool         `json:"public,omitempty" yaml:"public,omitempty"`
	// Unavailable, when set, says why the route serves nothing (503
	// catalog_problem): its entity provides a GraphQL API whose schema has
	// never loaded, so the API's own route (and its field rules) is missing
	// and the provider's route would otherwise serve its path without them.
	Unavailable string `json:"unavailable,omitempty" yaml:"unavailable,omitempty"`
	// ForwardToken: the caller's Authorization header reaches the upstream.
	ForwardToken bool `json:"forwardToken,omitempty" yaml:"forwardToken,omitempty"`
	// AssertionBearer: the upstream gets the assertion as its bearer token
	// too (gatehouse.dev/assertion-header: authorization).
	AssertionBearer bool `json:"assertionBearer,omitempty" yaml:"assertionBearer,omitempty"`
	// GraphQL: the field policy of a GraphQL API's route (docs/graphql.md).
	GraphQL *GraphQLPolicy `json:"graphql,omitempty" yaml:"graphql,omitempty"`
	// MCP: the tool rules of an MCP API's route (docs/mcp.md).
	MCP *MCPPolicy `json:"mcp,omitempty" yaml:"mcp,omitempty"`
}

// AccessRule is one explicit rule of a route's policy (an entry of the
// entity's gatehouse.dev/access annotation, validated by catalogsync).
type AccessRule struct {
	Allow   []string `json:"allow" yaml:"allow"`                         // ref keys: user:, group:, component:
	Methods []string `json:"methods,omitempty" yaml:"methods,omitempty"` // upper case; empty = any
	Paths   []string `json:"paths,omitempty" yaml:"paths,omitempty"`     // pathglob patterns; empty = any
}

// Directory is the catalog's identities, for mapping a token to a principal.
type Directory struct {
	Users   []User   `json:"users,omitempty" yaml:"users,omitempty"`
	Groups  []Group  `json:"groups,omitempty" yaml:"groups,omitempty"`
	Clients []Client `json:"clients,omitempty" yaml:"clients,omitempty"`
	// Agents: the ai-agent Components and their limits (docs/agents.md).
	Agents []Agent `json:"agents,omitempty" yaml:"agents,omitempty"`
}

// Agent is an AI agent: a Component with spec.type ai-agent. Whether it
// calls for itself or for a person (a delegated token's actor), it may
// use only these operations, whatever else allows it.
type Agent struct {
	Ref string `json:"ref" yaml:"ref"`
	// Methods: HTTP methods (upper case); GraphQL: operation types;
	// MCPTools: tool name patterns ("read-only": tools the MCP API marks
	// read-only).
	Methods  []string `json:"methods" yaml:"methods"`
	GraphQL  []string `json:"graphql" yaml:"graphql"`
	MCPTools []string `json:"mcpTools" yaml:"mcpTools"`
}

// User is a catalog User.
type User struct {
	Ref         string   `json:"ref" yaml:"ref"`
	Email       string   `json:"email,omitempty" yaml:"email,omitempty"` // lower case
	IdpSubjects []string `json:"idpSubjects,omitempty" yaml:"idpSubjects,omitempty"`
	Groups      []string `json:"groups,omitempty" yaml:"groups,omitempty"` // transitive
	// SessionsNotBefore (Unix seconds): browser sessions signed in
	// earlier are refused (gatehouse.dev/sessions-not-before).
	SessionsNotBefore int64 `json:"sessionsNotBefore,omitempty" yaml:"sessionsNotBefore,omitempty"`
}

// Group is a catalog Group.
type Group struct {
	Ref       string   `json:"ref" yaml:"ref"`
	IdpGroups []string `json:"idpGroups,omitempty" yaml:"idpGroups,omitempty"` // IdP group names mapped to it (besides its own name)
	Groups    []string `json:"groups" yaml:"groups"`                           // itself and its ancestors
}

// Client is a Component that authenticates with its own OAuth client.
type Client struct {
	Ref       string   `json:"ref" yaml:"ref"`
	ClientIDs []string `json:"clientIds" yaml:"clientIds"`
}

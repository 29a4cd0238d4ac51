package model

// GraphQL field authorization (docs/graphql.md): what Compile makes of an
// API entity with spec.type graphql. Plain data: the schema travels as its
// SDL text, and extauthz parses it once per model (model imports no
// GraphQL parser).

// InspectorGraphQL reads a request as a GraphQL document: one operation
// per field.
const InspectorGraphQL = "graphql"

// GraphQL modes: reject denies a request that asks for any forbidden
// field; filter removes the forbidden fields before the upstream sees the
// operation and answers null with an error at each (through ext_proc:
// RouteAuth.ExtProc); dry-run decides and audits but never blocks on a
// field rule.
const (
	GraphQLReject = "reject"
	GraphQLFilter = "filter"
	GraphQLDryRun = "dry-run"
)

// DefaultGraphQLBodyBytes is the body Envoy buffers for a GraphQL route
// when the API does not set its own limit.
const DefaultGraphQLBodyBytes = 256 << 10

// GraphQLPolicy is one GraphQL API's schema, field rules, mode and limits.
type GraphQLPolicy struct {
	// Schema is the SDL, complete (the rule directives declared), as the
	// catalog validated it.
	Schema string        `json:"schema" yaml:"schema"`
	Mode   string        `json:"mode" yaml:"mode"`
	Limits GraphQLLimits `json:"limits" yaml:"limits"`
	// Fields: the restricted fields, sorted by Name; a field not listed
	// is open to whoever the route allows.
	Fields []GraphQLField `json:"fields,omitempty" yaml:"fields,omitempty"`
	// Persisted is how hash-only requests (Apollo's persisted queries)
	// are read.
	Persisted GraphQLPersisted `json:"persisted" yaml:"persisted"`
}

// Persisted-query modes: apq (Apollo's automatic persisted queries: a
// bounded store of hash -> document, filled by requests that carry both),
// safelist (only the listed documents pass, by text or by hash), off
// (hash-only requests are refused).
const (
	PersistedAPQ      = "apq"
	PersistedSafelist = "safelist"
	PersistedOff      = "off"
)

// GraphQLPersisted is an API's persisted-query settings.
type GraphQLPersisted struct {
	Mode string `json:"mode" yaml:"mode"`
	// Cache: the documents the APQ store keeps (least recently used go).
	Cache int `json:"cache,omitempty" yaml:"cache,omitempty"`
	// Safelist: the documents of safelist mode.
	Safelist []GraphQLDocument `json:"safelist,omitempty" yaml:"safelist,omitempty"`
}

// GraphQLDocument is a document and its APQ hash (SHA-256 of the text,
// lower-case hex).
type GraphQLDocument struct {
	Hash     string `json:"hash" yaml:"hash"`
	Document string `json:"document" yaml:"document"`
}

// GraphQLLimits bound a document before any field is authorized.
type GraphQLLimits struct {
	MaxDepth      int `json:"maxDepth" yaml:"maxDepth"`
	MaxAliases    int `json:"maxAliases" yaml:"maxAliases"`
	MaxRootFields int `json:"maxRootFields" yaml:"maxRootFields"`
	MaxFields     int `json:"maxFields" yaml:"maxFields"`
	// IntrospectionEveryone lets anyone the route allows introspect the
	// schema; by default only the owners may (__schema, __type).
	IntrospectionEveryone bool `json:"introspectionEveryone,omitempty" yaml:"introspectionEveryone,omitempty"`
}

// DefaultGraphQLLimits apply where the API sets none.
var DefaultGraphQLLimits = GraphQLLimits{MaxDepth: 12, MaxAliases: 30, MaxRootFields: 20, MaxFields: 500}

// GraphQLField is the rules of one field, "Type.field" (or "__schema",
// "__type" for introspection): every requirement must hold.
type GraphQLField struct {
	Name     string               `json:"name" yaml:"name"`
	Requires []GraphQLRequirement `json:"requires" yaml:"requires"`
}

// GraphQLRequirement holds when, for any list of AnyOf, every name in it
// holds (Apollo's [[…]]: inner all, outer any). Names: "authenticated",
// "owners", "consumers", "scope:<s>", or a user:, group: or component:
// ref key.
type GraphQLRequirement struct {
	AnyOf [][]string `json:"anyOf" yaml:"anyOf"`
	// From says where the rule is written, for explain and the audit
	// ("@policy on Component.secrets", "gatehouse.dev/graphql-access Account.*").
	From string `json:"from" yaml:"from"`
}

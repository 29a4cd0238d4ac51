package catalogsync

import (
	"strconv"
	"strings"
)

// The entity kinds gatehouse understands (Backstage's built-in kinds).
const (
	KindComponent = "Component"
	KindAPI       = "API"
	KindSystem    = "System"
	KindDomain    = "Domain"
	KindResource  = "Resource"
	KindGroup     = "Group"
	KindUser      = "User"
	KindLocation  = "Location"
)

var kindByLower = map[string]string{
	"component": KindComponent, "api": KindAPI, "system": KindSystem,
	"domain": KindDomain, "resource": KindResource, "group": KindGroup,
	"user": KindUser, "location": KindLocation,
}

// Entity is one catalog entity in Backstage's descriptor format, plus where it
// came from and the relations computed for it.
type Entity struct {
	APIVersion string     `json:"apiVersion" yaml:"apiVersion"`
	Kind       string     `json:"kind" yaml:"kind"`
	Metadata   Metadata   `json:"metadata" yaml:"metadata"`
	Spec       Spec       `json:"spec" yaml:"spec"`
	Relations  []Relation `json:"relations,omitempty" yaml:"relations,omitempty"`

	// Origin says where this version of the entity was read.
	Origin Origin `json:"-" yaml:"-"`
	// Routing is the parsed gatehouse.dev/* routing annotations (nil when the
	// entity is not routed).
	Routing *Routing `json:"-" yaml:"-"`
	// Access is the parsed gatehouse.dev/* access annotations (nil when none).
	Access *Access `json:"-" yaml:"-"`
	// Mesh is set when a Component is in the service mesh
	// (gatehouse.dev/mesh-address).
	Mesh *Mesh `json:"-" yaml:"-"`
	// GraphQL is set on an API with spec.type graphql whose SDL loads
	// (docs/graphql.md).
	GraphQL *GraphQLAPI `json:"-" yaml:"-"`
	// MCP is set on an API with spec.type mcp (docs/mcp.md).
	MCP *MCPAPI `json:"-" yaml:"-"`
	// Agent is set on an ai-agent Component: its limits (docs/agents.md).
	Agent *Agent `json:"-" yaml:"-"`
	// Stale is set when the newest version of the entity failed validation and
	// this is the last good version, kept so one typo does not drop a route.
	Stale bool `json:"-" yaml:"-"`

	// resolvedFrom is the parsed entity this one was made from by
	// resolveRelations (which adds the relations): the store's cheap test
	// that an entity did not change.
	resolvedFrom *Entity
	// refLines: the line of each ref of the spec's ref fields, by field
	// name ("owner", "dependsOn") in order, so a ref that resolves to
	// nothing is reported where it is written (files only).
	refLines map[string][]int
}

// Metadata is Backstage's entity metadata.
type Metadata struct {
	Name        string            `json:"name" yaml:"name"`
	Namespace   string            `json:"namespace,omitempty" yaml:"namespace,omitempty"`
	Title       string            `json:"title,omitempty" yaml:"title,omitempty"`
	Description string            `json:"description,omitempty" yaml:"description,omitempty"`
	Labels      map[string]string `json:"labels,omitempty" yaml:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty" yaml:"annotations,omitempty"`
	Tags        []string          `json:"tags,omitempty" yaml:"tags,omitempty"`
	UID         string            `json:"uid,omitempty" yaml:"uid,omitempty"`
	Etag        string            `json:"etag,omitempty" yaml:"etag,omitempty"`
}

// Spec is the union of the spec fields of the built-in kinds that gatehouse
// reads. Fields a kind does not define stay empty; unknown fields are ignored
// as Backstage ignores them.
type Spec struct {
	Type           string   `json:"type,omitempty" yaml:"type,omitempty"`
	Lifecycle      string   `json:"lifecycle,omitempty" yaml:"lifecycle,omitempty"`
	Owner          string   `json:"owner,omitempty" yaml:"owner,omitempty"`
	System         string   `json:"system,omitempty" yaml:"system,omitempty"`
	Domain         string   `json:"domain,omitempty" yaml:"domain,omitempty"`
	SubcomponentOf string   `json:"subcomponentOf,omitempty" yaml:"subcomponentOf,omitempty"`
	ProvidesAPIs   []string `json:"providesApis,omitempty" yaml:"providesApis,omitempty"`
	ConsumesAPIs   []string `json:"consumesApis,omitempty" yaml:"consumesApis,omitempty"`
	DependsOn      []string `json:"dependsOn,omitempty" yaml:"dependsOn,omitempty"`
	Definition     any      `json:"definition,omitempty" yaml:"definition,omitempty"`
	// Group
	Parent   string   `json:"parent,omitempty" yaml:"parent,omitempty"`
	Children []string `json:"children,omitempty" yaml:"children,omitempty"`
	Members  []string `json:"members,omitempty" yaml:"members,omitempty"`
	// User
	MemberOf []string `json:"memberOf,omitempty" yaml:"memberOf,omitempty"`
	Profile  *Profile `json:"profile,omitempty" yaml:"profile,omitempty"`
	// Location
	Target  string   `json:"target,omitempty" yaml:"target,omitempty"`
	Targets []string `json:"targets,omitempty" yaml:"targets,omitempty"`
}

// Profile is the profile of a User or Group.
type Profile struct {
	DisplayName string `json:"displayName,omitempty" yaml:"displayName,omitempty"`
	Email       string `json:"email,omitempty" yaml:"email,omitempty"`
	Picture     string `json:"picture,omitempty" yaml:"picture,omitempty"`
}

// Relation is a directed, typed edge as Backstage computes them.
type Relation struct {
	Type      string `json:"type" yaml:"type"`
	TargetRef string `json:"targetRef" yaml:"targetRef"`
}

// Relation types (Backstage's names).
const (
	RelOwnedBy       = "ownedBy"
	RelOwnerOf       = "ownerOf"
	RelMemberOf      = "memberOf"
	RelHasMember     = "hasMember"
	RelParentOf      = "parentOf"
	RelChildOf       = "childOf"
	RelProvidesAPI   = "providesApi"
	RelAPIProvidedBy = "apiProvidedBy"
	RelConsumesAPI   = "consumesApi"
	RelAPIConsumedBy = "apiConsumedBy"
	RelPartOf        = "partOf"
	RelHasPart       = "hasPart"
	RelDependsOn     = "dependsOn"
	RelDependencyOf  = "dependencyOf"
)

// Origin records which source produced an entity version and where.
type Origin struct {
	Source string `json:"source"` // source name, e.g. "files" or "backstage"
	File   string `json:"file,omitempty"`
	Line   int    `json:"line,omitempty"`
}

func (e *Entity) addRefLine(field string, line int) {
	if e.refLines == nil {
		e.refLines = map[string][]int{}
	}
	e.refLines[field] = append(e.refLines[field], line)
}

// refLine is the line of ref i of a spec field, else the entity's line.
func (e *Entity) refLine(field string, i int) int {
	if ls := e.refLines[field]; i < len(ls) {
		return ls[i]
	}
	return e.Origin.Line
}

func (o Origin) String() string {
	if o.File == "" {
		return o.Source
	}
	if o.Line > 0 {
		return o.File + ":" + strconv.Itoa(o.Line)
	}
	return o.File
}

// Ref returns the entity's ref.
func (e *Entity) Ref() Ref {
	ns := e.Metadata.Namespace
	if ns == "" {
		ns = DefaultNamespace
	}
	return Ref{Kind: canonicalKind(e.Kind), Namespace: ns, Name: e.Metadata.Name}
}

// RelationTargets returns the targets of all relations of type t.
func (e *Entity) RelationTargets(t string) []string {
	var out []string
	for _, r := range e.Relations {
		if r.Type == t {
			out = append(out, r.TargetRef)
		}
	}
	return out
}

// Annotation returns an annotation value (trimmed) and whether it was set.
func (e *Entity) Annotation(key string) (string, bool) {
	v, ok := e.Metadata.Annotations[key]
	return strings.TrimSpace(v), ok
}

func canonicalKind(k string) string {
	if c, ok := kindByLower[strings.ToLower(k)]; ok {
		return c
	}
	return k
}

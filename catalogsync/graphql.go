package catalogsync

import (
	"errors"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"
	"gopkg.in/yaml.v3"

	"github.com/gatehouse-dev/gatehouse/internal/suggest"
)

// GraphQL annotations on an API entity with spec.type graphql
// (docs/graphql.md).
const (
	// AnnGraphQLAccess maps Type.field or Type.* to who may read it, for
	// teams that cannot add directives to their SDL.
	AnnGraphQLAccess = "gatehouse.dev/graphql-access"
	// AnnGraphQLOptions: mode, body limit and document limits.
	AnnGraphQLOptions = "gatehouse.dev/graphql-options"
	// AnnGraphQLPolicies names allow lists (name -> owners, consumers,
	// refs) that @policy and AnnGraphQLAccess can use by name.
	AnnGraphQLPolicies = "gatehouse.dev/graphql-policies"
)

// GraphQLAPI is what the catalog says about a GraphQL API: its schema (as
// parsed and validated here, never modified), the annotation's rules and
// options. Compile turns it into the model's field policy.
type GraphQLAPI struct {
	// SDL is the definition with the rule directives declared when it
	// does not declare them itself; Schema is it parsed.
	SDL    string
	Schema *ast.Schema
	// Access: Type.field or Type.* -> allow list (owners, consumers, ref
	// keys), from AnnGraphQLAccess; also query, mutation or subscription
	// -> the allow list of every root field of that operation type.
	Access map[string][]string
	// Policies: named rules (AnnGraphQLPolicies), name -> allow list
	// (owners, consumers, ref keys), resolved.
	Policies map[string][]string
	Options  GraphQLOptions
	// Safelist: the documents a safelist-mode API accepts
	// (AnnGraphQLSafelist), by hash, in the annotation's order.
	Safelist []PersistedDocument
}

// GraphQLOptions are the settings of AnnGraphQLOptions; zero values mean
// the defaults (docs/graphql.md).
type GraphQLOptions struct {
	Mode          string `yaml:"mode"`
	BodyLimit     int    `yaml:"bodyLimit"`
	MaxDepth      int    `yaml:"maxDepth"`
	MaxAliases    int    `yaml:"maxAliases"`
	MaxRootFields int    `yaml:"maxRootFields"`
	MaxFields     int    `yaml:"maxFields"`
	Introspection string `yaml:"introspection"`
	// PersistedQueries: apq (default), safelist or off;
	// PersistedQueryCache: documents the APQ store keeps (graphql_persisted.go).
	PersistedQueries    string `yaml:"persistedQueries"`
	PersistedQueryCache int    `yaml:"persistedQueryCache"`
}

// MaxGraphQLBodyLimit bounds bodyLimit: Envoy buffers the whole body of
// every request on the route.
const MaxGraphQLBodyLimit = 8 << 20

// ruleDirectives are Apollo Router's authorization directives, declared
// for SDLs that use them without declaring them.
var ruleDirectives = map[string]string{
	"authenticated":  "directive @authenticated on OBJECT | FIELD_DEFINITION | INTERFACE | SCALAR | ENUM",
	"requiresScopes": "directive @requiresScopes(scopes: [[String!]!]!) on OBJECT | FIELD_DEFINITION | INTERFACE | SCALAR | ENUM",
	"policy":         "directive @policy(policies: [[String!]!]!) on OBJECT | FIELD_DEFINITION | INTERFACE | SCALAR | ENUM",
}

// CompleteSDL is sdl with the rule directives it uses but does not
// declare appended. It fails only if sdl does not parse.
func CompleteSDL(sdl string) (string, error) {
	doc, err := parser.ParseSchema(&ast.Source{Name: "definition", Input: sdl})
	if err != nil {
		return "", err
	}
	var add []string
	for _, name := range []string{"authenticated", "policy", "requiresScopes"} {
		if doc.Directives.ForName(name) == nil {
			add = append(add, ruleDirectives[name])
		}
	}
	if len(add) == 0 {
		return sdl, nil
	}
	return sdl + "\n" + strings.Join(add, "\n") + "\n", nil
}

// parseGraphQL validates a GraphQL API's definition and annotations and
// sets e.GraphQL. An SDL that does not load is an error, so the entity's
// last good version (and schema) stays in force.
func parseGraphQL(e *Entity, n *yaml.Node) Problems {
	if e.Kind != KindAPI || e.Spec.Type != "graphql" {
		var ps Problems
		for _, k := range []string{AnnGraphQLAccess, AnnGraphQLOptions, AnnGraphQLSafelist, AnnGraphQLPolicies} {
			if _, ok := e.Annotation(k); ok {
				ps = append(ps, Problem{Severity: SeverityError, Line: lineOf(n, "metadata", "annotations", k), Field: "metadata.annotations[" + k + "]",
					Message: k + " is read only on an API with spec.type graphql", Fix: "move it to the GraphQL API entity, or remove it"})
			}
		}
		return ps
	}
	var ps Problems
	defLine := lineOf(n, "spec", "definition")
	bad := func(line int, field, msg, fix string) {
		ps = append(ps, Problem{Severity: SeverityError, Line: line, Field: field, Message: msg, Fix: fix})
	}
	sdl, ok := e.Spec.Definition.(string)
	if !ok || strings.TrimSpace(sdl) == "" {
		bad(defLine, "spec.definition", "a GraphQL API's definition must be its SDL as text", "write the schema inline: definition: |\n  type Query { ... }")
		return ps
	}
	full, err := CompleteSDL(sdl)
	var schema *ast.Schema
	if err == nil {
		schema, err = gqlparser.LoadSchema(&ast.Source{Name: "definition", Input: full})
	}
	if err != nil {
		sdlLine, msg := gqlErrorAt(err)
		line := defLine
		if line > 0 && sdlLine > 0 {
			line += sdlLine // a block scalar starts on the line after the key
		}
		bad(line, "spec.definition", "GraphQL SDL line "+strconv.Itoa(sdlLine)+": "+msg+"; the last good schema stays in force",
			"fix the schema at that line (check it with any GraphQL SDL parser); the rule directives @authenticated, @requiresScopes and @policy need no declaration")
		return ps
	}
	if schema.Query == nil {
		bad(defLine, "spec.definition", "the GraphQL schema has no Query type; the last good schema stays in force", "add type Query { ... } (or a schema { query: ... } definition)")
		return ps
	}
	g := &GraphQLAPI{SDL: full, Schema: schema}
	if v, ok := e.Annotation(AnnGraphQLPolicies); ok {
		named, errs := parseGraphQLPolicies(v, e.Ref().Namespace)
		for _, msg := range errs {
			bad(lineOf(n, "metadata", "annotations", AnnGraphQLPolicies), "metadata.annotations["+AnnGraphQLPolicies+"]", msg,
				"write one name per line with its allow list, e.g. release-managers: [owners, group:default/release]; a name is a plain word, not owners, consumers or a ref")
		}
		g.Policies = named
	}
	ps = append(ps, checkPolicyDirectives(schema, e.Ref().Namespace, defLine, g.Policies)...)
	if v, ok := e.Annotation(AnnGraphQLAccess); ok {
		acc, errs := parseGraphQLAccess(v, schema, e.Ref().Namespace, g.Policies)
		for _, msg := range errs {
			bad(lineOf(n, "metadata", "annotations", AnnGraphQLAccess), "metadata.annotations["+AnnGraphQLAccess+"]", msg,
				"write one Type.field, Type.* or operation type (query, mutation, subscription) per line with its allow list, e.g. Component.secrets: [owners, group:default/sre]")
		}
		g.Access = acc
	}
	if v, ok := e.Annotation(AnnGraphQLOptions); ok {
		opts, msg := parseGraphQLOptions(v)
		if msg != "" {
			bad(lineOf(n, "metadata", "annotations", AnnGraphQLOptions), "metadata.annotations["+AnnGraphQLOptions+"]", msg,
				"write a mapping of mode (reject, filter, dry-run), bodyLimit (bytes), maxDepth, maxAliases, maxRootFields, maxFields and introspection (owners, everyone)")
		}
		g.Options = opts
	}
	ps = append(ps, parsePersistedQueries(e, n, g)...)
	if ps.Errors() == 0 {
		e.GraphQL = g
	}
	return ps
}

// gqlErrorAt is the SDL line and message of a gqlparser error.
func gqlErrorAt(err error) (int, string) {
	var ge *gqlerror.Error
	if errors.As(err, &ge) {
		line := 0
		if len(ge.Locations) > 0 {
			line = ge.Locations[0].Line
		}
		return line, ge.Message
	}
	return 0, err.Error()
}

// checkPolicyDirectives: every @policy name must be owners, consumers, a
// user, group or component ref, or a named rule of AnnGraphQLPolicies (a
// name gatehouse cannot resolve would silently deny everyone). A name
// declared there whose list is invalid is reported there, not here.
func checkPolicyDirectives(s *ast.Schema, ns string, defLine int, named map[string][]string) Problems {
	var ps Problems
	check := func(where string, dl ast.DirectiveList) {
		for _, d := range dl.ForNames("policy") {
			line := defLine
			sdlLine := 0
			if d.Position != nil {
				sdlLine = d.Position.Line
				if defLine > 0 {
					line += sdlLine
				}
			}
			at := "@policy on " + where
			if sdlLine > 0 {
				at += " (SDL line " + strconv.Itoa(sdlLine) + ")"
			}
			for _, list := range directiveLists(d, "policies") {
				resolved := true
				for _, name := range list {
					if l, ok := named[name]; ok && len(l) == 0 {
						resolved = false // declared, invalid: reported on the annotation
						continue
					}
					if _, msg := resolvePolicy(name, ns, named); msg != "" {
						resolved = false
						ps = append(ps, Problem{Severity: SeverityError, Line: line, Field: "spec.definition",
							Message: at + ": " + msg,
							Fix:     "use owners, consumers, a ref such as group:default/sre or user:default/alice, or declare the name in " + AnnGraphQLPolicies + " (e.g. " + name + ": [group:default/sre])"})
					}
				}
				if _, msg := expandPolicies(list, ns, named); resolved && msg != "" {
					ps = append(ps, Problem{Severity: SeverityError, Line: line, Field: "spec.definition", Message: at + ": " + msg,
						Fix: "split the rule into several inner lists, or shorten the named rules it combines"})
				}
			}
		}
	}
	for _, name := range sortedTypeNames(s) {
		t := s.Types[name]
		check(name, t.Directives)
		for _, f := range t.Fields {
			check(name+"."+f.Name, f.Directives)
		}
	}
	return ps
}

// PolicyName resolves a @policy name or an allow-list entry: "owners",
// "consumers", or a ref key (user:, group:, component:).
func PolicyName(name, ns string) (string, string) {
	switch name {
	case "owners", "consumers":
		return name, ""
	}
	r, err := ParseRef(name, "", ns)
	if err != nil {
		return "", "policy " + quote(name) + " is not owners, consumers or a ref: " + err.Error()
	}
	if r.Kind != KindUser && r.Kind != KindGroup && r.Kind != KindComponent {
		return "", "policy " + quote(name) + " names kind " + r.Kind + "; only users, groups and components call APIs"
	}
	return r.Key(), ""
}

// directiveLists is the [[String]] argument arg of d.
func directiveLists(d *ast.Directive, arg string) [][]string {
	a := d.Arguments.ForName(arg)
	if a == nil || a.Value == nil {
		return nil
	}
	var out [][]string
	for _, outer := range a.Value.Children {
		var inner []string
		if outer.Value.Kind == ast.ListValue {
			for _, c := range outer.Value.Children {
				inner = append(inner, c.Value.Raw)
			}
		} else {
			inner = append(inner, outer.Value.Raw) // [String] coerced to [[String]]
		}
		out = append(out, inner)
	}
	return out
}

func sortedTypeNames(s *ast.Schema) []string {
	var out []string
	for name, t := range s.Types {
		if t.BuiltIn || strings.HasPrefix(name, "__") {
			continue
		}
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// SortedTypeNames is the schema's own (not built-in) types, sorted.
func SortedTypeNames(s *ast.Schema) []string { return sortedTypeNames(s) }

// policyNameRE is a named rule's name: a plain word, never a ref
// (kind:namespace/name) or a keyword.
var policyNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.-]{0,62}$`)

// parseGraphQLPolicies reads AnnGraphQLPolicies: name -> allow list of
// owners, consumers and refs (resolved to keys). A valid name whose list
// is invalid maps to nil, so the directives naming it are not reported
// twice (they never hold: resolvePolicy refuses it).
func parseGraphQLPolicies(v, ns string) (map[string][]string, []string) {
	var raw map[string][]string
	if err := yaml.Unmarshal([]byte(v), &raw); err != nil {
		return nil, []string{"invalid YAML: " + trimYAMLErr(err) + " (expected a mapping of a rule name to a list)"}
	}
	out := map[string][]string{}
	var errs []string
	for _, name := range sortedStringKeys(raw) {
		switch {
		case name == "owners" || name == "consumers":
			errs = append(errs, "named rule "+quote(name)+" would shadow the keyword "+name+"; choose another name")
			continue
		case strings.ContainsAny(name, ":/"):
			errs = append(errs, "named rule "+quote(name)+" looks like a ref (kind:namespace/name); a name is a plain word such as release-managers")
			continue
		case !policyNameRE.MatchString(name):
			errs = append(errs, "named rule "+quote(name)+" is not a plain name (a letter, then letters, digits, '-', '_' or '.', at most 63)")
			continue
		}
		out[name] = nil
		if len(raw[name]) == 0 {
			errs = append(errs, "named rule "+quote(name)+" has an empty allow list (it would hold for nobody); list owners, consumers or refs")
			continue
		}
		var keys []string
		ok := true
		for _, entry := range raw[name] {
			if _, other := raw[entry]; other {
				errs = append(errs, "named rule "+quote(name)+": "+quote(entry)+" is another named rule; named rules list owners, consumers and refs only (copy its entries)")
				ok = false
				continue
			}
			k, msg := PolicyName(entry, ns)
			if msg != "" {
				errs = append(errs, "named rule "+quote(name)+": "+msg)
				ok = false
				continue
			}
			if !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
		if ok {
			out[name] = keys
		}
	}
	return out, errs
}

// OperationTypes are the keys of AnnGraphQLAccess that name an operation
// type rather than Type.field.
var OperationTypes = []string{"query", "mutation", "subscription"}

// OperationRoots maps the operation types an AnnGraphQLAccess key may name
// to the schema's root type for it (nil: the schema has none; the names
// are the schema's own, schema { query: MyQuery }).
func OperationRoots(s *ast.Schema) map[string]*ast.Definition {
	return map[string]*ast.Definition{"query": s.Query, "mutation": s.Mutation, "subscription": s.Subscription}
}

func parseGraphQLAccess(v string, s *ast.Schema, ns string, named map[string][]string) (map[string][]string, []string) {
	var raw map[string][]string
	if err := yaml.Unmarshal([]byte(v), &raw); err != nil {
		return nil, []string{"invalid YAML: " + trimYAMLErr(err) + " (expected a mapping of Type.field to a list)"}
	}
	out := map[string][]string{}
	var errs []string
	for _, key := range sortedStringKeys(raw) {
		typ, field, ok := strings.Cut(key, ".")
		t := s.Types[typ]
		root, isOp := OperationRoots(s)[key]
		switch {
		case isOp && root == nil:
			errs = append(errs, "operation type "+key+": the schema has no "+key+" type (add one, or remove the key)")
			continue
		case isOp && len(raw[key]) == 0:
			errs = append(errs, quote(key)+" has an empty allow list (nobody could use it); list owners, consumers or refs")
			continue
		case isOp:
		case !ok || typ == "" || field == "":
			errs = append(errs, quote(key)+" is not Type.field, Type.* or an operation type (query, mutation, subscription)")
			continue
		case t == nil:
			msg := "type " + quote(typ) + " is not in the schema"
			if c := suggest.Closest(typ, sortedTypeNames(s)); c != "" {
				msg += " (did you mean " + c + "?)"
			}
			errs = append(errs, msg)
			continue
		case field != "*" && t.Fields.ForName(field) == nil:
			var names []string
			for _, f := range t.Fields {
				names = append(names, f.Name)
			}
			msg := "field " + quote(key) + " is not in the schema"
			if c := suggest.Closest(field, names); c != "" {
				msg += " (did you mean " + typ + "." + c + "?)"
			}
			errs = append(errs, msg)
			continue
		case len(raw[key]) == 0:
			errs = append(errs, quote(key)+" has an empty allow list (nobody could read it); list owners, consumers or refs")
			continue
		}
		for _, name := range raw[key] {
			ks, msg := resolvePolicy(name, ns, named)
			if msg != "" {
				errs = append(errs, key+": "+msg)
				continue
			}
			for _, k := range ks {
				if !slices.Contains(out[key], k) {
					out[key] = append(out[key], k)
				}
			}
		}
	}
	return out, errs
}

func sortedStringKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func parseGraphQLOptions(v string) (GraphQLOptions, string) {
	var o GraphQLOptions
	dec := yaml.NewDecoder(strings.NewReader(v))
	dec.KnownFields(true)
	if err := dec.Decode(&o); err != nil {
		return GraphQLOptions{}, "invalid options: " + trimYAMLErr(err)
	}
	switch {
	case o.Mode != "" && o.Mode != "reject" && o.Mode != "dry-run" && o.Mode != "filter":
		return GraphQLOptions{}, "mode " + quote(o.Mode) + " is not reject, filter or dry-run"
	case o.Introspection != "" && o.Introspection != "owners" && o.Introspection != "everyone":
		return GraphQLOptions{}, "introspection " + quote(o.Introspection) + " is not owners or everyone"
	case o.BodyLimit < 0 || o.BodyLimit > MaxGraphQLBodyLimit:
		return GraphQLOptions{}, "bodyLimit " + strconv.Itoa(o.BodyLimit) + " is out of range (1 to " + strconv.Itoa(MaxGraphQLBodyLimit) + " bytes)"
	case o.MaxDepth < 0 || o.MaxAliases < 0 || o.MaxRootFields < 0 || o.MaxFields < 0:
		return GraphQLOptions{}, "limits must be positive"
	}
	return o, ""
}

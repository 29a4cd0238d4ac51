package extauthz

import (
	"bytes"
	"encoding/json"
	"net/url"
	"sort"
	"strings"
	"sync"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/formatter"
	"github.com/vektah/gqlparser/v2/parser"
	"github.com/vektah/gqlparser/v2/validator"

	"github.com/gatehouse-dev/gatehouse/model"
)

// GraphQL filter mode (docs/graphql.md, "Filter mode"), the GraphQL
// inspector's body filter on the ext_proc server: the fields the subject
// may not read are removed from the operation before the upstream sees
// it, and the answer gets null at each of them with one error each, at
// the path the caller's own document gives it (aliases included).
//
// The rewrite keeps the document valid for the upstream: a field whose
// every sub-field is removed keeps a __typename (under injectedKey, which
// the answer never shows), fragments and inline fragments left empty are
// dropped with their spreads, fragments and variables no longer used are
// removed (and the variables' values with them), and an operation left
// with nothing is answered by gatehouse without calling the upstream.
// Where a removed field sits under a narrower type condition (`... on T`
// in an interface or union selection), __typename is asked too, so the
// null lands on objects of that type only.

func init() { RegisterBodyFilter(model.InspectorGraphQL, graphqlFilter{}) }

// injectedKey is the response key of the __typename gatehouse adds; a
// document that uses it itself is refused.
const injectedKey = "_gatehouse_typename"

type graphqlFilter struct{}

func (graphqlFilter) FilterRequest(in FilterInput) FilterOutput {
	req := in.Request
	rp := req.policy
	if rp == nil || rp.gql == nil || rp.gql.schema == nil || rp.gql.Mode != model.GraphQLFilter {
		return FilterOutput{}
	}
	forbidden := forbiddenFields(rp, in.Subject, req)
	if len(forbidden) == 0 {
		return FilterOutput{}
	}
	return filterGraphQL(rp.gql, req, forbidden)
}

// forbiddenFields are the fields ("Type.field") of the request that a
// rule refuses to any principal of the subject.
func forbiddenFields(rp *routePolicy, sub *Subject, req *Request) map[string]bool {
	ops, _, deny := inspectGraphQL(req)
	if deny != nil {
		return nil // Check refused it already; never reached
	}
	var out map[string]bool
	for _, pr := range sub.chain() {
		if pr.p == nil {
			continue
		}
		for _, op := range ops {
			if _, ok := fieldRuleFails(rp, pr.p, op.Name); !ok {
				if out == nil {
					out = map[string]bool{}
				}
				out[op.Name] = true
			}
		}
	}
	return out
}

// filterGraphQL rewrites the request's operations without the forbidden
// fields and plans the answer's nulls and errors. The request is read as
// the inspector read it (readGraphQL, persisted queries resolved), so the
// documents rewritten are the ones Check decided.
func filterGraphQL(g *gqlPolicy, req *Request, forbidden map[string]bool) FilterOutput {
	reqs, why := readGraphQL(req)
	if why != "" {
		return refuseFilter()
	}
	for i := range reqs {
		if pq := g.resolvePersisted(&reqs[i]); pq.refusal != nil || pq.notFound {
			return refuseFilter() // Check let it through a moment ago: never expected
		}
	}
	if req.Method != "POST" {
		return filterGET(g, req, reqs[0], forbidden)
	}
	body := bytes.TrimSpace(req.Body)
	switch {
	case len(body) > 0 && body[0] == '[':
		var items []json.RawMessage
		if json.Unmarshal(body, &items) != nil || len(items) != len(reqs) {
			return refuseFilter()
		}
		return filterBatch(g, items, reqs, forbidden)
	case len(body) > 0 && body[0] == '{' && json.Valid(body):
		it, err := filterItem(g, body, reqs[0], forbidden)
		if err != nil {
			return FilterOutput{Immediate: gqlAnswer(400, err)}
		}
		if it.answer != nil {
			return FilterOutput{Immediate: &FilterAnswer{Status: 200, ContentType: "application/json", Body: it.answer}}
		}
		return FilterOutput{Body: it.body, Response: &gqlResponseFilter{items: []*filteredItem{it}}}
	}
	// application/graphql: the body is the document.
	d, err := rewriteCached(g, reqs[0].query, "", forbidden)
	if err != nil {
		return FilterOutput{Immediate: gqlAnswer(400, err)}
	}
	it := &filteredItem{plan: d.plan, errs: d.errs}
	if d.empty {
		return FilterOutput{Immediate: &FilterAnswer{Status: 200, ContentType: "application/json", Body: it.synthesize()}}
	}
	if !d.changed {
		return FilterOutput{}
	}
	return FilterOutput{Body: []byte(d.query), Response: &gqlResponseFilter{items: []*filteredItem{it}}}
}

// maxRewrittenURL: a rewritten GET whose query string would be longer is
// refused (Envoy's request headers are 60 KiB at most by default, and the
// printed document may be longer than the one sent).
const maxRewrittenURL = 32 << 10

// filterGET rewrites a GET's document in its URL: only the query string
// changes (the path is the client's, so the route Envoy chose stays the
// one decided), the query parameter gets the rewritten document, the
// variables it no longer uses leave the variables parameter, a persisted
// query's hash leaves extensions (the text goes instead, as for a POST),
// and every other parameter stays as the client wrote it.
func filterGET(g *gqlPolicy, req *Request, r gqlRequest, forbidden map[string]bool) FilterOutput {
	d, errs := rewriteCached(g, r.query, r.operationName, forbidden)
	if errs != nil {
		return FilterOutput{Immediate: gqlAnswer(400, errs)}
	}
	it := &filteredItem{plan: d.plan, errs: d.errs}
	if d.empty {
		return FilterOutput{Immediate: &FilterAnswer{Status: 200, ContentType: "application/json", Body: it.synthesize()}}
	}
	if !d.changed {
		return FilterOutput{}
	}
	q, why := rewriteURLQuery(req.Query, d)
	if why != "" {
		return FilterOutput{Immediate: gqlAnswer(400, badFilter(why))}
	}
	return FilterOutput{URLQuery: q, Response: &gqlResponseFilter{items: []*filteredItem{it}}}
}

// rewriteURLQuery is the raw query string raw with the rewritten document
// d: the parameters query, variables and extensions re-encoded
// (url.QueryEscape), every other one byte for byte as it was.
func rewriteURLQuery(raw string, d *rewritten) (string, string) {
	var parts []string
	seenVars, hasQuery := false, false
	for _, part := range strings.Split(raw, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		key, err1 := url.QueryUnescape(k)
		val, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil {
			return "", "the query string does not parse"
		}
		switch key {
		case "query":
			if hasQuery {
				return "", "query is given twice"
			}
			hasQuery = true
			part = "query=" + url.QueryEscape(d.query)
		case "variables":
			if seenVars {
				// Which one the server reads is its own: neither is sent.
				return "", "variables is given twice"
			}
			seenVars = true
			if len(d.droppedVars) == 0 || val == "" || val == "null" {
				break
			}
			var vars map[string]json.RawMessage
			if json.Unmarshal([]byte(val), &vars) != nil {
				break // the upstream refuses it as it would have
			}
			for name := range d.droppedVars {
				delete(vars, name)
			}
			b, _ := json.Marshal(vars)
			part = "variables=" + url.QueryEscape(string(b))
		case "extensions":
			var e map[string]json.RawMessage
			if val == "" || val == "null" || json.Unmarshal([]byte(val), &e) != nil {
				break // readExtensions read it as none
			}
			if _, ok := e["persistedQuery"]; !ok {
				break
			}
			delete(e, "persistedQuery")
			if len(e) == 0 {
				continue
			}
			b, _ := json.Marshal(e)
			part = "extensions=" + url.QueryEscape(string(b))
		}
		parts = append(parts, part)
	}
	if !hasQuery {
		// A persisted query sent by its hash alone: the text goes.
		parts = append(parts, "query="+url.QueryEscape(d.query))
	}
	out := strings.Join(parts, "&")
	if len(out) > maxRewrittenURL {
		return "", "the rewritten document is too long for a URL: send it with POST"
	}
	return out, ""
}

func filterBatch(g *gqlPolicy, items []json.RawMessage, reqs []gqlRequest, forbidden map[string]bool) FilterOutput {
	out := make([]*filteredItem, len(items))
	bodies := make([]json.RawMessage, len(items))
	upstream := false
	for i, raw := range items {
		it, err := filterItem(g, raw, reqs[i], forbidden)
		if err != nil {
			return FilterOutput{Immediate: gqlAnswer(400, err)}
		}
		out[i], bodies[i] = it, it.body
		if it.answer == nil {
			upstream = true
		} else {
			// Answered by gatehouse: the upstream gets a question with
			// nothing in it, whose answer is replaced.
			bodies[i] = json.RawMessage(`{"query":"{ ` + injectedKey + `: __typename }"}`)
		}
	}
	if !upstream {
		answers := make([]json.RawMessage, len(out))
		for i, it := range out {
			answers[i] = it.answer
		}
		b, _ := json.Marshal(answers)
		return FilterOutput{Immediate: &FilterAnswer{Status: 200, ContentType: "application/json", Body: b}}
	}
	b, _ := json.Marshal(bodies)
	return FilterOutput{Body: b, Response: &gqlResponseFilter{items: out, batch: true}}
}

// refuseFilter: a body Check read but this filter cannot (never expected).
func refuseFilter() FilterOutput {
	return FilterOutput{Immediate: gqlAnswer(400, []GraphQLError{{Message: "the request cannot be filtered", Extensions: map[string]string{"code": gqlBadRequest}}})}
}

// filteredItem is one operation request after the rewrite: the body the
// upstream gets (body; the original's when nothing changed), or the answer
// gatehouse gives in its place (answer), and what to do to its answer.
type filteredItem struct {
	body   []byte
	answer []byte
	plan   *planNode
	errs   []GraphQLError
}

// filterItem rewrites one JSON operation request (r: as the inspector
// read it, its document resolved when it came by hash). A rewritten
// document goes as text, without extensions.persistedQuery (its hash is
// the original's).
func filterItem(g *gqlPolicy, raw []byte, r gqlRequest, forbidden map[string]bool) (*filteredItem, []GraphQLError) {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return nil, badFilter("each operation is a JSON object")
	}
	d, errs := rewriteCached(g, r.query, r.operationName, forbidden)
	if errs != nil {
		return nil, errs
	}
	it := &filteredItem{body: raw, plan: d.plan, errs: d.errs}
	if d.empty {
		it.answer = it.synthesize()
		return it, nil
	}
	if !d.changed {
		return it, nil
	}
	m["query"], _ = json.Marshal(d.query)
	if v := m["variables"]; len(d.droppedVars) > 0 && v != nil && string(v) != "null" {
		var vars map[string]json.RawMessage
		if json.Unmarshal(v, &vars) == nil {
			for name := range d.droppedVars {
				delete(vars, name)
			}
			m["variables"], _ = json.Marshal(vars)
		}
	}
	if ext := m["extensions"]; ext != nil && string(ext) != "null" {
		var e map[string]json.RawMessage
		if json.Unmarshal(ext, &e) == nil {
			delete(e, "persistedQuery")
			if len(e) == 0 {
				delete(m, "extensions")
			} else {
				m["extensions"], _ = json.Marshal(e)
			}
		}
	}
	it.body, _ = json.Marshal(m)
	return it, nil
}

func badFilter(msg string) []GraphQLError {
	return []GraphQLError{{Message: msg, Extensions: map[string]string{"code": gqlBadRequest}}}
}

// synthesize is the answer to an operation whose every root field is
// removed: null at each (data itself null when one of them is non-null),
// and the errors.
func (it *filteredItem) synthesize() []byte {
	data := map[string]any{}
	var nullData bool
	for _, n := range it.plan.nulls {
		data[n.key] = nil
		nullData = nullData || n.nonNull
	}
	ans := map[string]any{"data": data, "errors": it.errs}
	if nullData {
		ans["data"] = nil
	}
	return marshalAnswer(ans)
}

func marshalAnswer(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return bytes.TrimRight(b.Bytes(), "\n")
}

// gqlAnswer is a GraphQL-shaped answer with only errors.
func gqlAnswer(status int, errs []GraphQLError) *FilterAnswer {
	return &FilterAnswer{Status: status, ContentType: "application/json", Body: marshalAnswer(map[string]any{"errors": errs})}
}

// rewritten is one document after the rewrite.
type rewritten struct {
	query       string          // the document to send
	changed     bool            // anything removed
	empty       bool            // the selected operation has nothing left
	droppedVars map[string]bool // variables of the selected operation no longer used
	plan        *planNode       // the answer's nulls
	errs        []GraphQLError  // one per removed field occurrence
}

// rewrites remembers what documents came to for a set of forbidden fields
// (clients repeat their few documents, and callers with the same rights
// the same sets), per API and model; read only once stored.
var rewrites struct {
	sync.Mutex
	m map[rewriteKey]*rewritten
}

type rewriteKey struct {
	g   *gqlPolicy
	doc string // operationName, document and the forbidden fields, each 0-separated
}

// maxRewriteMemo: documents up to this size are remembered.
const maxRewriteMemo = 4 << 10

// rewriteCached is rewriteDocument, remembered (documents up to
// maxRewriteMemo bytes, at most maxDocs of them).
func rewriteCached(g *gqlPolicy, query, opName string, forbidden map[string]bool) (*rewritten, []GraphQLError) {
	if len(query) > maxRewriteMemo {
		return rewriteDocument(g.schema, query, opName, forbidden)
	}
	names := make([]string, 0, len(forbidden))
	for n := range forbidden {
		names = append(names, n)
	}
	sort.Strings(names)
	k := rewriteKey{g, opName + "\x00" + query + "\x00" + strings.Join(names, "\x00")}
	rewrites.Lock()
	d := rewrites.m[k]
	rewrites.Unlock()
	if d != nil {
		return d, nil
	}
	d, errs := rewriteDocument(g.schema, query, opName, forbidden)
	if errs != nil {
		return nil, errs
	}
	rewrites.Lock()
	if rewrites.m == nil || len(rewrites.m) >= maxDocs {
		rewrites.m = make(map[rewriteKey]*rewritten)
	}
	rewrites.m[k] = d
	rewrites.Unlock()
	return d, nil
}

// rewriteDocument removes the forbidden fields from a document (already
// read and validated by Check, which is done again here on a fresh AST).
func rewriteDocument(schema *ast.Schema, query, opName string, forbidden map[string]bool) (*rewritten, []GraphQLError) {
	doc, err := parser.ParseQuery(&ast.Source{Input: query})
	if err != nil {
		return nil, badFilter("the document does not parse")
	}
	if errs := validator.Validate(schema, doc); len(errs) > 0 {
		return nil, badFilter("the document is not valid against the schema")
	}
	op := pickOperation(doc, opName)
	if op == nil {
		return nil, badFilter("operationName names no operation of the document")
	}
	w := pathWalk{schema: schema, forbidden: forbidden, inject: map[*ast.Field]bool{}, seen: map[string]bool{}}
	d := &rewritten{plan: &planNode{}}
	w.walk(op.SelectionSet, nil, d.plan, rootType(schema, op.Operation), nil, nil)
	if w.reserved {
		return nil, badFilter("the alias " + injectedKey + " is reserved")
	}
	d.errs = w.errs
	p := pruner{forbidden: forbidden, inject: w.inject, emptyFrags: map[string]bool{}}
	// Fragments may spread fragments: prune until no fragment empties.
	for again := true; again; {
		again = false
		for _, f := range doc.Fragments {
			if f.SelectionSet = p.prune(f.SelectionSet); len(f.SelectionSet) == 0 && !p.emptyFrags[f.Name] {
				p.emptyFrags[f.Name], again = true, true
			}
		}
	}
	keep := doc.Operations[:0]
	for _, o := range doc.Operations {
		o.SelectionSet = p.prune(o.SelectionSet)
		if len(o.SelectionSet) == 0 {
			if o == op {
				d.empty = true
			}
			continue // an operation that is not run, left with nothing
		}
		keep = append(keep, o)
	}
	doc.Operations = keep
	d.changed = p.changed || len(p.emptyFrags) > 0
	if d.empty || !d.changed {
		return d, nil
	}
	dropUnused(doc, op, d)
	var b strings.Builder
	formatter.NewFormatter(&b, formatter.WithIndent(" ")).FormatQueryDocument(doc)
	d.query = b.String()
	return d, nil
}

func rootType(s *ast.Schema, op ast.Operation) *ast.Definition {
	switch op {
	case ast.Mutation:
		return s.Mutation
	case ast.Subscription:
		return s.Subscription
	}
	return s.Query
}

// gqlFieldName is a field's name as the GraphQL inspector names its
// operations (appendFields): "Type.field", "__schema", "__type", or ""
// for __typename (always open).
func gqlFieldName(f *ast.Field) string {
	switch {
	case f.Name == "__typename":
		return ""
	case f.Name == "__schema" || f.Name == "__type":
		return f.Name
	case f.ObjectDefinition != nil:
		return f.ObjectDefinition.Name + "." + f.Name
	}
	return "?." + f.Name
}

// pathWalk follows the selected operation through its fragments and
// records where each forbidden field lands in the answer.
type pathWalk struct {
	schema    *ast.Schema
	forbidden map[string]bool
	inject    map[*ast.Field]bool // fields that get __typename (narrowed removals)
	errs      []GraphQLError
	seen      map[string]bool // error paths given
	reserved  bool            // the document uses injectedKey
}

// walk: set is selected on objects of type parent (the enclosing field's
// type; enclosing nil at the root), under the type condition scope (nil:
// parent's own).
func (w *pathWalk) walk(set ast.SelectionSet, path []string, node *planNode, parent, scope *ast.Definition, enclosing *ast.Field) {
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			if s.Alias == injectedKey {
				w.reserved = true
			}
			at := append(path[:len(path):len(path)], s.Alias)
			if name := gqlFieldName(s); name != "" && w.forbidden[name] {
				n := planNull{key: s.Alias, nonNull: s.Definition != nil && s.Definition.Type.NonNull}
				if scope != nil && parent != nil && parent.IsAbstractType() && scope.Name != parent.Name && enclosing != nil {
					n.types = map[string]bool{}
					for _, t := range w.schema.GetPossibleTypes(scope) {
						n.types[t.Name] = true
					}
					w.inject[enclosing] = true
				}
				node.nulls = append(node.nulls, n)
				if key := strings.Join(at, "\x00"); !w.seen[key] {
					w.seen[key] = true
					w.errs = append(w.errs, GraphQLError{Message: "Unauthorized field or type", Path: at, Extensions: map[string]string{"code": gqlUnauthorized}})
				}
				continue
			}
			if len(s.SelectionSet) > 0 && s.Definition != nil {
				t := w.schema.Types[s.Definition.Type.Name()]
				w.walk(s.SelectionSet, at, node.kid(s.Alias, s.Definition.Type), t, nil, s)
			}
		case *ast.InlineFragment:
			sc := scope
			if s.TypeCondition != "" {
				sc = w.schema.Types[s.TypeCondition]
			}
			w.walk(s.SelectionSet, path, node, parent, sc, enclosing)
		case *ast.FragmentSpread:
			if s.Definition != nil {
				w.walk(s.Definition.SelectionSet, path, node, parent, w.schema.Types[s.Definition.TypeCondition], enclosing)
			}
		}
	}
}

// pruner removes forbidden fields from selection sets.
type pruner struct {
	forbidden  map[string]bool
	inject     map[*ast.Field]bool
	emptyFrags map[string]bool
	changed    bool
}

func (p *pruner) prune(set ast.SelectionSet) ast.SelectionSet {
	out := set[:0]
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			if name := gqlFieldName(s); name != "" && p.forbidden[name] {
				p.changed = true
				continue
			}
			if len(s.SelectionSet) > 0 {
				s.SelectionSet = p.prune(s.SelectionSet)
				if len(s.SelectionSet) == 0 || p.inject[s] {
					// A field keeps a selection: __typename, never shown.
					s.SelectionSet = append(s.SelectionSet, &ast.Field{Alias: injectedKey, Name: "__typename"})
					delete(p.inject, s)
				}
			}
		case *ast.InlineFragment:
			if s.SelectionSet = p.prune(s.SelectionSet); len(s.SelectionSet) == 0 {
				continue
			}
		case *ast.FragmentSpread:
			if p.emptyFrags[s.Name] {
				continue
			}
		}
		out = append(out, sel)
	}
	return out
}

// dropUnused removes the fragments no operation spreads any more and each
// operation's variables it no longer uses (d.droppedVars: the selected
// operation's).
func dropUnused(doc *ast.QueryDocument, selected *ast.OperationDefinition, d *rewritten) {
	used := map[string]bool{}
	for _, o := range doc.Operations {
		vars := map[string]bool{}
		collectUses(doc, o.SelectionSet, used, vars, map[string]bool{})
		keep := o.VariableDefinitions[:0]
		for _, v := range o.VariableDefinitions {
			if vars[v.Variable] || directivesUse(o.Directives, v.Variable) {
				keep = append(keep, v)
				continue
			}
			if o == selected {
				if d.droppedVars == nil {
					d.droppedVars = map[string]bool{}
				}
				d.droppedVars[v.Variable] = true
			}
		}
		o.VariableDefinitions = keep
	}
	frags := doc.Fragments[:0]
	for _, f := range doc.Fragments {
		if used[f.Name] {
			frags = append(frags, f)
		}
	}
	doc.Fragments = frags
}

// collectUses records the fragments set spreads (transitively) and the
// variables its arguments and directives use.
func collectUses(doc *ast.QueryDocument, set ast.SelectionSet, frags, vars, onStack map[string]bool) {
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			for _, a := range s.Arguments {
				valueVars(a.Value, vars)
			}
			dirVars(s.Directives, vars)
			collectUses(doc, s.SelectionSet, frags, vars, onStack)
		case *ast.InlineFragment:
			dirVars(s.Directives, vars)
			collectUses(doc, s.SelectionSet, frags, vars, onStack)
		case *ast.FragmentSpread:
			dirVars(s.Directives, vars)
			frags[s.Name] = true
			if f := doc.Fragments.ForName(s.Name); f != nil && !onStack[s.Name] {
				onStack[s.Name] = true
				dirVars(f.Directives, vars)
				collectUses(doc, f.SelectionSet, frags, vars, onStack)
				delete(onStack, s.Name)
			}
		}
	}
}

func dirVars(dl ast.DirectiveList, vars map[string]bool) {
	for _, d := range dl {
		for _, a := range d.Arguments {
			valueVars(a.Value, vars)
		}
	}
}

func directivesUse(dl ast.DirectiveList, name string) bool {
	vars := map[string]bool{}
	dirVars(dl, vars)
	return vars[name]
}

func valueVars(v *ast.Value, vars map[string]bool) {
	if v == nil {
		return
	}
	if v.Kind == ast.Variable {
		vars[v.Raw] = true
	}
	for _, c := range v.Children {
		valueVars(c.Value, vars)
	}
}

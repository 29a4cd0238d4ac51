package extauthz

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
	"github.com/vektah/gqlparser/v2/validator"

	"github.com/gatehouse-dev/gatehouse/model"
)

// The GraphQL inspector (docs/graphql.md): reads a GraphQL request (POST
// JSON, single or batched; POST application/graphql; GET ?query=),
// enforces the API's limits, validates every operation against the
// schema and yields one Operation per distinct field (Name "Type.field",
// Method the operation type, At the response path of its first
// occurrence). Every operation of a document is authorized, whichever
// operationName selects (a superset of what the server runs). Anything
// it cannot read is refused (400); nothing is guessed.

// GraphQL error codes of the answers gatehouse gives.
const (
	gqlParseFailed      = "GRAPHQL_PARSE_FAILED"
	gqlValidationFailed = "GRAPHQL_VALIDATION_FAILED"
	gqlBadRequest       = "BAD_REQUEST"
	gqlLimitExceeded    = "GRAPHQL_LIMIT_EXCEEDED"
	gqlPersistedQuery   = "PERSISTED_QUERY_NOT_SUPPORTED"
	gqlUnauthorized     = "UNAUTHORIZED_FIELD_OR_TYPE"
)

// maxBatch bounds the operations of one batched request.
const maxBatch = 20

// maxFieldNames bounds the fields an audit record names.
const maxFieldNames = 32

// fieldNames are the first maxFieldNames fields of ops.
func fieldNames(ops []Operation) []string {
	out := make([]string, 0, min(len(ops), maxFieldNames))
	for _, op := range ops[:min(len(ops), maxFieldNames)] {
		out = append(out, op.Name)
	}
	return out
}

// maxDenied bounds the denied fields an audit record and an answer list.
const maxDenied = 10

// gqlPolicy is a route's GraphQL policy with its schema parsed (once per
// model, shared by the routes of one API).
type gqlPolicy struct {
	*model.GraphQLPolicy
	schema *ast.Schema // nil: the SDL did not load here (every request 503)
	fields map[string][]model.GraphQLRequirement
	// apq: the API's APQ store (the server's, kept across models, once
	// attachPersisted ran); safelist: hash -> document in safelist mode.
	apq      *apqStore
	safelist map[string]string

	mu       sync.Mutex
	docs     map[string]*gqlDoc           // by operationName and document
	requests map[gqlMemoKey]*gqlInspected // by method, path, query string and body
}

// newGQLPolicies parses each distinct schema of a model once.
type gqlCache map[string]*ast.Schema

func (c gqlCache) policy(p *model.GraphQLPolicy) *gqlPolicy {
	s, ok := c[p.Schema]
	if !ok {
		s, _ = gqlparser.LoadSchema(&ast.Source{Name: "definition", Input: p.Schema})
		c[p.Schema] = s
	}
	g := &gqlPolicy{GraphQLPolicy: p, schema: s, fields: make(map[string][]model.GraphQLRequirement, len(p.Fields))}
	for _, f := range p.Fields {
		g.fields[f.Name] = f.Requires
	}
	g.apq = newAPQStore(p.Persisted.Cache)
	if len(p.Persisted.Safelist) > 0 {
		g.safelist = make(map[string]string, len(p.Persisted.Safelist))
		for _, d := range p.Persisted.Safelist {
			g.safelist[d.Hash] = d.Document
		}
	}
	return g
}

// GraphQLInfo is what a GraphQL request asked and what became of it: the
// audit record's graphql part, explain's, and the errors of a denial.
type GraphQLInfo struct {
	OperationType string `json:"operation_type,omitempty"`
	OperationName string `json:"operation_name,omitempty"`
	// DocumentHash: sha256 (first 16 bytes, hex) of the document text(s).
	DocumentHash string `json:"document_hash,omitempty"`
	Operations   int    `json:"operations,omitempty"` // more than 1: a batch or a multi-operation document
	Fields       int    `json:"fields,omitempty"`     // distinct Type.field asked
	// FieldNames: the distinct Type.field asked, in document order, at
	// most maxFieldNames (the audit's field_names).
	FieldNames []string `json:"field_names,omitempty"`
	Mode       string   `json:"mode,omitempty"`
	// Denied: the forbidden fields (at most maxDenied) and the rule of each.
	Denied []DeniedField `json:"denied_fields,omitempty"`
	// WouldDeny: dry-run mode let a request with forbidden fields pass.
	WouldDeny bool `json:"would_deny,omitempty"`
	// Errors are the answer's GraphQL errors when the request is refused.
	Errors []GraphQLError `json:"errors,omitempty"`
}

// DeniedField is one forbidden field and the rule that forbids it.
type DeniedField struct {
	Field string `json:"field"`
	Rule  string `json:"rule"`
}

// GraphQLError is one error of a GraphQL-shaped answer.
type GraphQLError struct {
	Message    string            `json:"message"`
	Path       []string          `json:"path,omitempty"`
	Extensions map[string]string `json:"extensions"`
}

type graphqlInspector struct{}

func (graphqlInspector) Operations(req Request) ([]Operation, *Result) {
	ops, _, deny := inspectGraphQL(&req)
	return ops, deny
}

// gqlRequest is one operation request of a body or a URL.
type gqlRequest struct {
	query, operationName string
	pq                   persistedExt // extensions.persistedQuery
}

// inspectGraphQL reads and checks a GraphQL request: its operations, or
// the 400 (or 503) that refuses it, with the GraphQL error.
func inspectGraphQL(req *Request) ([]Operation, *GraphQLInfo, *Result) {
	g := req.policy.gql
	if g == nil || g.schema == nil {
		return nil, &GraphQLInfo{}, &Result{Status: 503, Reason: "graphql_schema_unavailable", Steps: []Step{{Rule: "graphql", Why: "the route's GraphQL schema did not load"}}}
	}
	// A request seen before (many callers send the same few): its
	// reading, without the JSON decoding. The answer's info is a copy (the
	// caller adds the denied fields to it). The key is the document's hash
	// the decision cache key computed already, not the body itself.
	key := gqlMemoKey{req.Method, req.Path, req.documentKey()}
	g.mu.Lock()
	r := g.requests[key]
	g.mu.Unlock()
	if r == nil {
		r = g.inspect(req)
		if !r.volatile {
			g.mu.Lock()
			if g.requests == nil || len(g.requests) >= maxDocs {
				g.requests = make(map[gqlMemoKey]*gqlInspected)
			}
			g.requests[key] = r
			g.mu.Unlock()
		}
	}
	g.rememberPersisted(r.remember)
	info := *r.info
	if r.deny != nil {
		d := *r.deny
		d.GraphQL = &info
		return nil, &info, &d
	}
	return r.ops, &info, nil
}

// gqlMemoKey is what a request is remembered by: its method, path and
// Request.documentKey (a hash of the query string and the body).
type gqlMemoKey struct{ method, path, doc string }

// gqlInspected is what one request came to; read only once stored.
type gqlInspected struct {
	ops  []Operation
	info *GraphQLInfo
	deny *Result
	// remember: the persisted documents to keep in the APQ store;
	// volatile: what it came to depends on the store (a hash-only
	// request not found), so it is not remembered.
	remember []model.GraphQLDocument
	volatile bool
}

// inspect reads and checks a request (inspectGraphQL without the memory).
func (g *gqlPolicy) inspect(req *Request) *gqlInspected {
	out := &gqlInspected{}
	out.ops, out.info, out.deny = g.inspectOps(req, out)
	if out.deny != nil {
		out.remember = nil
	}
	return out
}

func (g *gqlPolicy) inspectOps(req *Request, out *gqlInspected) ([]Operation, *GraphQLInfo, *Result) {
	info := &GraphQLInfo{Mode: g.Mode}
	reqs, why := readGraphQL(req)
	if why != "" {
		return nil, info, gqlRefuse(info, 400, "graphql_bad_request", gqlBadRequest, why, "")
	}
	h := sha256.New()
	var ops []Operation
	var seen map[string]bool // across the operations of a batch
	if len(reqs) > 1 {
		seen = map[string]bool{}
	}
	for i, r := range reqs {
		pq := g.resolvePersisted(&r)
		switch {
		case pq.refusal != nil:
			f := pq.refusal
			return nil, info, gqlRefuse(info, pq.status, f.reason, f.code, f.msg, f.detail)
		case pq.notFound:
			out.volatile = true
			return nil, info, pqNotFound(info)
		}
		if r.query == "" {
			return nil, info, gqlRefuse(info, 400, "graphql_bad_request", gqlBadRequest, "the request has no query", "")
		}
		if i > 0 {
			h.Write([]byte{0})
		}
		h.Write([]byte(r.query))
		d := g.document(r.query, r.operationName)
		if d.refused != nil {
			f := d.refused
			return nil, info, gqlRefuse(info, 400, f.reason, f.code, f.msg, f.detail)
		}
		if pq.remember != nil {
			out.remember = append(out.remember, *pq.remember)
		}
		if d.writes && req.Method == "GET" {
			// GraphQL over HTTP: only queries travel in a URL (a link or an
			// image must never run a mutation with the browser's cookie).
			return nil, info, gqlRefuse(info, 400, "graphql_bad_request", gqlBadRequest, "a mutation or subscription is sent with POST", "")
		}
		if i == 0 {
			info.OperationType, info.OperationName = d.opType, d.opName
		}
		info.Operations += d.operations
		for _, op := range d.ops {
			if seen != nil {
				if seen[op.Name] {
					continue
				}
				seen[op.Name] = true
			}
			op.HTTPMethod, op.Path = req.Method, req.Path
			ops = append(ops, op)
		}
	}
	info.DocumentHash = hex.EncodeToString(h.Sum(nil)[:16])
	info.Fields = len(ops)
	info.FieldNames = fieldNames(ops)
	if len(ops) == 0 {
		// Only __typename: nothing to authorize beyond the route.
		ops = append(ops, Operation{Kind: model.InspectorGraphQL, Method: info.OperationType, HTTPMethod: req.Method, Path: req.Path, Name: "__typename"})
	}
	return ops, info, nil
}

// gqlDoc is what one document (and operationName) comes to, whoever
// sends it: its fields, or why it is refused. Documents are remembered
// per engine (a model's schema and limits), so a client repeating its
// few documents pays for parsing and validation once.
type gqlDoc struct {
	ops            []Operation // Kind, Method, Name, At; read only
	opType, opName string
	operations     int
	writes         bool // a mutation or subscription among the operations
	refused        *gqlRefusal
}

type gqlRefusal struct{ reason, code, msg, detail string }

// maxDocs bounds the documents remembered per GraphQL API and model.
const maxDocs = 1024

func (g *gqlPolicy) document(query, opName string) *gqlDoc {
	key := opName + "\x00" + query
	g.mu.Lock()
	d := g.docs[key]
	g.mu.Unlock()
	if d != nil {
		return d
	}
	d = g.parse(query, opName)
	g.mu.Lock()
	if g.docs == nil || len(g.docs) >= maxDocs {
		g.docs = make(map[string]*gqlDoc)
	}
	g.docs[key] = d
	g.mu.Unlock()
	return d
}

func (g *gqlPolicy) parse(query, opName string) *gqlDoc {
	refuse := func(reason, code, msg, detail string) *gqlDoc {
		return &gqlDoc{refused: &gqlRefusal{reason, code, msg, detail}}
	}
	doc, err := parser.ParseQuery(&ast.Source{Input: query})
	if err != nil {
		return refuse("graphql_parse_failed", gqlParseFailed, "the document does not parse", "")
	}
	if why := checkLimits(doc, &g.Limits); why != "" {
		return refuse("graphql_limit", gqlLimitExceeded, why, "")
	}
	if errs := validator.Validate(g.schema, doc); len(errs) > 0 {
		// Never the validator's message: it suggests field names the
		// caller may not know exist.
		return refuse("graphql_invalid", gqlValidationFailed, "the document is not valid against the schema", errs[0].Rule)
	}
	op := pickOperation(doc, opName)
	if op == nil {
		return refuse("graphql_bad_request", gqlBadRequest, "operationName names no operation of the document", "")
	}
	d := &gqlDoc{opType: string(op.Operation), opName: op.Name, operations: len(doc.Operations)}
	seen := map[string]bool{}
	for _, o := range doc.Operations {
		d.ops = appendFields(d.ops, seen, o.SelectionSet, string(o.Operation), "")
		d.writes = d.writes || o.Operation != ast.Query
	}
	return d
}

func gqlRefuse(info *GraphQLInfo, status int, reason, code, msg, detail string) *Result {
	info.Errors = []GraphQLError{{Message: msg, Extensions: map[string]string{"code": code}}}
	why := msg
	if detail != "" {
		why += " (" + detail + ")"
	}
	return &Result{Status: status, Reason: reason, GraphQL: info, Steps: []Step{{Rule: "graphql", Why: why}}}
}

// pickOperation is the operation operationName selects (the only one
// when it is empty), or nil.
func pickOperation(doc *ast.QueryDocument, name string) *ast.OperationDefinition {
	if name == "" {
		if len(doc.Operations) == 1 {
			return doc.Operations[0]
		}
		return nil
	}
	return doc.Operations.ForName(name)
}

// appendFields adds one Operation per field not seen yet, through
// fragments and inline fragments (the document is validated and within
// limits, so this terminates and is bounded).
func appendFields(ops []Operation, seen map[string]bool, set ast.SelectionSet, opType, at string) []Operation {
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			path := s.Alias
			if at != "" {
				path = at + "." + s.Alias
			}
			name := ""
			switch {
			case s.Name == "__typename":
			case s.Name == "__schema" || s.Name == "__type":
				name = s.Name
			case s.ObjectDefinition != nil:
				name = s.ObjectDefinition.Name + "." + s.Name
			default:
				name = "?." + s.Name // unreachable after validation; never matches an open field
			}
			if name != "" && !seen[name] {
				seen[name] = true
				ops = append(ops, Operation{Kind: model.InspectorGraphQL, Method: opType, Name: name, At: path})
			}
			ops = appendFields(ops, seen, s.SelectionSet, opType, path)
		case *ast.InlineFragment:
			ops = appendFields(ops, seen, s.SelectionSet, opType, at)
		case *ast.FragmentSpread:
			if s.Definition != nil {
				ops = appendFields(ops, seen, s.Definition.SelectionSet, opType, at)
			}
		}
	}
	return ops
}

// checkLimits measures the document before validation (whose cost grows
// with it): depth, aliases, root fields and field occurrences with
// fragments expanded; spreads are counted too so that fragments spreading
// fragments cannot hide an exponential expansion.
func checkLimits(doc *ast.QueryDocument, l *model.GraphQLLimits) string {
	w := limitWalk{doc: doc, l: l, onStack: map[string]bool{}}
	for _, op := range doc.Operations {
		w.walk(op.SelectionSet, 1)
		if w.why == "" && rootCount(doc, op.SelectionSet, map[string]bool{}) > l.MaxRootFields {
			w.why = "too many root fields (at most " + strconv.Itoa(l.MaxRootFields) + ")"
		}
		if w.why != "" {
			return w.why
		}
	}
	return w.why
}

type limitWalk struct {
	doc                    *ast.QueryDocument
	l                      *model.GraphQLLimits
	fields, aliases, steps int
	onStack                map[string]bool
	why                    string
}

func (w *limitWalk) walk(set ast.SelectionSet, depth int) {
	if w.why != "" {
		return
	}
	if depth > w.l.MaxDepth && len(set) > 0 {
		w.why = "the document is too deep (at most " + strconv.Itoa(w.l.MaxDepth) + " levels)"
		return
	}
	for _, sel := range set {
		if w.steps++; w.steps > 4*w.l.MaxFields+64 {
			w.why = "the document expands to too many selections"
			return
		}
		switch s := sel.(type) {
		case *ast.Field:
			if w.fields++; w.fields > w.l.MaxFields {
				w.why = "too many fields (at most " + strconv.Itoa(w.l.MaxFields) + ")"
				return
			}
			if s.Alias != s.Name {
				if w.aliases++; w.aliases > w.l.MaxAliases {
					w.why = "too many aliases (at most " + strconv.Itoa(w.l.MaxAliases) + ")"
					return
				}
			}
			w.walk(s.SelectionSet, depth+1)
		case *ast.InlineFragment:
			w.walk(s.SelectionSet, depth)
		case *ast.FragmentSpread:
			f := w.doc.Fragments.ForName(s.Name)
			if f == nil || w.onStack[s.Name] {
				continue // validation refuses it
			}
			w.onStack[s.Name] = true
			w.walk(f.SelectionSet, depth)
			delete(w.onStack, s.Name)
		}
		if w.why != "" {
			return
		}
	}
}

// rootCount is the number of fields at the top of an operation, through
// fragments (bounded: checkLimits walked the same document first).
func rootCount(doc *ast.QueryDocument, set ast.SelectionSet, onStack map[string]bool) int {
	n := 0
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			n++
		case *ast.InlineFragment:
			n += rootCount(doc, s.SelectionSet, onStack)
		case *ast.FragmentSpread:
			if f := doc.Fragments.ForName(s.Name); f != nil && !onStack[s.Name] {
				onStack[s.Name] = true
				n += rootCount(doc, f.SelectionSet, onStack)
				delete(onStack, s.Name)
			}
		}
	}
	return n
}

// readGraphQL reads the operation requests of a GET (?query=) or a POST
// (a JSON object or a batch array, or a bare document), or says why not.
func readGraphQL(req *Request) ([]gqlRequest, string) {
	q, err := url.ParseQuery(req.Query)
	if err != nil {
		return nil, "the query string does not parse"
	}
	switch req.Method {
	case "GET":
		if len(q["query"]) > 1 || len(q["operationName"]) > 1 || len(q["extensions"]) > 1 {
			return nil, "query, operationName or extensions is given twice"
		}
		if len(bytes.TrimSpace(req.Body)) > 0 {
			return nil, "a GET with a body is ambiguous" // a server might read either
		}
		r := gqlRequest{query: q.Get("query"), operationName: q.Get("operationName")}
		var why string
		if r.pq, why = readExtensions([]byte(q.Get("extensions"))); why != "" {
			return nil, why
		}
		return []gqlRequest{r}, ""
	case "POST":
	default:
		return nil, "a GraphQL request is a GET or a POST"
	}
	if q.Has("query") {
		return nil, "a POST with a query in its URL is ambiguous"
	}
	body := bytes.TrimSpace(req.Body)
	switch {
	case len(body) == 0:
		return nil, "the request has no body"
	case body[0] == '[':
		var items []json.RawMessage
		if err := json.Unmarshal(body, &items); err != nil {
			return nil, "the JSON body does not parse"
		}
		if len(items) == 0 || len(items) > maxBatch {
			return nil, "a batch holds 1 to " + strconv.Itoa(maxBatch) + " operations"
		}
		out := make([]gqlRequest, 0, len(items))
		for _, it := range items {
			r, why := readJSONRequest(it)
			if why != "" {
				return nil, why
			}
			out = append(out, r)
		}
		return out, ""
	case body[0] == '{':
		r, why := readJSONRequest(body)
		if why == "" || json.Valid(body) {
			return []gqlRequest{r}, why
		}
	}
	// application/graphql: the body is the document. A JSON body never
	// parses as a document and a document never as JSON, so the two
	// readings cannot disagree (Check does not see content-type).
	return []gqlRequest{{query: string(body)}}, ""
}

// readJSONRequest reads {"query", "operationName", "variables",
// "extensions"}: keys are exact (no case folding, unlike encoding/json)
// and never repeated, so gatehouse and the server read the same query.
func readJSONRequest(b []byte) (gqlRequest, string) {
	if r, ok, why := readJSONFast(b); ok {
		return r, why
	}
	var r gqlRequest
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return r, "each operation is a JSON object"
	}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return r, "the JSON body does not parse"
		}
		key, _ := t.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return r, "the JSON body does not parse"
		}
		// A key is one of GraphQL's when it folds to it as encoding/json
		// folds (Unicode simple folding: "extenſions" is "extensions" to a
		// Go server): the canonical name, for the twice-given check.
		lk := strings.ToLower(key)
		for _, k := range jsonKeys {
			if name := k[1 : len(k)-1]; strings.EqualFold(key, name) {
				lk = strings.ToLower(name)
			}
		}
		if seen[lk] {
			return r, "key " + clipStr(lk, 40) + " is given twice"
		}
		seen[lk] = true
		switch key {
		case "query":
			if string(raw) != "null" && json.Unmarshal(raw, &r.query) != nil {
				return r, "query is not a string"
			}
		case "operationName":
			if string(raw) != "null" && json.Unmarshal(raw, &r.operationName) != nil {
				return r, "operationName is not a string"
			}
		case "variables":
			if string(raw) != "null" && raw[0] != '{' {
				return r, "variables is not an object"
			}
		case "extensions":
			var why string
			if r.pq, why = readExtensions(raw); why != "" {
				return r, why
			}
		default:
			if lk == "query" || lk == "operationname" || lk == "variables" || lk == "extensions" {
				return r, "key " + clipStr(key, 40) + " is not spelled as GraphQL spells it"
			}
		}
	}
	if _, err := dec.Token(); err != nil {
		return r, "the JSON body does not parse"
	}
	if _, err := dec.Token(); err != io.EOF {
		return r, "the JSON body has data after the object"
	}
	return r, ""
}

// hasNonASCIIOrEscape: b has a byte outside ASCII or a \u escape.
func hasNonASCIIOrEscape(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return true
		}
	}
	return bytes.Contains(b, []byte(`\u`))
}

// countFold counts the occurrences of key (a quoted ASCII key name) in b
// in any case, and says whether one of them is spelled exactly, without
// lower-casing a copy of b.
func countFold(b []byte, key string) (n int, exact bool) {
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '"')
		if j < 0 || i+j+len(key) > len(b) {
			return n, exact
		}
		i += j
		if w := b[i : i+len(key)]; bytes.EqualFold(w, []byte(key)) {
			n++
			exact = exact || string(w) == key
			i += len(key) - 1 // the closing quote may open the next match
			continue
		}
		i++
	}
}

// jsonKeys are the keys of a GraphQL request, quoted.
var jsonKeys = [...]string{`"query"`, `"operationName"`, `"variables"`, `"extensions"`}

// readJSONFast reads a request with encoding/json (several times faster
// than the token reader) when that is sure to read what the token reader
// would: every key name occurs at most once in the whole body in any
// case, spelled exactly, so no key is repeated or folded. ok false: use
// the token reader.
func readJSONFast(b []byte) (r gqlRequest, ok bool, why string) {
	if hasNonASCIIOrEscape(b) {
		// A key spelled with a character that folds into ASCII (ſ, K) or
		// escaped (\u017f) would fold into one of GraphQL's in
		// encoding/json without countFold seeing it.
		return r, false, ""
	}
	for _, k := range jsonKeys {
		switch n, exact := countFold(b, k); {
		case n > 1:
			return r, false, ""
		case n == 1 && !exact:
			return r, false, ""
		}
	}
	var v struct {
		Query         *string         `json:"query"`
		OperationName *string         `json:"operationName"`
		Variables     json.RawMessage `json:"variables"`
		Extensions    json.RawMessage `json:"extensions"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return r, true, "the operation is not a JSON object of query, operationName, variables and extensions"
	}
	if v.Query != nil {
		r.query = *v.Query
	}
	if v.OperationName != nil {
		r.operationName = *v.OperationName
	}
	if len(v.Variables) > 0 && string(v.Variables) != "null" && v.Variables[0] != '{' {
		return r, true, "variables is not an object"
	}
	r.pq, why = readExtensions(v.Extensions)
	return r, true, why
}

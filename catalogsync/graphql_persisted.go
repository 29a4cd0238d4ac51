package catalogsync

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
	"github.com/vektah/gqlparser/v2/validator"
	"gopkg.in/yaml.v3"
)

// Persisted queries of a GraphQL API (docs/graphql.md, "Persisted
// queries"): Apollo's automatic persisted queries (APQ, the default), a
// safelist (only the listed documents pass), or off.
const (
	// AnnGraphQLSafelist lists the documents a safelist-mode API accepts:
	// a YAML list of documents, or an Apollo persisted query manifest
	// (JSON: {"format":"apollo-persisted-query-manifest","operations":[{"id","body"}]}).
	AnnGraphQLSafelist = "gatehouse.dev/graphql-safelist"

	PersistedAPQ      = "apq"
	PersistedSafelist = "safelist"
	PersistedOff      = "off"

	// DefaultPersistedQueryCache is the documents an API's APQ store
	// keeps when persistedQueryCache is not set; MaxPersistedQueryCache
	// bounds the setting.
	DefaultPersistedQueryCache = 1000
	MaxPersistedQueryCache     = 100000
	// maxSafelist bounds the documents of a safelist.
	maxSafelist = 10000
)

// PersistedDocument is one document of a safelist and its APQ hash (the
// SHA-256 of its text, lower-case hex).
type PersistedDocument struct {
	Hash, Document string
}

// PersistedHash is the APQ hash of a document: SHA-256 of its text,
// lower-case hex.
func PersistedHash(doc string) string {
	s := sha256.Sum256([]byte(doc))
	return hex.EncodeToString(s[:])
}

// parsePersistedQueries checks the persisted-query options and reads the
// safelist annotation into g (its own function: the options' mode and
// limits are read by parseGraphQLOptions).
func parsePersistedQueries(e *Entity, n *yaml.Node, g *GraphQLAPI) Problems {
	var ps Problems
	optLine := lineOf(n, "metadata", "annotations", AnnGraphQLOptions)
	optField := "metadata.annotations[" + AnnGraphQLOptions + "]"
	o := g.Options
	switch o.PersistedQueries {
	case "", PersistedAPQ, PersistedSafelist, PersistedOff:
	default:
		return append(ps, Problem{Severity: SeverityError, Line: optLine, Field: optField,
			Message: "persistedQueries " + quote(o.PersistedQueries) + " is not apq, safelist or off", Fix: "write persistedQueries: apq (the default), safelist (with " + AnnGraphQLSafelist + ") or off"})
	}
	if o.PersistedQueryCache < 0 || o.PersistedQueryCache > MaxPersistedQueryCache {
		return append(ps, Problem{Severity: SeverityError, Line: optLine, Field: optField,
			Message: "persistedQueryCache " + strconv.Itoa(o.PersistedQueryCache) + " is out of range (1 to " + strconv.Itoa(MaxPersistedQueryCache) + " documents)", Fix: "set a number of documents, or remove the key for " + strconv.Itoa(DefaultPersistedQueryCache)})
	}
	v, has := e.Annotation(AnnGraphQLSafelist)
	listLine := lineOf(n, "metadata", "annotations", AnnGraphQLSafelist)
	listField := "metadata.annotations[" + AnnGraphQLSafelist + "]"
	switch {
	case o.PersistedQueries == PersistedSafelist && !has:
		return append(ps, Problem{Severity: SeverityError, Line: optLine, Field: optField,
			Message: "persistedQueries: safelist needs the list of documents", Fix: "add the " + AnnGraphQLSafelist + " annotation (a YAML list of documents, or an Apollo persisted query manifest)"})
	case has && o.PersistedQueries != PersistedSafelist:
		return append(ps, Problem{Severity: SeverityError, Line: listLine, Field: listField,
			Message: AnnGraphQLSafelist + " is read only with persistedQueries: safelist", Fix: "add persistedQueries: safelist to " + AnnGraphQLOptions + ", or remove the list"})
	case !has:
		return ps
	}
	docs, errs := readSafelist(v, g.Schema)
	for _, msg := range errs {
		ps = append(ps, Problem{Severity: SeverityError, Line: listLine, Field: listField, Message: msg,
			Fix: "list each document as the client sends it, valid against the schema (an Apollo manifest's id is the SHA-256 of its body)"})
	}
	g.Safelist = docs
	return ps
}

// readSafelist reads a safelist: a YAML list of documents, or an Apollo
// persisted query manifest. Every document must parse and be valid
// against the schema; a manifest's ids must be the documents' hashes.
func readSafelist(v string, schema *ast.Schema) ([]PersistedDocument, []string) {
	var raw any
	if err := yaml.Unmarshal([]byte(v), &raw); err != nil {
		return nil, []string{"invalid YAML: " + trimYAMLErr(err) + " (expected a list of documents or an Apollo persisted query manifest)"}
	}
	type entry struct{ id, body, name string }
	var entries []entry
	switch r := raw.(type) {
	case []any:
		for i, d := range r {
			s, ok := d.(string)
			if !ok {
				return nil, []string{"entry " + strconv.Itoa(i+1) + " is not a document (a string)"}
			}
			entries = append(entries, entry{body: s, name: "entry " + strconv.Itoa(i+1)})
		}
	case map[string]any:
		var m struct {
			Format     string `yaml:"format"`
			Version    int    `yaml:"version"`
			Operations []struct {
				ID   string `yaml:"id"`
				Body string `yaml:"body"`
				Name string `yaml:"name"`
				Type string `yaml:"type"`
			} `yaml:"operations"`
		}
		dec := yaml.NewDecoder(strings.NewReader(v))
		dec.KnownFields(true)
		if err := dec.Decode(&m); err != nil {
			return nil, []string{"not an Apollo persisted query manifest: " + trimYAMLErr(err)}
		}
		if m.Format != "apollo-persisted-query-manifest" || m.Version != 1 {
			return nil, []string{"a manifest has format apollo-persisted-query-manifest and version 1"}
		}
		for i, op := range m.Operations {
			name := "operation " + strconv.Itoa(i+1)
			if op.Name != "" {
				name += " (" + op.Name + ")"
			}
			entries = append(entries, entry{id: op.ID, body: op.Body, name: name})
		}
	default:
		return nil, []string{"expected a list of documents or an Apollo persisted query manifest"}
	}
	if len(entries) == 0 || len(entries) > maxSafelist {
		return nil, []string{"a safelist holds 1 to " + strconv.Itoa(maxSafelist) + " documents"}
	}
	var out []PersistedDocument
	var errs []string
	seen := map[string]bool{}
	for _, en := range entries {
		h := PersistedHash(en.body)
		if en.id != "" && en.id != h {
			errs = append(errs, en.name+": id "+quote(clipString(en.id, 80))+" is not the SHA-256 of its body ("+h+")")
			continue
		}
		if why := checkDocument(en.body, schema); why != "" {
			errs = append(errs, en.name+": "+why)
			continue
		}
		if !seen[h] {
			seen[h] = true
			out = append(out, PersistedDocument{Hash: h, Document: en.body})
		}
	}
	return out, errs
}

// checkDocument: the document parses and is valid against the schema.
func checkDocument(doc string, schema *ast.Schema) string {
	q, err := parser.ParseQuery(&ast.Source{Input: doc})
	if err != nil {
		line, msg := gqlErrorAt(err)
		return "the document does not parse (line " + strconv.Itoa(line) + ": " + msg + ")"
	}
	if errs := validator.Validate(schema, q); len(errs) > 0 {
		return "the document is not valid against the schema: " + errs[0].Message
	}
	return ""
}

func clipString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

package catalogsync

import (
	"strings"
	"testing"
)

// Persisted-query options and the safelist annotation: documents valid
// against the schema, an Apollo manifest's ids their bodies' hashes;
// every mistake a problem on the annotation's line naming the entry.
func TestGraphQLSafelistAnnotation(t *testing.T) {
	opts := "    gatehouse.dev/graphql-options: |\n      persistedQueries: safelist\n      persistedQueryCache: 50\n"
	list := "    gatehouse.dev/graphql-safelist: |\n      - \"{ a }\"\n      - \"query S { secret }\"\n      - \"{ a }\"\n"
	p := ParseFile("files", "g.yaml", []byte(graphqlAPI(goodSDL, opts+list)))
	if len(p.Problems) != 0 || len(p.Entities) != 1 {
		t.Fatalf("problems %v", p.Problems)
	}
	g := p.Entities[0].GraphQL
	if len(g.Safelist) != 2 || g.Safelist[0].Hash != PersistedHash("{ a }") || g.Safelist[1].Document != "query S { secret }" || g.Options.PersistedQueryCache != 50 {
		t.Fatalf("safelist %+v", g.Safelist)
	}
	manifest := `{"format":"apollo-persisted-query-manifest","version":1,"operations":[{"id":"` + PersistedHash("{ a }") + `","name":"A","type":"query","body":"{ a }"}]}`
	p = ParseFile("files", "g.yaml", []byte(graphqlAPI(goodSDL, opts+"    gatehouse.dev/graphql-safelist: '"+manifest+"'\n")))
	if len(p.Problems) != 0 || len(p.Entities[0].GraphQL.Safelist) != 1 {
		t.Fatalf("manifest: %v", p.Problems)
	}
	wrongID := strings.Replace(manifest, PersistedHash("{ a }"), PersistedHash("{ b }"), 1)
	for _, c := range []struct{ ann, want string }{
		{opts + "    gatehouse.dev/graphql-safelist: |\n      - \"{ nope }\"\n", "entry 1: the document is not valid against the schema"},
		{opts + "    gatehouse.dev/graphql-safelist: |\n      - \"{ a\"\n", "entry 1: the document does not parse"},
		{opts + "    gatehouse.dev/graphql-safelist: |\n      - 7\n      - [a]\n", "entry 1 is not a document"},
		{opts + "    gatehouse.dev/graphql-safelist: '[]'\n", "1 to 10000 documents"},
		{opts + "    gatehouse.dev/graphql-safelist: 'just text'\n", "expected a list of documents"},
		{opts + "    gatehouse.dev/graphql-safelist: '" + wrongID + "'\n", "operation 1 (A): id"},
		{opts + "    gatehouse.dev/graphql-safelist: '{\"format\":\"x\",\"version\":1,\"operations\":[]}'\n", "format apollo-persisted-query-manifest"},
		{opts + "    gatehouse.dev/graphql-safelist: '{\"format\":\"apollo-persisted-query-manifest\",\"version\":1,\"ops\":[]}'\n", "not an Apollo persisted query manifest"},
		{opts, "persistedQueries: safelist needs the list"},
		{list, "read only with persistedQueries: safelist"},
		{"    gatehouse.dev/graphql-options: |\n      persistedQueries: automatic\n", "not apq, safelist or off"},
		{"    gatehouse.dev/graphql-options: |\n      persistedQueryCache: 1000000\n", "persistedQueryCache 1000000 is out of range"},
	} {
		p := ParseFile("files", "g.yaml", []byte(graphqlAPI(goodSDL, c.ann)))
		if len(p.Problems) == 0 || !strings.Contains(p.Problems[0].Message, c.want) || p.Problems[0].Line == 0 || p.Problems[0].Fix == "" || len(p.Entities) != 0 {
			t.Errorf("%q: want a problem with %q, got %v", c.ann, c.want, p.Problems)
		}
	}
	// Only on a GraphQL API.
	src := "apiVersion: backstage.io/v1alpha1\nkind: API\nmetadata:\n  name: rest\n  annotations:\n    gatehouse.dev/graphql-safelist: '[\"{ a }\"]'\nspec: {type: openapi, lifecycle: production, owner: payments, definition: x}\n"
	if p := ParseFile("files", "g.yaml", []byte(src)); len(p.Problems) != 1 || !strings.Contains(p.Problems[0].Message, "only on an API with spec.type graphql") {
		t.Errorf("on a REST API: %v", p.Problems)
	}
}

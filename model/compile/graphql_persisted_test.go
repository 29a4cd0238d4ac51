package compile

import (
	"testing"

	cs "github.com/gatehouse-dev/gatehouse/catalogsync"
	"github.com/gatehouse-dev/gatehouse/model"
)

// The persisted-query settings reach the model: APQ with the default
// store by default; the safelist's documents with their hashes.
func TestGraphQLPersistedCompiles(t *testing.T) {
	sdl := "type Query { a: String }"
	for _, c := range []struct {
		ann  string
		want model.GraphQLPersisted
	}{
		{"", model.GraphQLPersisted{Mode: model.PersistedAPQ, Cache: cs.DefaultPersistedQueryCache}},
		{"    gatehouse.dev/graphql-options: 'persistedQueryCache: 7'\n", model.GraphQLPersisted{Mode: model.PersistedAPQ, Cache: 7}},
		{"    gatehouse.dev/graphql-options: 'persistedQueries: off'\n", model.GraphQLPersisted{Mode: model.PersistedOff, Cache: cs.DefaultPersistedQueryCache}},
		{"    gatehouse.dev/graphql-options: 'persistedQueries: safelist'\n    gatehouse.dev/graphql-safelist: '[\"{ a }\"]'\n",
			model.GraphQLPersisted{Mode: model.PersistedSafelist, Cache: cs.DefaultPersistedQueryCache, Safelist: []model.GraphQLDocument{{Hash: cs.PersistedHash("{ a }"), Document: "{ a }"}}}},
	} {
		m, ps := compileSrc(graphqlCatalog(sdl, c.ann))
		if ps.Errors() > 0 {
			t.Fatalf("%q: %v", c.ann, ps)
		}
		var got *model.GraphQLPersisted
		for _, p := range m.Policies {
			if p.GraphQL != nil {
				got = &p.GraphQL.Persisted
			}
		}
		if got == nil || got.Mode != c.want.Mode || got.Cache != c.want.Cache || len(got.Safelist) != len(c.want.Safelist) ||
			(len(got.Safelist) == 1 && got.Safelist[0] != c.want.Safelist[0]) {
			t.Errorf("%q: %+v, want %+v", c.ann, got, c.want)
		}
	}
}

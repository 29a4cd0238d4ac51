package translate

import (
	mutationv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	headermutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/gatehouse-dev/gatehouse/model"
)

const headerMutFilter = "envoy.filters.http.header_mutation"

// headerMutation runs first: it removes every header with
// model.HeaderPrefix a client may have sent (by prefix, so no name
// gatehouse may use, now or later, reaches Check or an upstream unless
// gatehouse set it) and the configured override/rewrite headers
// (Options.RemoveRequestHeaders), then sets model.RouteHeader to the name
// (id) of the route Envoy chose, for Check.
type headerMutation struct{ noRouteConfig }

func (headerMutation) name() string { return headerMutFilter }

func (headerMutation) listenerConfig(opts Options) (*anypb.Any, error) {
	muts := []*mutationv3.HeaderMutation{{Action: &mutationv3.HeaderMutation_RemoveOnMatch_{RemoveOnMatch: &mutationv3.HeaderMutation_RemoveOnMatch{
		KeyMatcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: model.HeaderPrefix}},
	}}}}
	for _, h := range opts.RemoveRequestHeaders {
		muts = append(muts, &mutationv3.HeaderMutation{Action: &mutationv3.HeaderMutation_Remove{Remove: h}})
	}
	muts = append(muts, &mutationv3.HeaderMutation{Action: &mutationv3.HeaderMutation_Append{Append: &core.HeaderValueOption{
		Header:       &core.HeaderValue{Key: model.RouteHeader, Value: "%ROUTE_NAME%"},
		AppendAction: core.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}}})
	return anypb.New(&headermutationv3.HeaderMutation{Mutations: &headermutationv3.Mutations{RequestMutations: muts}})
}

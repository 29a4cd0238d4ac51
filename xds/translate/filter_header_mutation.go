package translate

import (
	mutationv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	headermutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/gatehouse-dev/gatehouse/model"
)

const headerMutFilter = "envoy.filters.http.header_mutation"

// headerMutation runs first: it removes the identity headers a client may
// have sent (model.IdentityHeaders), so none reaches Check or an upstream
// unless gatehouse set it, then sets model.RouteHeader to the name (id) of
// the route Envoy chose, for Check.
type headerMutation struct{ noRouteConfig }

func (headerMutation) name() string { return headerMutFilter }

func (headerMutation) listenerConfig(Options) (*anypb.Any, error) {
	var muts []*mutationv3.HeaderMutation
	for _, h := range model.IdentityHeaders {
		muts = append(muts, &mutationv3.HeaderMutation{Action: &mutationv3.HeaderMutation_Remove{Remove: h}})
	}
	muts = append(muts, &mutationv3.HeaderMutation{Action: &mutationv3.HeaderMutation_Append{Append: &core.HeaderValueOption{
		Header:       &core.HeaderValue{Key: model.RouteHeader, Value: "%ROUTE_NAME%"},
		AppendAction: core.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}}})
	return anypb.New(&headermutationv3.HeaderMutation{Mutations: &headermutationv3.Mutations{RequestMutations: muts}})
}

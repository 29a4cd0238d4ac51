package translate

import (
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

const routerFilter = "envoy.filters.http.router"

// router sends the request to the route's cluster (terminal: last).
type router struct{ noRouteConfig }

func (router) name() string { return routerFilter }

func (router) listenerConfig(Options) (*anypb.Any, error) { return anypb.New(&routerv3.Router{}) }

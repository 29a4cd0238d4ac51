package translate

import (
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/gatehouse-dev/gatehouse/model"
)

// routeConfig renders the model's virtual hosts.
//
// A route's name is its id, which the first HTTP filter copies into
// model.RouteHeader for Check (and the route configuration removes before the
// upstream). Routes carry nothing else for authorization, least of all a
// model or policy version: the route configuration is one resource holding
// every route, so a stamp that changed with catalog edits (a user joining a
// group, a new owner) would re-send all of it to every Envoy for a change
// Envoy has no part in, and per-route ext_authz settings were most of its
// bytes (at 10k components: 6.3 MB with them, 2.0 MB without) and of the
// translation's time. Prefixes other than "/" are
// matched on path-segment boundaries (path_separated_prefix): /orders
// matches /orders and /orders/7, never /ordersx.
func routeConfig(name string, m *model.Model, opts Options) (*route.RouteConfiguration, error) {
	rc := &route.RouteConfiguration{Name: name, RequestHeadersToRemove: []string{model.RouteHeader}}
	var signIn *route.Route
	if opts.SignInAddress != "" {
		var err error
		if signIn, err = signInRoute(); err != nil {
			return nil, err
		}
	}
	var exchange *route.Route
	if opts.ExchangeAddress != "" {
		var err error
		if exchange, err = exchangeRoute(); err != nil {
			return nil, err
		}
	}
	for _, vh := range m.VirtualHosts {
		v := &route.VirtualHost{Name: vh.Name, Domains: vh.Domains}
		if exchange != nil {
			v.Routes = append(v.Routes, exchange)
		}
		if signIn != nil {
			v.Routes = append(v.Routes, signIn)
		}
		for _, r := range vh.Routes {
			perFilter, err := routeFilterConfigs(checkedFilters, r, false, opts)
			if err != nil {
				return nil, err
			}
			er := &route.Route{
				Name:                   r.ID,
				Match:                  routeMatch(r),
				TypedPerFilterConfig:   perFilter,
				RequestHeadersToRemove: credentialHeaders(r, opts),
				Action: &route.Route_Route{Route: &route.RouteAction{
					ClusterSpecifier: &route.RouteAction_Cluster{Cluster: r.Cluster},
					Timeout:          durationpb.New(r.Timeout.Std()),
				}},
			}
			if usesExtProc(r, false) && r.Auth.BodyBytes > 0 {
				// ext_proc buffers the whole body: past the route's limit
				// Envoy answers 413 before gatehouse sees anything.
				er.RequestBodyBufferLimit = wrapperspb.UInt64(uint64(r.Auth.BodyBytes))
			}
			v.Routes = append(v.Routes, er)
		}
		rc.VirtualHosts = append(rc.VirtualHosts, v)
	}
	return rc, nil
}

// routeMatch matches a model route: an exact path, everything ("/"), or a
// prefix on path-segment boundaries.
func routeMatch(r model.Route) *route.RouteMatch {
	match := &route.RouteMatch{}
	switch {
	case r.Path != "":
		match.PathSpecifier = &route.RouteMatch_Path{Path: r.Path}
	case r.Prefix == "/":
		match.PathSpecifier = &route.RouteMatch_Prefix{Prefix: "/"}
	default:
		match.PathSpecifier = &route.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: r.Prefix}
	}
	return match
}

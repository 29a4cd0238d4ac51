package xds

import (
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/gatehouse-dev/gatehouse/model"
)

// routeConfig renders the model's virtual hosts. Prefixes other than "/" are
// matched on path-segment boundaries (path_separated_prefix): /orders matches
// /orders and /orders/7, never /ordersx.
func routeConfig(name string, m *model.Model) (*route.RouteConfiguration, error) {
	rc := &route.RouteConfiguration{Name: name}
	for _, vh := range m.VirtualHosts {
		v := &route.VirtualHost{Name: vh.Name, Domains: vh.Domains}
		for _, r := range vh.Routes {
			match := &route.RouteMatch{}
			switch {
			case r.Path != "":
				match.PathSpecifier = &route.RouteMatch_Path{Path: r.Path}
			case r.Prefix == "/":
				match.PathSpecifier = &route.RouteMatch_Prefix{Prefix: "/"}
			default:
				match.PathSpecifier = &route.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: r.Prefix}
			}
			perFilter, err := routeAuthz(r, m.Version)
			if err == nil {
				err = deterministic(perFilter)
			}
			if err != nil {
				return nil, err
			}
			v.Routes = append(v.Routes, &route.Route{
				Name:                 r.ID,
				Match:                match,
				TypedPerFilterConfig: perFilter,
				Action: &route.Route_Route{Route: &route.RouteAction{
					ClusterSpecifier: &route.RouteAction_Cluster{Cluster: r.Cluster},
					Timeout:          durationpb.New(r.Timeout.Std()),
				}},
			})
		}
		rc.VirtualHosts = append(rc.VirtualHosts, v)
	}
	return rc, nil
}

// deterministic re-encodes typed configs whose messages hold maps (the
// ext_authz context extensions) with sorted map keys: anypb.New encodes maps
// in random order, so the same route would get different bytes on every
// translation, and with them a new RDS version on every replica and rebuild.
func deterministic(cfgs map[string]*anypb.Any) error {
	for _, a := range cfgs {
		msg, err := a.UnmarshalNew()
		if err != nil {
			return err
		}
		if a.Value, err = (proto.MarshalOptions{Deterministic: true}).Marshal(msg); err != nil {
			return err
		}
	}
	return nil
}

package xds

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/gatehouse-dev/gatehouse/model"
)

// routeConfig renders the model's virtual hosts.
//
// Each protected route carries, in the model_version context extension, the
// version of its own policy, not the model's: the model version changes with
// every catalog edit (a user joining a group, a port), and stamping it on
// every route made each edit re-send the whole route configuration (one
// resource holding every route) to every Envoy. Check looks policies up by
// route id and does not read the stamp. Prefixes other than "/" are
// matched on path-segment boundaries (path_separated_prefix): /orders matches
// /orders and /orders/7, never /ordersx.
func routeConfig(name string, m *model.Model) (*route.RouteConfiguration, error) {
	rc := &route.RouteConfiguration{Name: name}
	policies, err := policyVersions(m)
	if err != nil {
		return nil, err
	}
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
			perFilter, err := routeAuthz(r, policies[r.ID])
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

// policyVersions returns, per route id, a hash of the route's policy: it
// changes when who may call the route changes, not when the rest of the
// catalog does.
func policyVersions(m *model.Model) (map[string]string, error) {
	out := make(map[string]string, len(m.Policies))
	for i := range m.Policies {
		b, err := json.Marshal(&m.Policies[i])
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(b)
		out[m.Policies[i].RouteID] = hex.EncodeToString(sum[:8])
	}
	return out, nil
}

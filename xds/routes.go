package xds

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/gatehouse-dev/gatehouse/model"
)

// routeConfig renders the model's virtual hosts.
//
// Each protected route carries, in the policy_version context extension, the
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
			perFilter, err := routeAuthz(r, policies[r.ID], false)
			if err != nil {
				return nil, err
			}
			v.Routes = append(v.Routes, &route.Route{
				Name:                 r.ID,
				Match:                routeMatch(r),
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

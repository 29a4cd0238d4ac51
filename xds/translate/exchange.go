package translate

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/gatehouse-dev/gatehouse/model"
)

// ExchangeClusterName reaches gatehouse's token exchange listener on every
// replica.
const ExchangeClusterName = "gatehouse_token"

// ExchangePath is the token exchange endpoint (RFC 8693) on every edge
// host (docs/agents.md); extauthz.ExchangePath is the same path.
const ExchangePath = model.SignInPrefix + "token"

// exchangeRoute sends ExchangePath to gatehouse's token exchange without a
// Check (the endpoint verifies both tokens itself): like the sign-in
// route, first in every virtual host and only when configured
// (opts.ExchangeAddress).
func exchangeRoute() (*route.Route, error) {
	r, err := signInRoute()
	if err != nil {
		return nil, err
	}
	r.Name = "gatehouse-token"
	r.Match = &route.RouteMatch{PathSpecifier: &route.RouteMatch_Path{Path: ExchangePath}}
	r.GetRoute().ClusterSpecifier = &route.RouteAction_Cluster{Cluster: ExchangeClusterName}
	return r, nil
}

// exchangeCluster reaches the exchange listener of every replica, as the
// sign-in cluster does its own.
func exchangeCluster(opts Options) (*clusterv3.Cluster, error) {
	o := opts
	o.SignInAddress = opts.ExchangeAddress
	c, err := signInCluster(o)
	if err != nil {
		return nil, err
	}
	c.Name, c.LoadAssignment.ClusterName = ExchangeClusterName, ExchangeClusterName
	return c, nil
}

package translate

import (
	"fmt"
	"net"
	"strconv"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	previoushostsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/gatehouse-dev/gatehouse/model"
)

// SignInClusterName reaches gatehouse's sign-in HTTP listener (callback,
// logout) on every replica.
const SignInClusterName = "gatehouse_signin"

// signInRoute sends model.SignInPrefix on an edge virtual host to
// gatehouse's sign-in handler without a Check (the handler is how one gets
// a session; it decides nothing about upstreams). The route comes first in
// every virtual host, so no entity can claim the prefix; it exists only
// when sign-in is configured (opts.SignInAddress).
func signInRoute() (*route.Route, error) {
	off, err := anypb.New(&extauthzv3.ExtAuthzPerRoute{Override: &extauthzv3.ExtAuthzPerRoute_Disabled{Disabled: true}})
	if err != nil {
		return nil, err
	}
	prev, err := anypb.New(&previoushostsv3.PreviousHostsPredicate{})
	if err != nil {
		return nil, err
	}
	return &route.Route{
		Name:                 "gatehouse-signin",
		Match:                &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: model.SignInPrefix}},
		TypedPerFilterConfig: map[string]*anypb.Any{extAuthzFilter: off},
		Action: &route.Route_Route{Route: &route.RouteAction{
			ClusterSpecifier: &route.RouteAction_Cluster{Cluster: SignInClusterName},
			Timeout:          durationpb.New(15 * time.Second), // a code exchange with the IdP
			// A replica that is gone: another one serves the step (they
			// share the key). Only requests that never reached one.
			RetryPolicy: &route.RetryPolicy{RetryOn: "connect-failure,refused-stream", NumRetries: wrapperspb.UInt32(2),
				RetryHostPredicate: []*route.RetryPolicy_RetryHostPredicate{{
					Name:       "envoy.retry_host_predicates.previous_hosts",
					ConfigType: &route.RetryPolicy_RetryHostPredicate_TypedConfig{TypedConfig: prev},
				}},
				HostSelectionRetryMaxAttempts: 3,
			},
		}},
	}, nil
}

// signInCluster reaches the sign-in listener of every replica over plain
// HTTP/1.1 (opts.SignInAddress: comma-separated host:port). Any replica
// can serve any step: the sign-in binding and the session are sealed with
// the key they share.
func signInCluster(opts Options) (*clusterv3.Cluster, error) {
	addrs := SplitAddresses(opts.SignInAddress)
	typ := clusterv3.Cluster_STATIC
	var eps []*endpoint.LbEndpoint
	for _, addr := range addrs {
		host, portStr, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("sign-in address %q is not host:port: %v", addr, err)
		}
		port, err := strconv.ParseUint(portStr, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("sign-in address %q has an invalid port", addr)
		}
		if net.ParseIP(host) == nil {
			typ = clusterv3.Cluster_STRICT_DNS
		}
		eps = append(eps, &endpoint.LbEndpoint{HostIdentifier: &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{
			Address: &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
				Address: host, PortSpecifier: &core.SocketAddress_PortValue{PortValue: uint32(port)},
			}}},
		}}})
	}
	return &clusterv3.Cluster{
		Name:                 SignInClusterName,
		ConnectTimeout:       durationpb.New(time.Second),
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: typ},
		OutlierDetection:     replicaOutlierDetection(),
		LoadAssignment: &endpoint.ClusterLoadAssignment{ClusterName: SignInClusterName, Endpoints: []*endpoint.LocalityLbEndpoints{{
			LbEndpoints: eps,
		}}},
	}, nil
}

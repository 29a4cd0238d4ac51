package main

// No-op ext_authz servers: they allow every request and add nothing. Envoy
// with ext_authz pointed at one is the floor of any ext_authz service on
// this Envoy: what the filter and the round trip cost, with no decision.

import (
	"context"
	"net"
	"net/http"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/gatehouse-dev/gatehouse/extauthz"
	"github.com/gatehouse-dev/gatehouse/model"
)

type noopServer struct {
	authv3.UnimplementedAuthorizationServer
	ok *authv3.OkHttpResponse
}

func (n noopServer) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return &authv3.CheckResponse{Status: &status.Status{}, HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: n.ok}}, nil
}

// startNoop serves the no-op Check on a free loopback port; every answer
// is ok (nil: an empty OK).
func startNoop(ok *authv3.OkHttpResponse) (string, func(), error) {
	return startNoopOn("tcp", "127.0.0.1:0", ok)
}

// startNoopOn serves the no-op Check on a listener of the network given
// (tcp or unix).
func startNoopOn(network, addr string, ok *authv3.OkHttpResponse) (string, func(), error) {
	l, err := net.Listen(network, addr)
	if err != nil {
		return "", nil, err
	}
	g := grpc.NewServer()
	if ok == nil {
		ok = &authv3.OkHttpResponse{}
	}
	authv3.RegisterAuthorizationServer(g, noopServer{ok: ok})
	go func() { _ = g.Serve(l) }()
	return l.Addr().String(), g.Stop, nil
}

// gatehouseHeaders is the OK answer gatehouse gives alice on orders: the
// identity headers with a real ES256 assertion, and the token removed.
// Served by the no-op server it separates what these headers cost Envoy
// from what gatehouse's decision costs.
func gatehouseHeaders(m *model.Model) (*authv3.OkHttpResponse, error) {
	signer, err := extauthz.NewSigner(extauthz.SignerConfig{Issuer: "gatehouse", Lifetime: 30 * time.Second, Rotate: 24 * time.Hour})
	if err != nil {
		return nil, err
	}
	route := m.Policies[0].RouteID
	groups := []string{"group:default/payments"}
	assertion, _, err := signer.Sign(extauthz.Assertion{Subject: "user:default/alice", Audience: "component:default/orders", Kind: "user",
		Groups: groups, Route: route, Email: "alice@example.com"}, time.Now())
	if err != nil {
		return nil, err
	}
	set := func(k, v string) *core.HeaderValueOption {
		return &core.HeaderValueOption{Header: &core.HeaderValue{Key: k, Value: v}, AppendAction: core.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD}
	}
	return &authv3.OkHttpResponse{HeadersToRemove: []string{"authorization"}, Headers: []*core.HeaderValueOption{
		set("x-gatehouse-user", "user:default/alice"), set("x-gatehouse-groups", strings.Join(groups, ",")),
		set("x-gatehouse-entity", "component:default/orders"), set("x-gatehouse-assertion", assertion),
		set("x-gatehouse-decision-id", "0b7a3c1e-5d2f-4f8e-9a6b-1c2d3e4f5a6b"),
	}}, nil
}

// startHTTPNoop is the same floor for Envoy's other ext_authz transport: an
// HTTP/1.1 server answering 200 to every check, and the ext_authz filter
// (http_service) and cluster that call it.
func startHTTPNoop() (authzSetup, func(), error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return authzSetup{}, nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header()["Content-Length"] = []string{"0"}
		w.WriteHeader(200)
	})}
	go func() { _ = srv.Serve(l) }()
	port := uint32(l.Addr().(*net.TCPAddr).Port)
	cl := &clusterv3.Cluster{
		Name:                 "noop_http_authz",
		ConnectTimeout:       durationpb.New(time.Second),
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		// As for gatehouse's gRPC cluster: no circuit breaker in the way.
		CircuitBreakers: &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
			MaxConnections: wrapperspb.UInt32(1 << 20), MaxPendingRequests: wrapperspb.UInt32(1 << 20), MaxRequests: wrapperspb.UInt32(1 << 20),
		}}},
		LoadAssignment: &endpoint.ClusterLoadAssignment{ClusterName: "noop_http_authz", Endpoints: []*endpoint.LocalityLbEndpoints{{
			LbEndpoints: []*endpoint.LbEndpoint{{HostIdentifier: &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{
				Address: &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
					Address: "127.0.0.1", PortSpecifier: &core.SocketAddress_PortValue{PortValue: port},
				}}},
			}}}},
		}}},
	}
	a, err := anypb.New(&extauthzv3.ExtAuthz{
		Services: &extauthzv3.ExtAuthz_HttpService{HttpService: &extauthzv3.HttpService{ServerUri: &core.HttpUri{
			Uri: "http://noop-authz", HttpUpstreamType: &core.HttpUri_Cluster{Cluster: cl.Name}, Timeout: durationpb.New(500 * time.Millisecond),
		}}},
		StatusOnError: &typev3.HttpStatus{Code: typev3.StatusCode_ServiceUnavailable},
	})
	if err != nil {
		srv.Close()
		return authzSetup{}, nil, err
	}
	return authzSetup{
		filters:  []*hcm.HttpFilter{{Name: extAuthzFilterName, ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: a}}},
		clusters: []*clusterv3.Cluster{cl},
	}, func() { srv.Close() }, nil
}

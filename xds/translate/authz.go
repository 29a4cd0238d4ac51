package translate

import (
	"fmt"
	"net"
	"strconv"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	mutationv3 "github.com/envoyproxy/go-control-plane/envoy/config/common/mutation_rules/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	headermutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/gatehouse-dev/gatehouse/model"
)

const (
	// AuthzClusterName is the cluster, sent over CDS, that reaches
	// gatehouse's ext_authz service.
	AuthzClusterName = "gatehouse_ext_authz"
	extAuthzFilter   = "envoy.filters.http.ext_authz"
	headerMutFilter  = "envoy.filters.http.header_mutation"
)

// httpFilters is the one place the HTTP filter order is decided:
//  1. header_mutation: strip identity headers a client may have sent, then
//     set model.RouteHeader to the name (id) of the route Envoy chose;
//  2. ext_authz: every request is checked by gatehouse (fail closed);
//  3. router.
func httpFilters(opts Options) ([]*hcmFilter, error) {
	var muts []*mutationv3.HeaderMutation
	for _, h := range model.IdentityHeaders {
		muts = append(muts, &mutationv3.HeaderMutation{Action: &mutationv3.HeaderMutation_Remove{Remove: h}})
	}
	muts = append(muts, &mutationv3.HeaderMutation{Action: &mutationv3.HeaderMutation_Append{Append: &core.HeaderValueOption{
		Header:       &core.HeaderValue{Key: model.RouteHeader, Value: "%ROUTE_NAME%"},
		AppendAction: core.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}}})
	strip, err := anypb.New(&headermutationv3.HeaderMutation{Mutations: &headermutationv3.Mutations{RequestMutations: muts}})
	if err != nil {
		return nil, err
	}
	authz, err := anypb.New(&extauthzv3.ExtAuthz{
		Services: &extauthzv3.ExtAuthz_GrpcService{GrpcService: &core.GrpcService{
			TargetSpecifier: &core.GrpcService_EnvoyGrpc_{EnvoyGrpc: &core.GrpcService_EnvoyGrpc{ClusterName: AuthzClusterName}},
			Timeout:         durationpb.New(opts.AuthzTimeout),
		}},
		TransportApiVersion: core.ApiVersion_V3,
		// Nothing fails open: if gatehouse cannot answer, the request is
		// refused with 503.
		FailureModeAllow: false,
		StatusOnError:    &typev3.HttpStatus{Code: typev3.StatusCode_ServiceUnavailable},
		// The decision depends on the route, never on a body.
		ClearRouteCache: false,
		// Only the headers Check reads travel to it: the token (header or
		// cookie), the request id (the decision id) and any x-gatehouse-*
		// a client sent (Check removes them all). Other headers, cookies
		// included when no session cookie is configured, stay in Envoy, and
		// each Check is smaller to encode and decode (bench/datapath).
		AllowedHeaders: &matcherv3.ListStringMatcher{Patterns: []*matcherv3.StringMatcher{
			{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "authorization"}},
			{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "cookie"}},
			{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "x-request-id"}},
			{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: model.HeaderPrefix}},
		}},
	})
	if err != nil {
		return nil, err
	}
	router, err := routerAny()
	if err != nil {
		return nil, err
	}
	return []*hcmFilter{
		{Name: headerMutFilter, ConfigType: &hcmFilterTyped{TypedConfig: strip}},
		{Name: extAuthzFilter, ConfigType: &hcmFilterTyped{TypedConfig: authz}},
		{Name: "envoy.filters.http.router", ConfigType: &hcmFilterTyped{TypedConfig: router}},
	}, nil
}

// routeAuthz is a route's own ext_authz setting: public-path routes skip
// the check; sidecar inbound routes carry their id and the mesh flag to
// Check. Edge routes have none: their id reaches Check in model.RouteHeader (an
// O(1) policy lookup there), and nothing about the policy is in the route:
// who may call it lives in gatehouse, so a policy edit (owners, consumers,
// rules) sends Envoy nothing, and a route is re-sent only when its routing
// changes.
func routeAuthz(r model.Route, meshInbound bool) (map[string]*anypb.Any, error) {
	if !r.Public && !meshInbound {
		return nil, nil
	}
	per := &extauthzv3.ExtAuthzPerRoute{}
	if r.Public {
		per.Override = &extauthzv3.ExtAuthzPerRoute_Disabled{Disabled: true}
	} else {
		ext := map[string]string{model.CtxRouteID: r.ID, model.CtxMesh: model.MeshInbound}
		per.Override = &extauthzv3.ExtAuthzPerRoute_CheckSettings{CheckSettings: &extauthzv3.CheckSettings{ContextExtensions: ext}}
	}
	// Deterministic: the context extensions are a map, and anypb.New would
	// encode it in random order (a new RDS version on every translation).
	a := &anypb.Any{}
	if err := anypb.MarshalFrom(a, per, proto.MarshalOptions{Deterministic: true}); err != nil {
		return nil, err
	}
	return map[string]*anypb.Any{extAuthzFilter: a}, nil
}

// authzCluster reaches gatehouse's ext_authz gRPC listener.
func authzCluster(opts Options) (*clusterv3.Cluster, error) {
	c, err := GRPCCluster(AuthzClusterName, opts.AuthzAddress, "authz address", opts.AuthzTLS)
	if err != nil {
		return nil, err
	}
	// Every request is checked: the default limit of 1024 concurrent
	// requests per cluster would turn load into 503s.
	c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
		MaxConnections: wrapperspb.UInt32(1 << 20), MaxPendingRequests: wrapperspb.UInt32(1 << 20), MaxRequests: wrapperspb.UInt32(1 << 20),
	}}}
	return c, nil
}

// GRPCCluster is a cluster that reaches a gatehouse gRPC listener (xDS,
// from the bootstrap, or ext_authz) over HTTP/2 with keepalives; STATIC
// for an IP, STRICT_DNS for a name. what names the address in errors.
func GRPCCluster(name, addr, what string, tls *UpstreamTLS) (*clusterv3.Cluster, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("%s %q is not host:port: %v", what, addr, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("%s %q has an invalid port", what, addr)
	}
	h2, err := anypb.New(&httpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
			ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &core.Http2ProtocolOptions{
				ConnectionKeepalive: &core.KeepaliveSettings{Interval: durationpb.New(30 * time.Second), Timeout: durationpb.New(5 * time.Second)},
			}},
		}},
	})
	if err != nil {
		return nil, err
	}
	typ := clusterv3.Cluster_STATIC
	if net.ParseIP(host) == nil {
		typ = clusterv3.Cluster_STRICT_DNS
	}
	var ts *core.TransportSocket
	if tls != nil {
		if ts, err = tlsSocket(tls); err != nil {
			return nil, err
		}
	}
	return &clusterv3.Cluster{
		Name:                          name,
		TransportSocket:               ts,
		ConnectTimeout:                durationpb.New(time.Second),
		ClusterDiscoveryType:          &clusterv3.Cluster_Type{Type: typ},
		TypedExtensionProtocolOptions: map[string]*anypb.Any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": h2},
		LoadAssignment: &endpoint.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpoint.LocalityLbEndpoints{{
			LbEndpoints: []*endpoint.LbEndpoint{{HostIdentifier: &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{
				Address: &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
					Address: host, PortSpecifier: &core.SocketAddress_PortValue{PortValue: uint32(port)},
				}}},
			}}}},
		}}},
	}, nil
}

// tlsSocket is the client side of TLS to a gatehouse listener (gRPC, so h2).
func tlsSocket(t *UpstreamTLS) (*core.TransportSocket, error) {
	vc := &tlsv3.CertificateValidationContext{TrustedCa: &core.DataSource{Specifier: &core.DataSource_Filename{Filename: t.CAFile}}}
	if t.ServerName != "" {
		vc.MatchTypedSubjectAltNames = []*tlsv3.SubjectAltNameMatcher{{
			SanType: tlsv3.SubjectAltNameMatcher_DNS,
			Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: t.ServerName}},
		}}
	}
	ctx := &tlsv3.UpstreamTlsContext{
		Sni: t.ServerName,
		CommonTlsContext: &tlsv3.CommonTlsContext{
			AlpnProtocols:         []string{"h2"},
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: vc},
		},
	}
	if t.CertFile != "" {
		ctx.CommonTlsContext.TlsCertificates = []*tlsv3.TlsCertificate{{
			CertificateChain: &core.DataSource{Specifier: &core.DataSource_Filename{Filename: t.CertFile}},
			PrivateKey:       &core.DataSource{Specifier: &core.DataSource_Filename{Filename: t.KeyFile}},
		}}
	}
	a, err := anypb.New(ctx)
	if err != nil {
		return nil, err
	}
	return &core.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &core.TransportSocket_TypedConfig{TypedConfig: a}}, nil
}

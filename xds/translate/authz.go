package translate

import (
	"fmt"
	"net"
	"strconv"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

const (
	// AuthzClusterName is the cluster, sent over CDS, that reaches
	// gatehouse's ext_authz service.
	AuthzClusterName = "gatehouse_ext_authz"
)

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

package translate

import (
	"fmt"
	"net"
	"strconv"
	"strings"
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

// authzCluster reaches gatehouse's ext_authz gRPC listener on every
// replica (opts.AuthzAddress: one address, or several comma-separated).
func authzCluster(opts Options) (*clusterv3.Cluster, error) {
	c, err := GRPCCluster(AuthzClusterName, SplitAddresses(opts.AuthzAddress), "authz address", opts.AuthzTLS)
	if err != nil {
		return nil, err
	}
	// Every request is checked: the default limit of 1024 concurrent
	// requests per cluster would turn load into 503s. Likewise the default
	// 3 concurrent retries: when a replica goes away with more Checks in
	// flight than that, the others were refused their retry
	// (upstream_rq_retry_overflow) and answered 503. A Check is retried
	// only when it never reached a decision, at most twice (checkRetryPolicy).
	c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
		MaxConnections: wrapperspb.UInt32(1 << 20), MaxPendingRequests: wrapperspb.UInt32(1 << 20), MaxRequests: wrapperspb.UInt32(1 << 20),
		MaxRetries: wrapperspb.UInt32(1 << 20),
	}}}
	return c, nil
}

// SplitAddresses splits a comma-separated list of host:port addresses
// (one per gatehouse replica), dropping blanks.
func SplitAddresses(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// GRPCCluster is a cluster that reaches a gatehouse gRPC listener (xDS,
// from the bootstrap, or ext_authz) on every replica, over HTTP/2 with
// keepalives: one endpoint per address, STATIC for IPs, STRICT_DNS for
// names (a headless Service resolves to every ready replica). Replicas are
// health-checked over gRPC (grpc.health.v1, NOT_SERVING while a replica
// starts or drains) and ejected after a connection failure, so a replica
// that goes away stops getting Checks and xDS streams. what names the
// address in errors.
func GRPCCluster(name string, addrs []string, what string, tls *UpstreamTLS) (*clusterv3.Cluster, error) {
	if len(addrs) == 0 {
		return nil, fmt.Errorf("%s is empty: give host:port", what)
	}
	var eps []*endpoint.LbEndpoint
	typ := clusterv3.Cluster_STATIC
	for _, addr := range addrs {
		host, portStr, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("%s %q is not host:port: %v", what, addr, err)
		}
		port, err := strconv.ParseUint(portStr, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("%s %q has an invalid port", what, addr)
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
		HealthChecks:                  []*core.HealthCheck{replicaHealthCheck()},
		OutlierDetection:              replicaOutlierDetection(),
		LoadAssignment: &endpoint.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpoint.LocalityLbEndpoints{{
			LbEndpoints: eps,
		}}},
	}, nil
}

// replicaHealthCheck asks each replica's gRPC health service every second
// (also while the cluster has no traffic: a replica that starts is found
// at once). One NOT_SERVING or failed check marks the replica unhealthy: a
// draining replica answers NOT_SERVING for shutdown.drain (5s by default),
// so Envoy has stopped sending it Checks before it closes its listeners.
func replicaHealthCheck() *core.HealthCheck {
	return &core.HealthCheck{
		Timeout:            durationpb.New(time.Second),
		Interval:           durationpb.New(time.Second),
		NoTrafficInterval:  durationpb.New(time.Second),
		IntervalJitter:     durationpb.New(100 * time.Millisecond),
		UnhealthyThreshold: wrapperspb.UInt32(1),
		HealthyThreshold:   wrapperspb.UInt32(1),
		HealthChecker:      &core.HealthCheck_GrpcHealthCheck_{GrpcHealthCheck: &core.HealthCheck_GrpcHealthCheck{}},
	}
}

// replicaOutlierDetection ejects a replica after two connection failures
// in a row (refused, reset, timed out: a killed replica), without waiting
// for the next health check; half the replicas at most.
func replicaOutlierDetection() *clusterv3.OutlierDetection {
	return &clusterv3.OutlierDetection{
		SplitExternalLocalOriginErrors:         true,
		ConsecutiveLocalOriginFailure:          wrapperspb.UInt32(2),
		EnforcingConsecutiveLocalOriginFailure: wrapperspb.UInt32(100),
		Interval:                               durationpb.New(time.Second),
		BaseEjectionTime:                       durationpb.New(5 * time.Second),
		MaxEjectionPercent:                     wrapperspb.UInt32(50),
	}
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

package translate

import (
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/gatehouse-dev/gatehouse/model"
)

// buildCluster renders one upstream with its endpoints inline: STATIC for IP
// addresses, STRICT_DNS for host names (Envoy resolves them). https upstreams
// verify the server certificate against opts.UpstreamCAFile and send SNI.
//
// Why no EDS: endpoints come from catalog annotations and change at catalog
// speed, so a changed endpoint re-sends one cluster (with delta xDS, only that
// cluster), and a separate type would cost every Envoy one more subscription
// and its ordering (CDS before EDS) for nothing. (It also kept clear of
// go-control-plane v0.14.0's snapshot cache dropping ADS EDS watches, back
// when gatehouse served through it; see docs/xds.md.)
func buildCluster(c model.Cluster, opts Options) (*clusterv3.Cluster, error) {
	cl := &clusterv3.Cluster{
		Name:           c.Name,
		ConnectTimeout: durationpb.New(5 * time.Second),
		LbPolicy:       clusterv3.Cluster_ROUND_ROBIN,
	}
	cl.LoadAssignment = loadAssignment(c)
	if c.Discovery == model.DiscoveryStatic {
		cl.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}
	} else {
		cl.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS}
		cl.DnsLookupFamily = clusterv3.Cluster_V4_PREFERRED
	}
	if c.TLS {
		tc := &tlsv3.UpstreamTlsContext{
			CommonTlsContext: &tlsv3.CommonTlsContext{
				ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
					TrustedCa: &core.DataSource{Specifier: &core.DataSource_Filename{Filename: opts.UpstreamCAFile}},
				}},
			},
		}
		if c.Discovery == model.DiscoveryDNS {
			tc.Sni = c.Endpoints[0].Host
		}
		a, err := anypb.New(tc)
		if err != nil {
			return nil, err
		}
		cl.TransportSocket = &core.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &core.TransportSocket_TypedConfig{TypedConfig: a}}
	}
	return cl, nil
}

func loadAssignment(c model.Cluster) *endpoint.ClusterLoadAssignment {
	la := &endpoint.ClusterLoadAssignment{ClusterName: c.Name}
	var lbs []*endpoint.LbEndpoint
	for _, ep := range c.Endpoints {
		lbs = append(lbs, &endpoint.LbEndpoint{HostIdentifier: &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{
			Address: &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
				Address: ep.Host, PortSpecifier: &core.SocketAddress_PortValue{PortValue: ep.Port},
			}}},
		}}})
	}
	la.Endpoints = []*endpoint.LocalityLbEndpoints{{LbEndpoints: lbs}}
	return la
}

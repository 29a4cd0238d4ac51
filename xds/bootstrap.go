package xds

import (
	"fmt"
	"net"
	"strconv"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"sigs.k8s.io/yaml"
)

// XDSClusterName is the bootstrap's static cluster that reaches gatehouse.
const XDSClusterName = "gatehouse_xds"

// BootstrapOptions describe one Envoy's bootstrap.
type BootstrapOptions struct {
	NodeID     string
	Cluster    string // Envoy service cluster (node.cluster)
	Role       string
	XDSAddress string // host:port of gatehouse's xDS listener
	Delta      bool   // DELTA_GRPC instead of GRPC
	AdminPort  uint32 // Envoy admin on 127.0.0.1; 0 = 9901
	ListenPort uint32 // overrides the edge listener port for this node; 0 = gatehouse's edge.port
}

// Bootstrap builds an Envoy bootstrap that takes all its configuration from
// gatehouse over ADS.
func Bootstrap(o BootstrapOptions) (*bootstrapv3.Bootstrap, error) {
	if o.NodeID == "" {
		return nil, fmt.Errorf("node id is empty; give --node-id (unique per Envoy)")
	}
	if o.Role != RoleEdge {
		return nil, fmt.Errorf("role %q is not supported; use --role %s", o.Role, RoleEdge)
	}
	host, portStr, err := net.SplitHostPort(o.XDSAddress)
	if err != nil {
		return nil, fmt.Errorf("xds address %q is not host:port: %v", o.XDSAddress, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("xds address %q has an invalid port", o.XDSAddress)
	}
	if o.Cluster == "" {
		o.Cluster = "gatehouse-" + o.Role
	}
	if o.AdminPort == 0 {
		o.AdminPort = 9901
	}
	meta := map[string]any{"role": o.Role}
	if o.ListenPort != 0 {
		meta["listen_port"] = strconv.Itoa(int(o.ListenPort))
	}
	md, err := structpb.NewStruct(meta)
	if err != nil {
		return nil, err
	}
	apiType := core.ApiConfigSource_GRPC
	if o.Delta {
		apiType = core.ApiConfigSource_DELTA_GRPC
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
	discovery := clusterv3.Cluster_STATIC
	if net.ParseIP(host) == nil {
		discovery = clusterv3.Cluster_STRICT_DNS
	}
	return &bootstrapv3.Bootstrap{
		Node: &core.Node{Id: o.NodeID, Cluster: o.Cluster, Metadata: md},
		Admin: &bootstrapv3.Admin{Address: &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
			Address: "127.0.0.1", PortSpecifier: &core.SocketAddress_PortValue{PortValue: o.AdminPort},
		}}}},
		DynamicResources: &bootstrapv3.Bootstrap_DynamicResources{
			AdsConfig: &core.ApiConfigSource{
				ApiType:                   apiType,
				TransportApiVersion:       core.ApiVersion_V3,
				SetNodeOnFirstMessageOnly: true,
				GrpcServices:              []*core.GrpcService{{TargetSpecifier: &core.GrpcService_EnvoyGrpc_{EnvoyGrpc: &core.GrpcService_EnvoyGrpc{ClusterName: XDSClusterName}}}},
			},
			LdsConfig: adsSource(),
			CdsConfig: adsSource(),
		},
		StaticResources: &bootstrapv3.Bootstrap_StaticResources{Clusters: []*clusterv3.Cluster{{
			Name:                          XDSClusterName,
			ConnectTimeout:                durationpb.New(time.Second),
			ClusterDiscoveryType:          &clusterv3.Cluster_Type{Type: discovery},
			TypedExtensionProtocolOptions: map[string]*anypb.Any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": h2},
			LoadAssignment: &endpoint.ClusterLoadAssignment{ClusterName: XDSClusterName, Endpoints: []*endpoint.LocalityLbEndpoints{{
				LbEndpoints: []*endpoint.LbEndpoint{{HostIdentifier: &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{
					Address: &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
						Address: host, PortSpecifier: &core.SocketAddress_PortValue{PortValue: uint32(port)},
					}}},
				}}}},
			}}},
		}}},
	}, nil
}

// ToYAML renders a protobuf message as YAML (via protojson, so field names
// and Any types read as in Envoy's docs).
func ToYAML(m proto.Message) ([]byte, error) {
	j, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		return nil, err
	}
	return yaml.JSONToYAML(j)
}

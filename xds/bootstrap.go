package xds

import (
	"fmt"
	"strconv"
	"strings"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/gatehouse-dev/gatehouse/meshca"
	"github.com/gatehouse-dev/gatehouse/xds/translate"
)

// XDSClusterName is the bootstrap's static cluster that reaches gatehouse.
const XDSClusterName = "gatehouse_xds"

// BootstrapOptions describe one Envoy's bootstrap.
type BootstrapOptions struct {
	NodeID  string
	Cluster string // Envoy service cluster (node.cluster)
	Role    string
	// XDSAddresses: host:port of gatehouse's xDS listener on every
	// replica (or one name that resolves to them all).
	XDSAddresses []string
	Delta        bool   // DELTA_GRPC instead of GRPC
	AdminPort    uint32 // Envoy admin on 127.0.0.1; 0 = 9901
	ListenPort   uint32 // overrides the edge listener port for this node; 0 = gatehouse's edge.port
	// XDSTLS, when set, makes the Envoy use TLS to gatehouse's xDS listener.
	XDSTLS *UpstreamTLS
	// Sidecar: the component and ports of a sidecar (role sidecar).
	Sidecar Sidecar
}

// Bootstrap builds an Envoy bootstrap that takes all its configuration from
// gatehouse over ADS.
func Bootstrap(o BootstrapOptions) (*bootstrapv3.Bootstrap, error) {
	if o.NodeID == "" {
		return nil, fmt.Errorf("node id is empty; give --node-id (unique per Envoy)")
	}
	meta := map[string]any{"role": o.Role}
	switch o.Role {
	case RoleEdge:
		if o.ListenPort != 0 {
			meta["listen_port"] = strconv.Itoa(int(o.ListenPort))
		}
	case RoleSidecar:
		sc := o.Sidecar
		if _, _, err := meshca.ParseComponent(strings.ToLower(sc.Component)); err != nil {
			return nil, fmt.Errorf("--component %q: a sidecar needs its Component's full ref, e.g. --component component:default/orders", sc.Component)
		}
		if sc.AppPort == 0 {
			return nil, fmt.Errorf("--app-port is required for a sidecar: the port the application listens on at 127.0.0.1")
		}
		meta["component"] = strings.ToLower(sc.Component)
		meta["app_port"] = strconv.Itoa(int(sc.AppPort))
		if sc.InboundPort != 0 {
			meta["inbound_port"] = strconv.Itoa(int(sc.InboundPort))
		}
		if sc.OutboundPort != 0 {
			meta["outbound_port"] = strconv.Itoa(int(sc.OutboundPort))
		}
		if sc.InboundAddress != "" {
			meta["inbound_address"] = sc.InboundAddress
		}
	default:
		return nil, fmt.Errorf("role %q is not supported; use --role %s or --role %s", o.Role, RoleEdge, RoleSidecar)
	}
	xdsCluster, err := translate.GRPCCluster(XDSClusterName, o.XDSAddresses, "xds address", o.XDSTLS)
	if err != nil {
		return nil, err
	}
	if o.Cluster == "" {
		o.Cluster = "gatehouse-" + o.Role
	}
	if o.AdminPort == 0 {
		o.AdminPort = 9901
	}
	md, err := structpb.NewStruct(meta)
	if err != nil {
		return nil, err
	}
	apiType := core.ApiConfigSource_GRPC
	if o.Delta {
		apiType = core.ApiConfigSource_DELTA_GRPC
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
			LdsConfig: translate.ADSSource(),
			CdsConfig: translate.ADSSource(),
		},
		StaticResources: &bootstrapv3.Bootstrap_StaticResources{Clusters: []*clusterv3.Cluster{xdsCluster}},
	}, nil
}

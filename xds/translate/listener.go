package translate

import (
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// ADSSource points a dynamic resource at the ADS stream it came on (the
// bootstrap's too).
func ADSSource() *core.ConfigSource {
	return &core.ConfigSource{
		ResourceApiVersion:    core.ApiVersion_V3,
		ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}},
	}
}

// edgeListener is the edge's HTTP listener with Envoy's edge best practices:
// path normalisation before routing (and, later, authorization), escaped
// slashes unescaped and redirected, the client address taken from the
// connection (use_remote_address, no trusted hops), header timeouts, and
// header names with underscores rejected (they can smuggle around filters).
func edgeListener(addr string, port uint32, opts Options) (*listener.Listener, error) {
	filters, err := hcmFilters(checkedFilters, opts)
	if err != nil {
		return nil, err
	}
	return httpListener(EdgeListenerName, "edge", EdgeRouteConfigName, addr, port, filters, nil)
}

// httpListener is an HTTP listener whose routes come over RDS, with the
// edge's protections (every listener gatehouse writes has them).
func httpListener(name, statPrefix, routeConfig, addr string, port uint32, filters []*hcm.HttpFilter, ts *core.TransportSocket) (*listener.Listener, error) {
	m := &hcm.HttpConnectionManager{
		StatPrefix: statPrefix,
		CodecType:  hcm.HttpConnectionManager_AUTO,
		RouteSpecifier: &hcm.HttpConnectionManager_Rds{Rds: &hcm.Rds{
			ConfigSource: ADSSource(), RouteConfigName: routeConfig,
		}},
		HttpFilters:                  filters,
		NormalizePath:                wrapperspb.Bool(true),
		MergeSlashes:                 true,
		PathWithEscapedSlashesAction: hcm.HttpConnectionManager_UNESCAPE_AND_REDIRECT,
		StripPortMode:                &hcm.HttpConnectionManager_StripAnyHostPort{StripAnyHostPort: true},
		UseRemoteAddress:             wrapperspb.Bool(true),
		XffNumTrustedHops:            0,
		RequestHeadersTimeout:        durationpb.New(10 * time.Second),
		StreamIdleTimeout:            durationpb.New(5 * time.Minute),
		CommonHttpProtocolOptions: &core.HttpProtocolOptions{
			IdleTimeout:                  durationpb.New(time.Hour),
			HeadersWithUnderscoresAction: core.HttpProtocolOptions_REJECT_REQUEST,
		},
		Http2ProtocolOptions: &core.Http2ProtocolOptions{
			MaxConcurrentStreams:        wrapperspb.UInt32(100),
			InitialStreamWindowSize:     wrapperspb.UInt32(64 * 1024),
			InitialConnectionWindowSize: wrapperspb.UInt32(1024 * 1024),
		},
	}
	hcmAny, err := anypb.New(m)
	if err != nil {
		return nil, err
	}
	return &listener.Listener{
		Name: name,
		Address: &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
			Address: addr, PortSpecifier: &core.SocketAddress_PortValue{PortValue: port},
		}}},
		PerConnectionBufferLimitBytes: wrapperspb.UInt32(32 * 1024),
		FilterChains: []*listener.FilterChain{{
			TransportSocket: ts,
			Filters: []*listener.Filter{{
				Name:       "envoy.filters.network.http_connection_manager",
				ConfigType: &listener.Filter_TypedConfig{TypedConfig: hcmAny},
			}},
		}},
	}, nil
}

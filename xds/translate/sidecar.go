package translate

import (
	"encoding/json"
	"fmt"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/gatehouse-dev/gatehouse/meshca"
	"github.com/gatehouse-dev/gatehouse/model"
)

// RoleSidecar is a mesh sidecar in front of one Component.
const RoleSidecar = "sidecar"

// Names of what every sidecar gets.
const (
	SidecarInboundName  = "sidecar_inbound"  // listener and route configuration
	SidecarOutboundName = "sidecar_outbound" // listener and route configuration
	LocalAppCluster     = "sidecar_local_app"
	// IdentitySecret and TrustSecret are the SDS secrets of a sidecar: its
	// workload certificate and the mesh CA bundle.
	IdentitySecret = "gatehouse_identity"
	TrustSecret    = "gatehouse_trust"
	meshClusterPfx = "mesh|"
)

// Default sidecar ports (node metadata inbound_port, outbound_port).
const (
	DefaultInboundPort  = 15006
	DefaultOutboundPort = 15001
)

// Sidecar is what a sidecar node says about itself in its metadata.
type Sidecar struct {
	Component      string `json:"component"`                // component:<namespace>/<name>
	AppPort        uint32 `json:"appPort"`                  // the application, on 127.0.0.1
	InboundPort    uint32 `json:"inboundPort"`              // mTLS from other sidecars
	InboundAddress string `json:"inboundAddress,omitempty"` // default 0.0.0.0
	OutboundPort   uint32 `json:"outboundPort"`             // plain HTTP from the application, on 127.0.0.1
}

// translateSidecar builds a sidecar's listeners, routes and clusters (its
// secrets are per node; the server adds them). Everything here depends only
// on the model and the sidecar's component and ports, so sidecars of one
// component share these resources.
func translateSidecar(m *model.Model, n Node, opts Options) (*Resources, error) {
	sc := n.Sidecar
	if sc == nil || sc.Component == "" {
		return nil, fmt.Errorf("node %q has role sidecar but no component; set node.metadata.component (gatehouse bootstrap --role sidecar --component component:<namespace>/<name>)", n.ID)
	}
	if opts.TrustDomain == "" {
		return nil, fmt.Errorf("node %q is a sidecar but the mesh is not enabled (fix: set mesh.trust_domain and the mesh CA in gatehouse's configuration)", n.ID)
	}
	svc := m.MeshService(sc.Component)
	if svc == nil {
		return nil, fmt.Errorf("node %q: %s is not a mesh Component of the catalog (fix: check node.metadata.component; a Component joins the mesh with the annotation gatehouse.dev/mesh-address: <host:port of its sidecar's inbound listener>)", n.ID, sc.Component)
	}
	res := &Resources{}
	// Inbound: mTLS from other sidecars, every request checked by ext_authz
	// with the verified peer, then the local application.
	filters, err := hcmFilters(checkedFilters, opts)
	if err != nil {
		return nil, err
	}
	dts, err := inboundTLS(opts.TrustDomain)
	if err != nil {
		return nil, err
	}
	addr := sc.InboundAddress
	if addr == "" {
		addr = "0.0.0.0"
	}
	in, err := httpListener(SidecarInboundName, "inbound", SidecarInboundName, addr, sc.InboundPort, filters, dts)
	if err != nil {
		return nil, err
	}
	// Outbound: the application's plain HTTP calls, routed only to what its
	// component declares in the catalog.
	plain, err := hcmFilters(plainFilters, opts)
	if err != nil {
		return nil, err
	}
	out, err := httpListener(SidecarOutboundName, "outbound", SidecarOutboundName, "127.0.0.1", sc.OutboundPort, plain, nil)
	if err != nil {
		return nil, err
	}
	res.Listeners = []types.Resource{in, out}

	inRC, err := inboundRoutes(svc, opts)
	if err != nil {
		return nil, err
	}
	res.Routes = []types.Resource{inRC, outboundRoutes(svc)}

	ac, err := authzCluster(opts)
	if err != nil {
		return nil, err
	}
	app, err := buildCluster(model.Cluster{Name: LocalAppCluster, Discovery: model.DiscoveryStatic, Endpoints: []model.Endpoint{{Host: "127.0.0.1", Port: sc.AppPort}}}, opts)
	if err != nil {
		return nil, err
	}
	res.Clusters = []types.Resource{ac, app}
	seen := map[string]bool{}
	for _, t := range svc.Outbound {
		if t.Provider == "" || seen[t.Provider] {
			continue
		}
		seen[t.Provider] = true
		c, err := MeshCluster(m.MeshService(t.Provider), opts)
		if err != nil {
			return nil, err
		}
		res.Clusters = append(res.Clusters, c)
	}
	return res, nil
}

// inboundRoutes carry no model version: it would change every sidecar's
// routes, and push them to the whole fleet, on any change anywhere in the
// catalog (Check needs only the route id).
func inboundRoutes(svc *model.MeshService, opts Options) (*route.RouteConfiguration, error) {
	vh := &route.VirtualHost{Name: "inbound", Domains: []string{"*"}}
	for _, r := range svc.Inbound {
		perFilter, err := routeFilterConfigs(checkedFilters, r, true, opts)
		if err != nil {
			return nil, err
		}
		vh.Routes = append(vh.Routes, &route.Route{
			Name: r.ID, Match: routeMatch(r), TypedPerFilterConfig: perFilter, RequestHeadersToRemove: credentialHeaders(r, opts),
			Action: &route.Route_Route{Route: &route.RouteAction{
				ClusterSpecifier: &route.RouteAction_Cluster{Cluster: LocalAppCluster},
				Timeout:          durationpb.New(r.Timeout.Std()),
			}},
		})
	}
	return &route.RouteConfiguration{Name: SidecarInboundName, VirtualHosts: []*route.VirtualHost{vh}, RequestHeadersToRemove: []string{model.RouteHeader}}, nil
}

// outboundRoutes: one virtual host per declared name; everything else is
// refused by the sidecar itself with a body that says what to declare.
func outboundRoutes(svc *model.MeshService) *route.RouteConfiguration {
	rc := &route.RouteConfiguration{Name: SidecarOutboundName}
	jsonHdr := []*core.HeaderValueOption{{Header: &core.HeaderValue{Key: "content-type", Value: "application/json"}, AppendAction: core.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD}}
	for _, t := range svc.Outbound {
		vh := &route.VirtualHost{Name: t.Host, Domains: []string{t.Host}}
		if t.Provider == "" {
			vh.ResponseHeadersToAdd = jsonHdr
			vh.Routes = []*route.Route{{Name: "unreachable", Match: &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}},
				Action: &route.Route_DirectResponse{DirectResponse: &route.DirectResponseAction{Status: 503,
					Body: inlineBody(map[string]string{"error": "unavailable", "host": t.Host, "declared": t.Ref, "reason": t.Unreachable})}}}}
		} else {
			vh.Routes = []*route.Route{{Name: t.Ref, Match: &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}},
				Action: &route.Route_Route{Route: &route.RouteAction{
					ClusterSpecifier: &route.RouteAction_Cluster{Cluster: meshClusterPfx + t.Provider},
					Timeout:          durationpb.New(model.DefaultRouteTimeout),
				}}}}
		}
		rc.VirtualHosts = append(rc.VirtualHosts, vh)
	}
	var declared []string
	for _, t := range svc.Outbound {
		declared = append(declared, t.Host)
	}
	rc.VirtualHosts = append(rc.VirtualHosts, &route.VirtualHost{
		Name: "undeclared", Domains: []string{"*"}, ResponseHeadersToAdd: jsonHdr,
		Routes: []*route.Route{{Name: "undeclared", Match: &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}},
			Action: &route.Route_DirectResponse{DirectResponse: &route.DirectResponseAction{Status: 403, Body: inlineBody(map[string]any{
				"error":    "egress_not_declared",
				"message":  svc.Component + " does not declare this host in the catalog; its sidecar routes only what spec.consumesApis and spec.dependsOn declare",
				"fix":      "add the API to spec.consumesApis (or the Component to spec.dependsOn) of " + svc.Component + ", and call it as http://<name>.<namespace>." + model.MeshDomain,
				"declared": nonNil(declared),
			})}}}},
	})
	return rc
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func inlineBody(v any) *core.DataSource {
	b, _ := json.Marshal(v)
	return &core.DataSource{Specifier: &core.DataSource_InlineString{InlineString: string(b) + "\n"}}
}

func sdsSecret(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: ADSSource()}
}

// inboundTLS requires a client certificate from the mesh CA with a SPIFFE ID
// of this trust domain; certificate and CA bundle come over SDS, so renewals
// apply to new connections without draining the listener.
func inboundTLS(trustDomain string) (*core.TransportSocket, error) {
	ctx := &tlsv3.DownstreamTlsContext{
		RequireClientCertificate: wrapperspb.Bool(true),
		CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsSecret(IdentitySecret)},
			ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext: &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{
					SanType: tlsv3.SubjectAltNameMatcher_URI,
					Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "spiffe://" + trustDomain + "/"}},
				}}},
				ValidationContextSdsSecretConfig: sdsSecret(TrustSecret),
			}},
		},
	}
	a, err := anypb.New(ctx)
	if err != nil {
		return nil, err
	}
	return &core.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &core.TransportSocket_TypedConfig{TypedConfig: a}}, nil
}

// MeshCluster reaches a provider's sidecar over mTLS and accepts only the
// provider's own SPIFFE ID: a misrouted address cannot impersonate it.
func MeshCluster(svc *model.MeshService, opts Options) (*clusterv3.Cluster, error) {
	id, err := meshca.SPIFFEID(opts.TrustDomain, svc.Component)
	if err != nil {
		return nil, err
	}
	c, err := buildCluster(model.Cluster{Name: meshClusterPfx + svc.Component, Discovery: svc.Discovery, Endpoints: []model.Endpoint{svc.Address}}, Options{})
	if err != nil {
		return nil, err
	}
	ctx := &tlsv3.UpstreamTlsContext{
		CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsSecret(IdentitySecret)},
			ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext: &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{
					SanType: tlsv3.SubjectAltNameMatcher_URI,
					Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: id}},
				}}},
				ValidationContextSdsSecretConfig: sdsSecret(TrustSecret),
			}},
		},
	}
	a, err := anypb.New(ctx)
	if err != nil {
		return nil, err
	}
	c.TransportSocket = &core.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &core.TransportSocket_TypedConfig{TypedConfig: a}}
	c.ConnectTimeout = durationpb.New(2 * time.Second)
	if opts.MeshCertTTL > 0 {
		hpo, err := anypb.New(&httpv3.HttpProtocolOptions{
			CommonHttpProtocolOptions: &core.HttpProtocolOptions{MaxConnectionDuration: durationpb.New(opts.MeshCertTTL / 2)},
			UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{HttpProtocolOptions: &core.Http1ProtocolOptions{}},
			}},
		})
		if err != nil {
			return nil, err
		}
		c.TypedExtensionProtocolOptions = map[string]*anypb.Any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": hpo}
	}
	return c, nil
}

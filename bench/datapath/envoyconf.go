package main

// Static Envoy bootstraps for the scenarios that do not take their
// configuration from gatehouse. They start from exactly what gatehouse
// would send an edge for the same catalog (xds.Translate: the same
// listener settings, header_mutation strip filter, routes and upstream
// cluster); only the authorization filter differs:
//
//   - alone: no authorization filter at all (the baseline);
//   - native: jwt_authn (local JWKS, same issuer, audience and clock skew)
//     + rbac with the catalog's policy for the orders route.

import (
	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	rbacfilter "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/gatehouse-dev/gatehouse/model"
	"github.com/gatehouse-dev/gatehouse/xds"
)

const extAuthzFilterName = "envoy.filters.http.ext_authz"

// authzSetup is the authorization of a static Envoy: gatehouse's own
// ext_authz filter calling grpcAddr, or else filters (with the clusters
// they need) in its place; nothing set means no authorization at all.
type authzSetup struct {
	grpcAddr string
	filters  []*hcm.HttpFilter
	clusters []*clusterv3.Cluster
	// pipe: reach the gRPC server over this Unix socket instead.
	pipe string
	// tune changes gatehouse's ext_authz filter settings.
	tune func(*extauthzv3.ExtAuthz)
	// nghttp2: the ext_authz cluster uses the nghttp2 codec.
	nghttp2 bool
}

// staticBootstrap renders gatehouse's edge configuration for m as a static
// bootstrap with the authorization a.
func staticBootstrap(m *model.Model, listenPort, adminPort uint32, a authzSetup) (*bootstrapv3.Bootstrap, error) {
	authzAddr, authz := a.grpcAddr, a.filters
	opts := xds.DefaultOptions()
	opts.EdgeAddress, opts.EdgePort = "127.0.0.1", listenPort
	if authzAddr != "" {
		opts.AuthzAddress = authzAddr
	}
	res, err := xds.Translate(m, xds.Node{ID: "static", Role: xds.RoleEdge}, opts)
	if err != nil {
		return nil, err
	}
	l := res.Listeners[0].(*listenerv3.Listener)
	rc := res.Routes[0].(*routev3.RouteConfiguration)
	if authzAddr == "" {
		for _, vh := range rc.VirtualHosts {
			for _, r := range vh.Routes {
				delete(r.TypedPerFilterConfig, extAuthzFilterName)
			}
		}
	}
	f := l.FilterChains[0].Filters[0]
	var h hcm.HttpConnectionManager
	if err := f.GetTypedConfig().UnmarshalTo(&h); err != nil {
		return nil, err
	}
	h.RouteSpecifier = &hcm.HttpConnectionManager_RouteConfig{RouteConfig: rc}
	var filters []*hcm.HttpFilter
	for _, hf := range h.HttpFilters {
		if hf.Name == extAuthzFilterName && authzAddr == "" {
			filters = append(filters, authz...)
			continue
		}
		if hf.Name == extAuthzFilterName && a.tune != nil {
			var ea extauthzv3.ExtAuthz
			if err := hf.GetTypedConfig().UnmarshalTo(&ea); err != nil {
				return nil, err
			}
			a.tune(&ea)
			tc, err := anypb.New(&ea)
			if err != nil {
				return nil, err
			}
			hf.ConfigType = &hcm.HttpFilter_TypedConfig{TypedConfig: tc}
		}
		filters = append(filters, hf)
	}
	h.HttpFilters = filters
	hcmAny, err := anypb.New(&h)
	if err != nil {
		return nil, err
	}
	f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: hcmAny}
	var clusters []*clusterv3.Cluster
	for _, c := range res.Clusters {
		if c := c.(*clusterv3.Cluster); c.Name != xds.AuthzClusterName || authzAddr != "" {
			if c.Name == xds.AuthzClusterName && a.nghttp2 {
				key := "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
				var po httpv3.HttpProtocolOptions
				if err := c.TypedExtensionProtocolOptions[key].UnmarshalTo(&po); err != nil {
					return nil, err
				}
				po.GetExplicitHttpConfig().GetHttp2ProtocolOptions().UseOghttp2Codec = wrapperspb.Bool(false)
				if c.TypedExtensionProtocolOptions[key], err = anypb.New(&po); err != nil {
					return nil, err
				}
			}
			if c.Name == xds.AuthzClusterName && a.pipe != "" {
				c.LoadAssignment.Endpoints[0].LbEndpoints[0].GetEndpoint().Address = &core.Address{Address: &core.Address_Pipe{Pipe: &core.Pipe{Path: a.pipe}}}
			}
			clusters = append(clusters, c)
		}
	}
	clusters = append(clusters, a.clusters...)
	md, _ := structpb.NewStruct(map[string]any{"role": "edge"})
	return &bootstrapv3.Bootstrap{
		Node: &core.Node{Id: "static-edge", Cluster: "bench", Metadata: md},
		Admin: &bootstrapv3.Admin{Address: &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
			Address: "127.0.0.1", PortSpecifier: &core.SocketAddress_PortValue{PortValue: adminPort},
		}}}},
		StaticResources: &bootstrapv3.Bootstrap_StaticResources{Listeners: []*listenerv3.Listener{l}, Clusters: clusters},
	}, nil
}

// policy is the catalog's decision for the orders route, written out for
// Envoy's own filters: the owners (group payments: its members' emails, or
// the group in the token's groups claim, as gatehouse maps them) may call
// any method under /orders.
type policy struct {
	prefix       string
	memberEmails []string
	group        string
}

// nativeFilters is jwt_authn + rbac for issuer is and policy p. jwtCache
// turns on jwt_authn's verified-token cache (off by default in Envoy).
func nativeFilters(is *issuer, p policy, jwtCache bool) ([]*hcm.HttpFilter, error) {
	provider := &jwtv3.JwtProvider{
		Issuer:              is.url,
		Audiences:           []string{audience},
		JwksSourceSpecifier: &jwtv3.JwtProvider_LocalJwks{LocalJwks: &core.DataSource{Specifier: &core.DataSource_InlineString{InlineString: is.jwks}}},
		ClockSkewSeconds:    30, // gatehouse's default leeway
		PayloadInMetadata:   "jwt_payload",
		// Forward stays false: the token is removed before the upstream,
		// as gatehouse does.
	}
	if jwtCache {
		provider.JwtCacheConfig = &jwtv3.JwtCacheConfig{JwtCacheSize: 100000}
	}
	jwt := &jwtv3.JwtAuthentication{
		Providers: map[string]*jwtv3.JwtProvider{"bench": provider},
		Rules: []*jwtv3.RequirementRule{{
			Match:           &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			RequirementType: &jwtv3.RequirementRule_Requires{Requires: &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: "bench"}}},
		}},
	}
	claim := func(name string, v *matcherv3.ValueMatcher) *rbacv3.Principal {
		return &rbacv3.Principal{Identifier: &rbacv3.Principal_SourcedMetadata{SourcedMetadata: &rbacv3.SourcedMetadata{
			MetadataMatcher: &matcherv3.MetadataMatcher{
				Filter: "envoy.filters.http.jwt_authn",
				Path: []*matcherv3.MetadataMatcher_PathSegment{
					{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: "jwt_payload"}},
					{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: name}},
				},
				Value: v,
			},
		}}}
	}
	exact := func(s string) *matcherv3.StringMatcher {
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}}
	}
	var principals []*rbacv3.Principal
	for _, e := range p.memberEmails {
		principals = append(principals, claim("email", &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: exact(e)}}))
	}
	principals = append(principals, claim("groups", &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_ListMatch{ListMatch: &matcherv3.ListMatcher{
		MatchPattern: &matcherv3.ListMatcher_OneOf{OneOf: &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: exact(p.group)}}},
	}}}))
	path := func(m *matcherv3.StringMatcher) *rbacv3.Permission {
		return &rbacv3.Permission{Rule: &rbacv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{Rule: &matcherv3.PathMatcher_Path{Path: m}}}}
	}
	rbac := &rbacfilter.RBAC{Rules: &rbacv3.RBAC{
		Action: rbacv3.RBAC_ALLOW,
		Policies: map[string]*rbacv3.Policy{"orders-owners": {
			// /orders and everything below it, on segment boundaries (the
			// route's path_separated_prefix).
			Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_OrRules{OrRules: &rbacv3.Permission_Set{Rules: []*rbacv3.Permission{
				path(exact(p.prefix)),
				path(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: p.prefix + "/"}}),
			}}}}},
			Principals: principals,
		}},
	}}
	ja, err := anypb.New(jwt)
	if err != nil {
		return nil, err
	}
	ra, err := anypb.New(rbac)
	if err != nil {
		return nil, err
	}
	return []*hcm.HttpFilter{
		{Name: "envoy.filters.http.jwt_authn", ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: ja}},
		{Name: "envoy.filters.http.rbac", ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: ra}},
	}, nil
}

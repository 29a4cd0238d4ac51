package translate

import (
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	previoushostsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/gatehouse-dev/gatehouse/model"
)

const extAuthzFilter = "envoy.filters.http.ext_authz"

// extAuthz asks gatehouse's Check about every request (AuthzClusterName),
// failing closed; a route's own setting says what Check is told of it.
type extAuthz struct{}

func (extAuthz) name() string { return extAuthzFilter }

func (extAuthz) listenerConfig(opts Options) (*anypb.Any, error) {
	return anypb.New(&extauthzv3.ExtAuthz{
		Services: &extauthzv3.ExtAuthz_GrpcService{GrpcService: &core.GrpcService{
			TargetSpecifier: &core.GrpcService_EnvoyGrpc_{EnvoyGrpc: &core.GrpcService_EnvoyGrpc{ClusterName: AuthzClusterName}},
			Timeout:         durationpb.New(opts.AuthzTimeout),
			RetryPolicy:     checkRetryPolicy(opts.AuthzTimeout),
		}},
		TransportApiVersion: core.ApiVersion_V3,
		// Nothing fails open: if gatehouse cannot answer, the request is
		// refused with 503.
		FailureModeAllow: false,
		StatusOnError:    &typev3.HttpStatus{Code: typev3.StatusCode_ServiceUnavailable},
		// The decision depends on the route, never on a body.
		ClearRouteCache: false,
		// Only the headers Check reads travel to it: the token (header or
		// cookie), accept and sec-fetch-mode (a navigating browser is sent
		// to sign in, an API client or a page's fetch() gets its 401), the
		// request id (the decision id) and any x-gatehouse-*
		// a client sent (Check removes them all). Other headers, cookies
		// included when no session cookie is configured, stay in Envoy, and
		// each Check is smaller to encode and decode (bench/datapath). An
		// MCP route's mirror headers (mcp-method, mcp-name,
		// mcp-protocol-version) must agree with its body (docs/mcp.md).
		AllowedHeaders: &matcherv3.ListStringMatcher{Patterns: []*matcherv3.StringMatcher{
			{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "authorization"}},
			{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "accept"}},
			{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "sec-fetch-mode"}},
			{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "cookie"}},
			{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "x-request-id"}},
			{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: model.HeaderPrefix}},
			{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: model.MCPHeaderPrefix}},
		}},
	})
}

// routeConfig is a route's own ext_authz setting: public-path routes skip
// the check, unless a credential cookie is configured (Envoy cannot remove
// one cookie of the Cookie header; Check does, see credentialHeaders); sidecar inbound routes carry their id and the mesh flag to
// Check; a route whose RouteAuth asks for the body has Envoy send it.
// Other routes have none: their id reaches Check in model.RouteHeader (an
// O(1) policy lookup there), and nothing about the policy is in the route:
// who may call it lives in gatehouse, so a policy edit (owners, consumers,
// rules) sends Envoy nothing, and a route is re-sent only when its routing
// changes.
func (extAuthz) routeConfig(r model.Route, meshInbound bool, opts Options) (*anypb.Any, error) {
	per := &extauthzv3.ExtAuthzPerRoute{}
	switch {
	case skipsCheck(r, opts) || usesExtProc(r, meshInbound):
		// ext_proc decides these routes (filter_ext_proc.go).
		per.Override = &extauthzv3.ExtAuthzPerRoute_Disabled{Disabled: true}
	case meshInbound || r.Auth.SendsBody():
		cs := &extauthzv3.CheckSettings{}
		if meshInbound {
			cs.ContextExtensions = map[string]string{model.CtxRouteID: r.ID, model.CtxMesh: model.MeshInbound}
		}
		if r.Auth.SendsBody() {
			// The whole body or a 413: Check never decides on part of one.
			cs.WithRequestBody = &extauthzv3.BufferSettings{MaxRequestBytes: r.Auth.BodyBytes}
		}
		per.Override = &extauthzv3.ExtAuthzPerRoute_CheckSettings{CheckSettings: cs}
	default:
		return nil, nil
	}
	// Deterministic: the context extensions are a map, and anypb.New would
	// encode it in random order (a new RDS version on every translation).
	a := &anypb.Any{}
	if err := anypb.MarshalFrom(a, per, proto.MarshalOptions{Deterministic: true}); err != nil {
		return nil, err
	}
	return a, nil
}

// skipsCheck: a public route that Envoy serves without asking Check. With
// a credential cookie or browser sessions configured, public routes are
// checked too, so that Check removes those cookies before their upstreams.
func skipsCheck(r model.Route, opts Options) bool {
	return r.Public && opts.CredentialCookie == "" && opts.SignInAddress == ""
}

// credentialHeaders are what a route removes before its upstream when
// Check does not: the Authorization header on public routes that skip the
// check (unless the entity forwards the token). Check removes the caller's
// credentials on every route it decides.
func credentialHeaders(r model.Route, opts Options) []string {
	if skipsCheck(r, opts) && !r.ForwardToken {
		return []string{"authorization"}
	}
	return nil
}

// checkRetryPolicy retries a Check that never reached a decision on
// another replica: the connection failed or was reset (a replica killed or
// gone), the stream was refused (a replica closing after its drain), or
// gRPC said UNAVAILABLE (which Check never answers on its own). A retry
// asks the same question again, so it can never allow what a replica
// denied. Two retries, after at most 10 and 20 ms.
//
// A slow Check is never retried: Envoy turns GrpcService.retry_policy
// into a route retry policy whose per_try_timeout is the back-off's
// max_interval (Http::Utility::convertCoreToRouteRetryPolicy). With a short
// max_interval (it was 50 ms) every Check slower than that on a loaded
// host was abandoned and asked again on the other replica: both replicas
// decided it (two audit lines for one request), the timeouts counted as
// failures for outlier detection and ejected a healthy replica, and three
// slow tries in a row ended in a 503. So max_interval is perTry, the whole
// Check's timeout (authz.timeout): a try then never times out before the
// Check does, and the back-off itself stays within base_interval * 2^n
// (at most 10 and 20 ms for two retries).
func checkRetryPolicy(perTry time.Duration) *core.RetryPolicy {
	const base = 10 * time.Millisecond
	prev, _ := anypb.New(&previoushostsv3.PreviousHostsPredicate{})
	return &core.RetryPolicy{
		RetryOn:    "connect-failure,refused-stream,reset,unavailable",
		NumRetries: wrapperspb.UInt32(2),
		RetryBackOff: &core.BackoffStrategy{
			BaseInterval: durationpb.New(base),
			MaxInterval:  durationpb.New(max(perTry, base)),
		},
		RetryHostPredicate: []*core.RetryPolicy_RetryHostPredicate{{
			Name:       "envoy.retry_host_predicates.previous_hosts",
			ConfigType: &core.RetryPolicy_RetryHostPredicate_TypedConfig{TypedConfig: prev},
		}},
		HostSelectionRetryMaxAttempts: 3,
	}
}

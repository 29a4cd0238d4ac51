package translate

import (
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/gatehouse-dev/gatehouse/model"
)

const extProcFilter = "envoy.filters.http.ext_proc"

// extProc sends the requests of the routes that ask for it
// (model.RouteAuth.ExtProc: GraphQL filter mode, MCP) to gatehouse's
// ext_proc server, which decides them with the same Check and may rewrite
// their bodies (docs/graphql.md, "Filter mode"). It is in every checked
// listener but disabled there (HttpFilter.disabled): only such a route's
// own config turns it on, so every other route keeps the headers-only
// path and pays nothing for it. Those routes skip ext_authz (its route
// config): the decision is made once, on one replica, where the body is.
type extProc struct{}

func (extProc) name() string { return extProcFilter }

// disabledByDefault: the filter runs only where a route enables it.
func (extProc) disabledByDefault() bool { return true }

func (extProc) listenerConfig(opts Options) (*anypb.Any, error) {
	return anypb.New(&extprocv3.ExternalProcessor{
		GrpcService: &core.GrpcService{
			// No stream timeout: a stream lasts as long as the upstream
			// takes to answer; each message has message_timeout.
			TargetSpecifier: &core.GrpcService_EnvoyGrpc_{EnvoyGrpc: &core.GrpcService_EnvoyGrpc{ClusterName: AuthzClusterName}},
			// A try is never cut short before a message's own timeout.
			RetryPolicy: checkRetryPolicy(max(opts.AuthzTimeout, time.Second)),
		},
		// Nothing fails open: gatehouse unreachable, a stream error or a
		// timeout answers 503, never the unfiltered request or answer.
		FailureModeAllow: false,
		StatusOnError:    &typev3.HttpStatus{Code: typev3.StatusCode_ServiceUnavailable},
		// The listener's mode sends nothing; a route's own config sets
		// what it needs (extProcMode).
		ProcessingMode: &extprocv3.ProcessingMode{
			RequestHeaderMode: extprocv3.ProcessingMode_SKIP, ResponseHeaderMode: extprocv3.ProcessingMode_SKIP,
			RequestTrailerMode: extprocv3.ProcessingMode_SKIP, ResponseTrailerMode: extprocv3.ProcessingMode_SKIP,
		},
		// One message is one decision (like a Check: authz.timeout) or one
		// rewrite of a buffered body; at least 1 s for answers of a few MB.
		MessageTimeout: durationpb.New(max(opts.AuthzTimeout, time.Second)),
		// The route was chosen before the decision and stays chosen.
		DisableClearRouteCache: true,
		// The client's address, for the audit (Check gets it from
		// ext_authz's source).
		RequestAttributes: []string{"source.address"},
	})
}

// routeConfig enables the filter on a route whose RouteAuth asks for it
// (never on a sidecar's inbound route: there the mTLS peer is Check's to
// read, so those routes stay with ext_authz, and GraphQL filter mode acts
// as reject mode there).
func (extProc) routeConfig(r model.Route, meshInbound bool, _ Options) (*anypb.Any, error) {
	if !usesExtProc(r, meshInbound) {
		return nil, nil
	}
	return anypb.New(&extprocv3.ExtProcPerRoute{Override: &extprocv3.ExtProcPerRoute_Overrides{Overrides: &extprocv3.ExtProcOverrides{
		ProcessingMode: extProcMode(r.Auth),
	}}})
}

// usesExtProc: the route's requests are decided by the ext_proc server.
func usesExtProc(r model.Route, meshInbound bool) bool {
	return r.Auth.ExtProc && !meshInbound && !r.Public
}

// extProcMode is what a route sends: the request's headers and its whole
// body (BUFFERED: gatehouse decides on the complete request, and Envoy
// answers 413 past the route's request_body_buffer_limit), and the
// answer's whole body only when the route rewrites answers. The answer's
// headers stay in Envoy (one message less per request; Envoy drops the
// answer's content-length itself once ext_proc rewrote the body) unless
// the route's filter reads them (ExtProcResponseHeaders).
func extProcMode(a model.RouteAuth) *extprocv3.ProcessingMode {
	m := &extprocv3.ProcessingMode{
		RequestHeaderMode: extprocv3.ProcessingMode_SEND, RequestBodyMode: extprocv3.ProcessingMode_BUFFERED,
		ResponseHeaderMode: extprocv3.ProcessingMode_SKIP, ResponseBodyMode: extprocv3.ProcessingMode_NONE,
		RequestTrailerMode: extprocv3.ProcessingMode_SKIP, ResponseTrailerMode: extprocv3.ProcessingMode_SKIP,
	}
	if a.ExtProcResponse {
		m.ResponseBodyMode = extprocv3.ProcessingMode_BUFFERED
		if a.ExtProcResponseHeaders {
			m.ResponseHeaderMode = extprocv3.ProcessingMode_SEND
		}
	}
	return m
}

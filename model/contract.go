package model

// The contract between xds (what Envoy is told to do with a request) and
// extauthz (what Check reads from it and answers): one set of names, so
// the two can never drift apart.

// Request headers gatehouse owns. Envoy removes every header with
// HeaderPrefix a client sends before any other filter reads the request,
// and only gatehouse sets them.
const (
	// HeaderPrefix starts every header gatehouse owns.
	HeaderPrefix = "x-gatehouse-"
	// RouteHeader carries the id of the route Envoy chose to the Check
	// call: the first HTTP filter sets it from the route's name, and the
	// route configuration removes it before the upstream.
	RouteHeader = "x-gatehouse-route"

	// The identity headers an allowed request carries to its upstream.
	UserHeader       = "x-gatehouse-user"
	GroupsHeader     = "x-gatehouse-groups"
	EntityHeader     = "x-gatehouse-entity"
	ClientHeader     = "x-gatehouse-client"
	AssertionHeader  = "x-gatehouse-assertion"
	DecisionIDHeader = "x-gatehouse-decision-id"
	PeerHeader       = "x-gatehouse-peer"
	// ActorHeader: the AI agent calling for the user (docs/agents.md).
	ActorHeader = "x-gatehouse-actor"
)

// IdentityHeaders are the request headers gatehouse sets for upstreams,
// and RouteHeader, for Check (all with HeaderPrefix, so Envoy removes them
// from every incoming request: a client can never supply them).
// Read it, never write it.
var IdentityHeaders = []string{
	UserHeader, GroupsHeader, EntityHeader, ClientHeader,
	AssertionHeader, DecisionIDHeader, PeerHeader, RouteHeader, ActorHeader,
}

// Context extensions a route may carry to the Check call (ext_authz
// check_settings): sidecar inbound routes carry their id in CtxRouteID
// (Check prefers it to RouteHeader) and CtxMesh = MeshInbound.
const (
	CtxRouteID = "route_id"
	// CtxMesh is MeshInbound on a sidecar's inbound routes: only there does
	// Check take the mTLS peer (source.principal) as the calling component.
	CtxMesh     = "mesh"
	MeshInbound = "inbound"
)

// InspectorHTTP is the request inspector that reads a request as an HTTP
// method and path (the only one today).
const InspectorHTTP = "http"

// RouteAuth is how a route's requests reach Check: what Envoy sends and
// how Check reads it. Its zero value is today's behaviour for every route
// (no body, no sign-in, the HTTP inspector) and is left out of the
// model's encoding, so routes without settings keep their content hash.
type RouteAuth struct {
	// BodyBytes: Envoy buffers up to this many bytes of the request body
	// and sends them with the Check; 0 sends no body.
	BodyBytes uint32 `json:"bodyBytes,omitempty" yaml:"bodyBytes,omitempty"`
	// SignIn: "" (the default) sends a browser without a session to sign
	// in instead of answering 401, when gatehouse has sign-in configured;
	// SignInOff (gatehouse.dev/sign-in: off, a pure API) never does.
	SignIn string `json:"signIn,omitempty" yaml:"signIn,omitempty"`
	// Inspector reads the request as operations for the criteria; ""
	// means InspectorHTTP.
	Inspector string `json:"inspector,omitempty" yaml:"inspector,omitempty"`
	// ExtProc: Envoy sends the route's requests to gatehouse's ext_proc
	// server (headers, then the whole body, up to BodyBytes) instead of
	// ext_authz. It decides them with the same Check, then the route
	// inspector's body filter may rewrite the body (extauthz.BodyFilter).
	// ExtProcResponse: the answer's body goes there too, for filters that
	// rewrite answers. ExtProcResponseHeaders: and the answer's headers
	// before it, for filters that read the status or the content type
	// (MCP: JSON or an event stream); without it they stay in Envoy (one
	// message less) and such a filter sees status 0.
	ExtProc                bool `json:"extProc,omitempty" yaml:"extProc,omitempty"`
	ExtProcResponse        bool `json:"extProcResponse,omitempty" yaml:"extProcResponse,omitempty"`
	ExtProcResponseHeaders bool `json:"extProcResponseHeaders,omitempty" yaml:"extProcResponseHeaders,omitempty"`
}

// SignInOff is RouteAuth.SignIn of a route that never redirects to sign in.
const SignInOff = "off"

// Redirects reports whether a browser without a session is sent to sign in
// (when sign-in is configured) rather than answered 401.
func (a RouteAuth) Redirects() bool { return a.SignIn != SignInOff }

// The paths gatehouse's sign-in handler serves on every edge host: Envoy
// routes SignInPrefix to it without a Check (xds), and Check sends browsers
// to SignInPath?rd=<the path they asked for>.
const (
	SignInPrefix = "/.gatehouse/"
	SignInPath   = SignInPrefix + "signin"
	CallbackPath = SignInPrefix + "callback"
	LogoutPath   = SignInPrefix + "logout"
	// SignedOutPath is where the IdP sends the browser after logout.
	SignedOutPath = SignInPrefix + "signed-out"
	// RenewParam=1 on SignInPath: a silent renewal (OIDC prompt=none) of
	// an ending session; the IdP's login_required falls back to a plain
	// sign-in.
	RenewParam = "renew"
)

// SendsBody reports whether Envoy sends (part of) the request body to Check.
func (a RouteAuth) SendsBody() bool { return a.BodyBytes > 0 }

// InspectorName is the request inspector of the route.
func (a RouteAuth) InspectorName() string {
	if a.Inspector == "" {
		return InspectorHTTP
	}
	return a.Inspector
}

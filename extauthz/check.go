package extauthz

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"

	"github.com/gatehouse-dev/gatehouse/meshca"
	"github.com/gatehouse-dev/gatehouse/model"
)

// How the route Envoy chose reaches Check: in the context extension
// route_id when the route carries one (sidecar inbound routes, and Envoys
// configured before gatehouse set RouteHeader), else in the header Envoy
// sets from the route's name (xds.RouteHeader, xds.CtxRouteID).
const (
	ctxRouteID  = "route_id"
	routeHeader = "x-gatehouse-route"
	// ctxMesh is "inbound" on a sidecar's inbound routes (xds.CtxMesh).
	ctxMesh = "mesh"
)

// TokenVerifier verifies a raw bearer token.
type TokenVerifier interface {
	Verify(ctx context.Context, raw string) (*Identity, error)
}

// Options configure the Check server.
type Options struct {
	// CookieName: a session cookie carrying the token for browsers; empty
	// disables cookies.
	CookieName string
	// CacheSize: decision cache entries (0 disables the cache).
	CacheSize int
	// CacheTTL bounds a cached decision (also bounded by the token's expiry
	// and the assertion's).
	CacheTTL time.Duration
	// TrustDomain: the mesh's SPIFFE trust domain. On sidecar inbound
	// routes the mTLS peer's SPIFFE ID in it names the calling component.
	TrustDomain string
}

// Server is the envoy.service.auth.v3.Authorization service.
type Server struct {
	authv3.UnimplementedAuthorizationServer
	opts     Options
	verifier atomic.Pointer[verifierBox]
	signer   *Signer
	audit    *Audit
	log      *slog.Logger
	state    atomic.Pointer[engineState]
	now      func() time.Time

	// Identity headers by assertion (see identityHeaders).
	hdrMu   sync.RWMutex
	hdrMemo map[string][]*core.HeaderValueOption
}

type engineState struct {
	engine *Engine
	model  *model.Model
	cache  *decisionCache
}

// NewServer returns a Check server; it denies everything (503) until
// SetModel is called.
func NewServer(opts Options, verifier TokenVerifier, signer *Signer, audit *Audit, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	s := &Server{opts: opts, signer: signer, audit: audit, log: log, now: time.Now}
	s.SetVerifier(verifier)
	return s
}

type verifierBox struct{ v TokenVerifier }

// SetVerifier swaps the token verifier (issuers reloaded); checks in flight
// finish with the one they started with.
func (s *Server) SetVerifier(v TokenVerifier) { s.verifier.Store(&verifierBox{v}) }

// GRPCServerOptions are the settings of the gRPC server that serves Check
// to Envoys.
func GRPCServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(1 << 20), // a Check request: headers only
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		// Checks run on long-lived goroutines instead of a new goroutine
		// per call, whose stack then grows on every Check (a tenth of a
		// cached Check's CPU in a profile behind Envoy).
		grpc.NumStreamWorkers(uint32(runtime.GOMAXPROCS(0))),
	}
}

// Register attaches the service to a gRPC server.
func (s *Server) Register(g *grpc.Server) { authv3.RegisterAuthorizationServer(g, s) }

// SetModel swaps in the policies of a new model; cached decisions of the
// previous one are dropped with it.
func (s *Server) SetModel(m *model.Model) {
	if cur := s.state.Load(); cur != nil && cur.engine.version == m.Version {
		return
	}
	s.state.Store(&engineState{engine: NewEngine(m), model: m, cache: newDecisionCache(s.opts.CacheSize)})
}

// Model returns the model the current engine was built from.
func (s *Server) Model() *model.Model {
	if st := s.state.Load(); st != nil {
		return st.model
	}
	return nil
}

// Verifier returns the token verifier.
func (s *Server) Verifier() TokenVerifier { return s.verifier.Load().v }

// Engine returns the current engine (nil before the first model).
func (s *Server) Engine() *Engine {
	if st := s.state.Load(); st != nil {
		return st.engine
	}
	return nil
}

// Check decides one request.
func (s *Server) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	start := s.now()
	attrs := req.GetAttributes()
	h := attrs.GetRequest().GetHttp()
	headers := h.GetHeaders()
	rec := AuditRecord{
		Time: start, DecisionID: headers["x-request-id"], Method: h.GetMethod(), Host: h.GetHost(),
		Source:  attrs.GetSource().GetAddress().GetSocketAddress().GetAddress(),
		RouteID: attrs.GetContextExtensions()[ctxRouteID],
	}
	if rec.RouteID == "" {
		rec.RouteID = headers[routeHeader]
	}
	if rec.DecisionID == "" {
		rec.DecisionID = h.GetId()
	}
	resp := s.check(ctx, h, attrs.GetContextExtensions(), attrs.GetSource().GetPrincipal(), &rec)
	lat := s.now().Sub(start)
	rec.LatencyUS = lat.Microseconds()
	checkSeconds.Observe(lat.Seconds())
	result := "deny"
	if rec.Decision == "allow" {
		result = "allow"
	}
	decisionCounter(result, rec.Reason).Inc() // reasons are a fixed set of codes
	if s.audit != nil {
		s.audit.Record(rec)
	}
	return resp, nil
}

func (s *Server) check(ctx context.Context, h *authv3.AttributeContext_HttpRequest, ext map[string]string, peerID string, rec *AuditRecord) *authv3.CheckResponse {
	st := s.state.Load()
	if st == nil {
		return s.deny(rec, 503, "not_ready", "", "gatehouse has not loaded a catalog yet")
	}
	eng := st.engine
	rec.Model = eng.version
	path, ok := cleanPath(h.GetPath())
	rec.Path = path
	if !ok {
		rec.Path = truncate(h.GetPath(), 256)
		return s.deny(rec, 400, "bad_path", "", "")
	}
	if rec.RouteID == "" {
		// No route matched in Envoy (or a route without gatehouse's
		// settings): nothing is served here.
		return s.deny(rec, 404, "no_route", "", "")
	}
	pol := eng.routes[rec.RouteID]
	if pol == nil {
		return s.deny(rec, 404, "unknown_route", "", "")
	}
	// The route must be one Envoy could have chosen for this path: a
	// route id that does not match it (an Envoy whose configuration lets a
	// client set the route header) decides nothing.
	if pol.route != nil && !pol.route.MatchesPath(pathOnly(h.GetPath())) {
		return s.deny(rec, 404, "route_mismatch", "", "route "+rec.RouteID+" does not match path "+truncate(h.GetPath(), 256))
	}
	rec.Entity, rec.System = pol.Entity, pol.System
	if len(pol.Owners) > 0 {
		rec.Owner = pol.Owners[0]
	}
	if pol.Public {
		d := eng.Decide(nil, rec.RouteID, h.GetMethod(), path, false)
		return s.allow(rec, d, nil, nil, "", h.GetHeaders(), false)
	}
	// On a sidecar's inbound route the caller is first the component that
	// Envoy verified by mTLS; a bearer token, when present, is the end user
	// it acts for, and both must be allowed.
	var peer *Principal
	if ext[ctxMesh] == "inbound" {
		comp := ""
		if s.opts.TrustDomain != "" {
			comp = meshca.ComponentOf(s.opts.TrustDomain, peerID)
		}
		if comp == "" {
			return s.deny(rec, 403, "unknown_peer", "", "mTLS peer "+truncate(peerID, 256)+" is not a component of trust domain "+s.opts.TrustDomain)
		}
		peer = &Principal{Kind: "component", Ref: comp}
		rec.Peer = comp
	}
	token := bearerToken(h.GetHeaders(), s.opts.CookieName)
	if token == "" && peer == nil {
		d := eng.Decide(nil, rec.RouteID, h.GetMethod(), path, false)
		return s.deny(rec, d.Status, d.Reason, "", "")
	}
	key := cacheKey(token, rec.RouteID, h.GetMethod(), path, pol.pathRules)
	if peer != nil {
		key += "\x00peer\x00" + peer.Ref
	}
	now := s.now()
	if c := st.cache.get(key, now); c != nil {
		cacheHits.Inc()
		rec.Cached = true
		fillPrincipal(rec, c.principal)
		if c.decision.Allow {
			return s.allow(rec, c.decision, c.principal, c.peer, c.assertion, h.GetHeaders(), pol.ForwardToken)
		}
		rec.Rule = c.decision.Rule
		return s.deny(rec, c.decision.Status, c.decision.Reason, "", "")
	}
	cacheMisses.Inc()
	expires := now.Add(s.opts.CacheTTL)
	subject := peer
	if token != "" {
		id, err := s.verifier.Load().v.Verify(ctx, token)
		if err != nil {
			reason := "invalid_token"
			if te, ok := err.(*TokenError); ok {
				reason = "invalid_token:" + te.Reason
			}
			return s.deny(rec, 401, reason, "", err.Error())
		}
		subject = eng.PrincipalFor(id)
		if id.Expiry.Before(expires) {
			expires = id.Expiry
		}
	}
	fillPrincipal(rec, subject)
	var d Decision
	if peer != nil {
		d = eng.Decide(peer, rec.RouteID, h.GetMethod(), path, false)
		if d.Allow && subject != peer {
			du := eng.Decide(subject, rec.RouteID, h.GetMethod(), path, false)
			if !du.Allow {
				d = du
			} else {
				d.Rule = "peer " + d.Rule + "; user " + du.Rule
			}
		} else if !d.Allow {
			d.Rule = "peer " + peer.Ref + " denied"
		}
	} else {
		d = eng.Decide(subject, rec.RouteID, h.GetMethod(), path, false)
	}
	if !d.Allow {
		st.cache.put(key, &cached{decision: d, principal: subject, peer: peer, expires: expires})
		rec.Rule = d.Rule
		return s.deny(rec, d.Status, d.Reason, "", "")
	}
	a := Assertion{Subject: subject.Name(), Audience: pol.Entity, Kind: subject.Kind, Groups: subject.Groups, Client: subject.ClientID, Route: rec.RouteID, Email: subject.Email}
	if peer != nil {
		a.Peer = peer.Ref
	}
	assertion, aexp, err := s.signer.Sign(a, now)
	if err != nil {
		s.log.Error("signing identity assertion", "error", err)
		return s.deny(rec, 503, "assertion_error", "", "")
	}
	// A cached assertion is reused only while it has most of its life left.
	if limit := aexp.Add(-s.signer.Lifetime() / 2); limit.Before(expires) {
		expires = limit
	}
	st.cache.put(key, &cached{decision: d, principal: subject, peer: peer, assertion: assertion, expires: expires})
	return s.allow(rec, d, subject, peer, assertion, h.GetHeaders(), pol.ForwardToken)
}

func fillPrincipal(rec *AuditRecord, p *Principal) {
	rec.Principal, rec.Kind, rec.Groups, rec.ClientID, rec.Issuer = p.Name(), p.Kind, p.Groups, p.ClientID, p.Issuer
}

// allow lets the request through with the verified identity for the
// upstream. The caller's token is removed (unless the route forwards it),
// and so is any x-gatehouse-* header the client sent (Envoy strips the
// known ones already).
func (s *Server) allow(rec *AuditRecord, d Decision, p, peer *Principal, assertion string, in map[string]string, forwardToken bool) *authv3.CheckResponse {
	rec.Decision, rec.Status, rec.Reason, rec.Rule = "allow", 200, d.Reason, d.Rule
	// The answer's own messages in one allocation; the identity headers
	// are shared (read-only) by every answer carrying the same assertion.
	a := &allowResponse{}
	a.resp.Status, a.resp.HttpResponse, a.oneof.OkResponse = &a.status, &a.oneof, &a.ok
	a.ok.HeadersToRemove = a.remove[:0]
	for k := range in {
		if strings.HasPrefix(k, "x-gatehouse-") {
			a.ok.HeadersToRemove = append(a.ok.HeadersToRemove, k)
		}
	}
	if p == nil {
		return &a.resp
	}
	if !forwardToken {
		a.ok.HeadersToRemove = append(a.ok.HeadersToRemove, "authorization")
	}
	fixed := s.identityHeaders(p, peer, rec.Entity, assertion)
	a.ok.Headers = append(make([]*core.HeaderValueOption, 0, len(fixed)+1), fixed...)
	a.id.val.Key, a.id.val.Value = "x-gatehouse-decision-id", rec.DecisionID
	a.id.opt.Header, a.id.opt.AppendAction = &a.id.val, core.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
	a.ok.Headers = append(a.ok.Headers, &a.id.opt)
	return &a.resp
}

// identityHeaders are the headers an allowed request gets but for its
// decision id: a function of the assertion alone (its claims are the
// user, groups, entity, client and peer), so they are built once per
// assertion and shared by every answer that carries it (an assertion is
// reused for half its lifetime). Marshalling only reads them.
func (s *Server) identityHeaders(p, peer *Principal, entity, assertion string) []*core.HeaderValueOption {
	s.hdrMu.RLock()
	hs, ok := s.hdrMemo[assertion]
	s.hdrMu.RUnlock()
	if ok {
		return hs
	}
	n := 4
	if p.ClientID != "" {
		n++
	}
	if peer != nil {
		n++
	}
	all := make([]header, n)
	hs = make([]*core.HeaderValueOption, 0, n)
	set := func(k, v string) {
		h := &all[len(hs)]
		h.val.Key, h.val.Value = k, v
		h.opt.Header, h.opt.AppendAction = &h.val, core.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
		hs = append(hs, &h.opt)
	}
	set("x-gatehouse-user", p.Name())
	set("x-gatehouse-groups", strings.Join(p.Groups, ","))
	set("x-gatehouse-entity", entity)
	if p.ClientID != "" {
		set("x-gatehouse-client", p.ClientID)
	}
	if peer != nil {
		set("x-gatehouse-peer", peer.Ref)
	}
	set("x-gatehouse-assertion", assertion)
	s.hdrMu.Lock()
	if s.hdrMemo == nil || len(s.hdrMemo) >= maxHeaderMemo {
		s.hdrMemo = make(map[string][]*core.HeaderValueOption)
	}
	s.hdrMemo[assertion] = hs
	s.hdrMu.Unlock()
	return hs
}

// maxHeaderMemo bounds the identity headers kept (about 1.5 KB each); the
// memo starts over when it is full.
const maxHeaderMemo = 10000

// allowResponse is an OK answer and the messages it points to, but for
// the shared identity headers.
type allowResponse struct {
	resp   authv3.CheckResponse
	status status.Status // code OK
	oneof  authv3.CheckResponse_OkResponse
	ok     authv3.OkHttpResponse
	remove [2]string
	id     header // x-gatehouse-decision-id
}

// header is one header of an answer: the option and its value.
type header struct {
	opt core.HeaderValueOption
	val core.HeaderValue
}

// deny answers with a small JSON body: an error code and the decision id,
// nothing about the policy.
func (s *Server) deny(rec *AuditRecord, code int, reason, rule, detail string) *authv3.CheckResponse {
	rec.Decision, rec.Status, rec.Reason = "deny", code, reason
	if rule != "" {
		rec.Rule = rule
	}
	errCode := map[int]string{400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found", 503: "unavailable"}[code]
	body, _ := json.Marshal(map[string]string{"error": errCode, "decision_id": rec.DecisionID})
	hdrs := []*core.HeaderValueOption{{Header: &core.HeaderValue{Key: "content-type", Value: "application/json"}}}
	if code == 401 {
		challenge := `Bearer realm="gatehouse", error="invalid_token"`
		if reason == "no_token" { // RFC 6750 §3.1: no error code when no credentials were sent
			challenge = `Bearer realm="gatehouse"`
		}
		hdrs = append(hdrs, &core.HeaderValueOption{Header: &core.HeaderValue{Key: "www-authenticate", Value: challenge}})
	}
	if detail != "" {
		s.log.Debug("denied", "decision_id", rec.DecisionID, "reason", reason, "detail", detail)
	}
	grpcCode := codes.PermissionDenied
	if code == 401 {
		grpcCode = codes.Unauthenticated
	}
	return &authv3.CheckResponse{
		Status: &status.Status{Code: int32(grpcCode)},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(code)},
			Headers: hdrs,
			Body:    string(body) + "\n",
		}},
	}
}

// bearerToken reads "Authorization: Bearer <token>", or the session cookie.
func bearerToken(h map[string]string, cookie string) string {
	if a := h["authorization"]; a != "" {
		if len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
			return strings.TrimSpace(a[7:])
		}
		return ""
	}
	if cookie == "" || h["cookie"] == "" {
		return ""
	}
	for _, part := range strings.Split(h["cookie"], ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if ok && k == cookie {
			return v
		}
	}
	return ""
}

// cleanPath strips the query and decodes percent-escapes for matching. A
// path whose decoding yields dot segments, empty segments, a backslash or
// a NUL is refused: Envoy normalised the raw path already, so such a path
// means somebody is hiding a traversal from the matcher.
func cleanPath(raw string) (string, bool) {
	raw = pathOnly(raw)
	if raw == "" || raw[0] != '/' {
		return "", false
	}
	p := raw
	if strings.IndexByte(raw, '%') >= 0 {
		var err error
		if p, err = url.PathUnescape(raw); err != nil {
			return "", false
		}
	}
	if strings.ContainsAny(p, "\\\x00") {
		return "", false
	}
	for rest := p[1:]; ; {
		seg, tail, more := strings.Cut(rest, "/")
		if seg == "." || seg == ".." {
			return "", false
		}
		if !more {
			break
		}
		rest = tail
	}
	if strings.Contains(p, "//") {
		return "", false
	}
	return p, true
}

// pathOnly is a path without its query or fragment, as Envoy matches it.
func pathOnly(p string) string {
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		return p[:i]
	}
	return p
}

func cacheKey(token, route, method, path string, pathMatters bool) string {
	sum := sha256.Sum256(bytesOf(token))
	n := 32 + 1 + len(route) + 1 + len(method)
	if pathMatters {
		n += 1 + len(path)
	}
	k := make([]byte, 32, n)
	hex.Encode(k, sum[:16])
	k = append(append(append(append(k, 0), route...), 0), method...)
	if pathMatters {
		k = append(append(k, 0), path...)
	}
	return unsafe.String(unsafe.SliceData(k), len(k)) // k is not written again
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

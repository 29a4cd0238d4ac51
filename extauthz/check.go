package extauthz

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/gatehouse-dev/gatehouse/internal/clip"
	"github.com/gatehouse-dev/gatehouse/meshca"
	"github.com/gatehouse-dev/gatehouse/model"
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
	// Sessions open browser session cookies (sign-in); nil: no sessions
	// are read and nobody is sent to sign in (docs/sign-in.md).
	Sessions *SessionKeys
	// SessionCookie names and scopes the session cookie (signin.cookie_domain).
	SessionCookie SessionCookie
	// SessionGrace: how long after its expiry a session still sends a
	// navigating browser through a silent renewal (prompt=none) rather
	// than a plain sign-in (signin.renew_grace). It is never honoured.
	SessionGrace time.Duration
	// SAMLIssuers are the SAML IdPs people sign in at (signin.saml[], by
	// name): a SAML session is read under its IdP's settings.
	SAMLIssuers map[string]SAMLIssuer
	// PublicPort: the port clients reach the edge on when it is not the
	// scheme's default (the edge drops the port from Host): MCP resource
	// URLs carry it (config signin.public_port; 0: none).
	PublicPort uint32
	// Delegation: the tokens gatehouse's token exchange issues are
	// accepted (docs/agents.md); nil: they are not.
	Delegation *Delegation
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

	// persisted: the GraphQL APIs' APQ stores, kept across models.
	persisted persistedStores
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
func (s *Server) SetVerifier(v TokenVerifier) {
	s.verifier.Store(&verifierBox{withDelegation(v, s.opts.Delegation)})
}

// GRPCServerOptions are the settings of the gRPC server that serves Check
// to Envoys.
func GRPCServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		// A Check carries headers and at most a GraphQL route's body
		// (bodyLimit, at most 8 MiB); an ext_proc message a request body
		// (the same limit) or an answer's (Envoy's buffer, 1 MiB by default).
		grpc.MaxRecvMsgSize(9 << 20),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		// Checks run on long-lived goroutines instead of a new goroutine
		// per call, whose stack then grows on every Check (a tenth of a
		// cached Check's CPU in a profile behind Envoy).
		grpc.NumStreamWorkers(uint32(runtime.GOMAXPROCS(0))),
	}
}

// Register attaches the services to a gRPC server: Check (ext_authz) and
// the ext_proc server of the routes that rewrite bodies (extproc.go).
func (s *Server) Register(g *grpc.Server) {
	authv3.RegisterAuthorizationServer(g, s)
	extprocv3.RegisterExternalProcessorServer(g, &ExtProc{s: s})
}

// SetModel swaps in the policies of a new model; cached decisions of the
// previous one are dropped with it.
func (s *Server) SetModel(m *model.Model) {
	if cur := s.state.Load(); cur != nil && cur.engine.version == m.Version {
		return
	}
	eng := NewEngine(m)
	eng.attachPersisted(&s.persisted)
	s.state.Store(&engineState{engine: eng, model: m, cache: newDecisionCache(s.opts.CacheSize)})
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
	attrs := req.GetAttributes()
	src := attrs.GetSource()
	return s.checkHTTP(ctx, attrs.GetRequest().GetHttp(), attrs.GetContextExtensions(), src.GetPrincipal(), src.GetAddress().GetSocketAddress().GetAddress(), nil), nil
}

// checkHTTP decides one request, audits and counts it: Check's, and the
// ext_proc server's (proc non-nil: filled when the request is allowed).
func (s *Server) checkHTTP(ctx context.Context, h *authv3.AttributeContext_HttpRequest, ext map[string]string, peerID, source string, proc *procCall) *authv3.CheckResponse {
	start := s.now()
	headers := h.GetHeaders()
	rec := AuditRecord{
		Time: start, DecisionID: headers["x-request-id"], Method: h.GetMethod(), Host: h.GetHost(),
		Source:  source,
		RouteID: ext[model.CtxRouteID],
	}
	// The route Envoy chose: in the context extension when the route
	// carries one (sidecar inbound routes), else in the header Envoy sets
	// from the route's name (model/contract.go).
	if rec.RouteID == "" {
		rec.RouteID = headers[model.RouteHeader]
	}
	if rec.DecisionID == "" {
		rec.DecisionID = h.GetId()
	}
	resp := s.check(ctx, h, ext, peerID, &rec, proc)
	if s.opts.Sessions != nil && rec.Decision == "deny" && rec.Status != 302 && prefersHTML(headers["accept"]) {
		asPage(resp, &rec)
	}
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
	return resp
}

func (s *Server) check(ctx context.Context, h *authv3.AttributeContext_HttpRequest, ext map[string]string, peerID string, rec *AuditRecord, proc *procCall) *authv3.CheckResponse {
	st := s.state.Load()
	if st == nil {
		return s.deny(rec, 503, "not_ready", "", "gatehouse has not loaded a catalog yet")
	}
	eng := st.engine
	rec.Model = eng.version
	req, denied := eng.request(rec.RouteID, h.GetMethod(), h.GetPath(), h.GetHost())
	req.proc = proc
	resp := s.checkRoute(ctx, st, h, ext, peerID, rec, &req, denied)
	if req.policy != nil && req.policy.MCP != nil {
		s.mcpChallenge(resp, &req, h)
	}
	return resp
}

// checkRoute decides a request whose route is known (or answers the
// denial request found).
func (s *Server) checkRoute(ctx context.Context, st *engineState, h *authv3.AttributeContext_HttpRequest, ext map[string]string, peerID string, rec *AuditRecord, req *Request, denied *Result) *authv3.CheckResponse {
	eng := st.engine
	rec.Path = req.Path
	if denied != nil {
		if denied.Reason == "bad_path" {
			rec.Path = clip.String(h.GetPath(), 256)
		}
		return s.denyResult(rec, denied)
	}
	req.Headers = h.GetHeaders()
	pol := req.policy
	if pol.gql != nil || pol.MCP != nil || req.proc != nil {
		// The body Envoy buffered for this route (RouteAuth.BodyBytes, or
		// the ext_proc server's request body); read only.
		if req.Body = h.GetRawBody(); len(req.Body) == 0 {
			req.Body = bytesOf(h.GetBody())
		}
	}
	if pol.route != nil && pol.route.Auth.Inspector == model.InspectorResourceMetadata {
		return s.resourceMetadata(rec, req, h)
	}
	if pol.MCP != nil {
		// A body that is not a JSON-RPC message is refused before any
		// credential is looked at (and never cached).
		if in := mcpOf(req); in.deny != nil {
			return s.denyResult(rec, in.deny)
		}
	}
	rec.Entity, rec.System = pol.Entity, pol.System
	if len(pol.Owners) > 0 {
		rec.Owner = pol.Owners[0]
	}
	if pol.Public {
		// No credential is looked at; the ones sent are removed (Envoy
		// checks public routes only when a credential cookie is configured).
		return s.allow(rec, eng.Evaluate(req, &Subject{}, false), nil, "", req)
	}
	creds, denied := s.credentials(req, h.GetScheme(), ext, peerID)
	if denied != nil {
		return s.denyResult(rec, denied)
	}
	if creds.peer != "" {
		rec.Peer = creds.peer
	}
	if creds.token == "" && creds.session == "" && creds.peer == "" {
		return s.unauthenticated(rec, ptr(eng.Evaluate(req, &Subject{}, false)), req, h, creds)
	}
	key := creds.key(req)
	now := s.now()
	if c := st.cache.get(key, now); c != nil {
		cacheHits.Inc()
		rec.Cached = true
		c.subject.fill(rec)
		if c.subject.renewAt != 0 && now.Unix() >= c.subject.renewAt && s.navigation(req, h) {
			return s.toSignIn(rec, h, "renew_session", true, false)
		}
		if c.result.Allow {
			return s.allow(rec, c.result, &c.subject, c.assertion, req)
		}
		if c.result.MCP != nil && req.mcp != nil {
			// The same decision, answered with this request's ids.
			r := c.result
			r.MCP = req.mcp.info()
			r.MCP.DeniedTool = c.result.MCP.DeniedTool
			return s.denyResult(rec, &r)
		}
		return s.denyResult(rec, &c.result)
	}
	cacheMisses.Inc()
	sub, expires, denied := subjectFor(ctx, s.verifier.Load().v, s.sessions(now), eng, creds, now.Add(s.opts.CacheTTL))
	if denied != nil {
		return s.unauthenticated(rec, denied, req, h, creds)
	}
	sub.fill(rec)
	if sub.renewAt != 0 && now.Unix() >= sub.renewAt && s.navigation(req, h) {
		return s.toSignIn(rec, h, "renew_session", true, false)
	}
	return s.decide(st, rec, req, key, &sub, expires)
}

// credentials are what the request presents: on a sidecar's inbound
// route first the component Envoy verified by mTLS (a peer outside the
// trust domain is refused: 403 unknown_peer), and the bearer token or
// credential cookie, when present, of the user it acts for, or else (no
// Authorization header at all) the session cookie of the request's scheme.
func (s *Server) credentials(req *Request, scheme string, ext map[string]string, peerID string) (credentials, *Result) {
	c := credentials{token: bearerToken(req.Headers, s.opts.CookieName)}
	if c.token == "" && req.Headers["authorization"] == "" && s.opts.Sessions != nil {
		c.session = cookieValue(req.Headers["cookie"], s.opts.SessionCookie.Name(scheme))
	}
	if ext[model.CtxMesh] != model.MeshInbound {
		return c, nil
	}
	if s.opts.TrustDomain != "" {
		c.peer = meshca.ComponentOf(s.opts.TrustDomain, peerID)
	}
	if c.peer == "" {
		return c, &Result{Status: 403, Reason: "unknown_peer", Steps: []Step{{Rule: "peer", Why: "mTLS peer " + clip.String(peerID, 256) + " is not a component of trust domain " + s.opts.TrustDomain}}}
	}
	return c, nil
}

// subjectFor verifies the credentials and maps them to the catalog: the
// peer component and the user of the token or, without one, of the
// session cookie. expires is when a decision for it must be forgotten (the
// cache's limit, or the token's or session's expiry if sooner). A token
// that does not verify is 401 invalid_token:<why>, a session cookie that
// does not open 401 invalid_session. Check and explain both come here.
func subjectFor(ctx context.Context, v TokenVerifier, sessions sessionRules, eng *Engine, c credentials, expires time.Time) (Subject, time.Time, *Result) {
	var sub Subject
	if c.peer != "" {
		sub.Peer = &Principal{Kind: "component", Ref: c.peer}
	}
	if c.token == "" && c.session != "" {
		return sessionSubject(sub, sessions, v, eng, c.session, expires)
	}
	if c.token == "" {
		return sub, expires, nil
	}
	if v == nil {
		return sub, expires, &Result{Status: 401, Reason: "invalid_token:unknown_issuer", Steps: []Step{{Rule: "token", Why: "no issuers are configured to verify the token"}}}
	}
	id, err := v.Verify(ctx, c.token)
	if err != nil {
		reason := "invalid_token"
		if te, ok := err.(*TokenError); ok {
			reason = "invalid_token:" + te.Reason
		}
		return sub, expires, &Result{Status: 401, Reason: reason, Steps: []Step{{Rule: "token", Why: err.Error()}}}
	}
	sub.User, sub.Auth = eng.PrincipalFor(id), AuthBearer
	if id.Actor != nil {
		delegatedSubject(&sub, eng, id)
	}
	if id.Expiry.Before(expires) {
		expires = id.Expiry
	}
	return sub, expires, nil
}

// sessionRules are what sessionSubject needs besides the cookie: the keys
// (nil: sign-in is off), the time, and the grace after expiry.
type sessionRules struct {
	keys  *SessionKeys
	now   time.Time
	grace time.Duration
	// saml: the SAML IdPs by name; a SAML session is read under its IdP's
	// settings of now.
	saml map[string]SAMLIssuer
}

// sessions are the server's session rules at now.
func (s *Server) sessions(now time.Time) sessionRules {
	return sessionRules{keys: s.opts.Sessions, now: now, grace: s.opts.SessionGrace, saml: s.opts.SAMLIssuers}
}

// sessionSubject is subjectFor for a session cookie: the user it names,
// mapped to the catalog now (groups are never in the cookie), under its
// issuer's settings of now. A session past its time is 401:
// session_expired within the grace (a navigation is then renewed), and
// invalid_session after it.
func sessionSubject(sub Subject, rules sessionRules, v TokenVerifier, eng *Engine, sealed string, expires time.Time) (Subject, time.Time, *Result) {
	if rules.keys == nil {
		return sub, expires, &Result{Status: 401, Reason: "invalid_session", Steps: []Step{{Rule: "session", Why: "sign-in is not configured"}}}
	}
	ss, err := rules.keys.OpenSession(sealed, rules.now) // the server's clock, as for the cache
	switch {
	case errors.Is(err, ErrSessionExpired) && rules.now.Before(time.Unix(ss.Expiry, 0).Add(rules.grace)):
		return sub, expires, &Result{Status: 401, Reason: "session_expired", Steps: []Step{{Rule: "session", Why: "session expired; a browser is renewed at the IdP without a form while the IdP session lives"}}}
	case err != nil:
		return sub, expires, &Result{Status: 401, Reason: "invalid_session", Steps: []Step{{Rule: "session", Why: err.Error()}}}
	}
	var id *Identity
	if ss.Method == MethodSAML {
		var why string
		if id, why = ss.samlIdentity(rules.saml); id == nil {
			return sub, expires, &Result{Status: 401, Reason: "invalid_session", Steps: []Step{{Rule: "session", Why: why}}}
		}
	} else {
		// A session is as good as its issuer is still trusted, under its
		// settings of now: one removed from the configuration (a reload)
		// ends its sessions at once, a changed trust_email or
		// entity_ref_subjects applies to them at once.
		var cfg *IssuerConfig
		v = unwrapDelegation(v) // sessions come from the configured issuers only
		if k, ok := v.(interface {
			IssuerConfig(iss string) (IssuerConfig, bool)
		}); ok {
			c, ok := k.IssuerConfig(ss.Issuer)
			if !ok {
				return sub, expires, &Result{Status: 401, Reason: "invalid_session", Steps: []Step{{Rule: "session", Why: "issuer " + clip.String(ss.Issuer, 100) + " of this session is no longer configured"}}}
			}
			cfg = &c
		} else if k, ok := v.(interface{ Trusts(iss string) bool }); ok && !k.Trusts(ss.Issuer) {
			return sub, expires, &Result{Status: 401, Reason: "invalid_session", Steps: []Step{{Rule: "session", Why: "issuer " + clip.String(ss.Issuer, 100) + " of this session is no longer configured"}}}
		}
		id = ss.identity(cfg)
	}
	sub.User, sub.Auth, sub.renewAt = eng.PrincipalFor(id), ss.AuthName(), ss.RenewAt()
	// Revoked in the catalog (every replica reads it): sessions of the
	// user signed in before gatehouse.dev/sessions-not-before.
	if nb := eng.sessionsNotBefore(sub.User); nb != 0 && ss.IssuedAt < nb {
		return Subject{Peer: sub.Peer}, expires, &Result{Status: 401, Reason: "invalid_session", Steps: []Step{{Rule: "session", Why: "session of " + sub.User.Ref + " signed in before its gatehouse.dev/sessions-not-before"}}}
	}
	if id.Expiry.Before(expires) {
		expires = id.Expiry
	}
	return sub, expires, nil
}

// decide evaluates a verified subject, signs the assertion of an allowed
// one, caches the outcome and answers.
func (s *Server) decide(st *engineState, rec *AuditRecord, req *Request, key string, sub *Subject, expires time.Time) *authv3.CheckResponse {
	res := st.engine.Evaluate(req, sub, false)
	if !res.Allow {
		if !res.noCache {
			st.cache.put(key, &cached{result: res, subject: *sub, expires: expires})
		}
		return s.denyResult(rec, &res)
	}
	now := s.now()
	claims := sub.assertion(req.policy.Entity, req.RouteID)
	if g := res.GraphQL; g != nil && g.OperationType != "" {
		claims.Operation = &AssertionOperation{Type: g.OperationType, Name: clip.String(g.OperationName, 100)}
		if g.Operations > 1 {
			claims.Operation.Count = g.Operations
		}
	}
	assertion, aexp, err := s.signer.Sign(claims, now)
	if err != nil {
		s.log.Error("signing identity assertion", "error", err)
		return s.deny(rec, 503, "assertion_error", "", "")
	}
	// A cached assertion is reused only while it has most of its life left.
	if limit := aexp.Add(-s.signer.Lifetime() / 2); limit.Before(expires) {
		expires = limit
	}
	st.cache.put(key, &cached{result: res, subject: *sub, assertion: assertion, expires: expires})
	return s.allow(rec, res, sub, assertion, req)
}

func ptr[T any](v T) *T { return &v }

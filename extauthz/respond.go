package extauthz

import (
	"encoding/json"
	"html"
	"net/url"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"

	"github.com/gatehouse-dev/gatehouse/model"
)

// allow lets the request through with the verified identity for the
// upstream. The caller's credentials (the Authorization header and the
// credential cookie) are removed unless the route forwards them, and so is
// any x-gatehouse-* header the client sent (Envoy strips them already).
func (s *Server) allow(rec *AuditRecord, d Result, sub *Subject, assertion string, req *Request) *authv3.CheckResponse {
	rec.Decision, rec.Status, rec.Reason, rec.Rule = "allow", 200, d.Reason, d.Rule
	rec.GraphQL = auditGraphQL(d.GraphQL)
	rec.MCP = d.MCP
	if req.proc != nil {
		req.proc.done(req, d, sub)
	}
	in, forwardToken := req.Headers, req.policy.ForwardToken
	// The answer's own messages in one allocation; the identity headers
	// are shared (read-only) by every answer carrying the same assertion.
	a := &allowResponse{}
	a.resp.Status, a.resp.HttpResponse, a.oneof.OkResponse = &a.status, &a.oneof, &a.ok
	a.ok.HeadersToRemove = a.remove[:0]
	for k := range in {
		if strings.HasPrefix(k, model.HeaderPrefix) {
			a.ok.HeadersToRemove = append(a.ok.HeadersToRemove, k)
		}
	}
	// The token (Authorization, the credential cookie) reaches the upstream
	// only when the route forwards it; gatehouse's own session and sign-in
	// cookies never do.
	credential := s.opts.CookieName
	if forwardToken {
		credential = ""
	} else if in["authorization"] != "" && (sub == nil || !req.policy.AssertionBearer) {
		a.ok.HeadersToRemove = append(a.ok.HeadersToRemove, "authorization")
	}
	var cookie *core.HeaderValueOption // the Cookie header without those cookies, when rewritten
	if c := in["cookie"]; c != "" && (credential != "" || s.opts.Sessions != nil) {
		switch rest, found := withoutCookies(c, credential, s.opts.Sessions != nil); {
		case found && rest == "":
			a.ok.HeadersToRemove = append(a.ok.HeadersToRemove, "cookie")
		case found:
			// Option and value in one allocation, only when rewritten.
			h := &header{val: core.HeaderValue{Key: "cookie", Value: rest}}
			h.opt.Header, h.opt.AppendAction = &h.val, core.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
			cookie = &h.opt
		}
	}
	if sub == nil {
		if cookie != nil {
			a.ok.Headers = []*core.HeaderValueOption{cookie}
		}
		return &a.resp
	}
	fixed := s.identityHeaders(sub, rec.Entity, assertion)
	a.ok.Headers = append(make([]*core.HeaderValueOption, 0, len(fixed)+2), fixed...)
	if cookie != nil {
		a.ok.Headers = append(a.ok.Headers, cookie)
	}
	a.id.val.Key, a.id.val.Value = model.DecisionIDHeader, rec.DecisionID
	a.id.opt.Header, a.id.opt.AppendAction = &a.id.val, core.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
	a.ok.Headers = append(a.ok.Headers, &a.id.opt)
	if req.policy.AssertionBearer {
		// The assertion is the upstream's bearer token (it replaces the
		// caller's, which never reaches the upstream).
		a.ok.Headers = append(a.ok.Headers, &core.HeaderValueOption{Header: &core.HeaderValue{Key: "authorization", Value: "Bearer " + assertion},
			AppendAction: core.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD})
	}
	return &a.resp
}

// identityHeaders are the headers an allowed request gets but for its
// decision id: a function of the assertion alone (its claims are the
// user, groups, entity, client and peer), so they are built once per
// assertion and shared by every answer that carries it (an assertion is
// reused for half its lifetime). Marshalling only reads them.
func (s *Server) identityHeaders(sub *Subject, entity, assertion string) []*core.HeaderValueOption {
	s.hdrMu.RLock()
	hs, ok := s.hdrMemo[assertion]
	s.hdrMu.RUnlock()
	if ok {
		return hs
	}
	p, peer := sub.Principal(), sub.Peer
	n := 4
	if p.ClientID != "" {
		n++
	}
	if peer != nil {
		n++
	}
	actor := sub.Actor
	if sub.User == nil {
		actor = nil
	}
	if actor != nil {
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
	set(model.UserHeader, p.Name())
	set(model.GroupsHeader, strings.Join(p.Groups, ","))
	set(model.EntityHeader, entity)
	if p.ClientID != "" {
		set(model.ClientHeader, p.ClientID)
	}
	if peer != nil {
		set(model.PeerHeader, peer.Ref)
	}
	if actor != nil {
		set(model.ActorHeader, actor.Name())
	}
	set(model.AssertionHeader, assertion)
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
	remove [3]string
	id     header // x-gatehouse-decision-id
}

// header is one header of an answer: the option and its value.
type header struct {
	opt core.HeaderValueOption
	val core.HeaderValue
}

// denyResult answers a denial Evaluate (or a step before it) decided.
func (s *Server) denyResult(rec *AuditRecord, r *Result) *authv3.CheckResponse {
	rec.GraphQL = auditGraphQL(r.GraphQL)
	rec.MCP = r.MCP
	if r.GraphQL != nil && len(r.GraphQL.Errors) > 0 {
		return s.denyGraphQL(rec, r)
	}
	if r.MCP != nil && r.Status != 401 {
		return s.denyMCP(rec, r)
	}
	detail := ""
	if len(r.Steps) > 0 {
		detail = r.Steps[0].Why
	}
	return s.deny(rec, r.Status, r.Reason, r.Rule, detail)
}

// errorCodes are the error codes of denial bodies, by status.
var errorCodes = map[int]string{400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found", 503: "unavailable"}

// denyGraphQL answers a refused GraphQL request as GraphQL clients
// expect: {"errors":[{"message","path","extensions":{"code"}}]}, the
// paths only those of the caller's own document.
func (s *Server) denyGraphQL(rec *AuditRecord, r *Result) *authv3.CheckResponse {
	rec.Decision, rec.Status, rec.Reason, rec.Rule = "deny", r.Status, r.Reason, r.Rule
	body, _ := json.Marshal(struct {
		Errors []GraphQLError `json:"errors"`
	}{r.GraphQL.Errors})
	return &authv3.CheckResponse{
		Status: &status.Status{Code: int32(codes.PermissionDenied)},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(r.Status)},
			Headers: []*core.HeaderValueOption{{Header: &core.HeaderValue{Key: "content-type", Value: "application/json"}}},
			Body:    string(body) + "\n",
		}},
	}
}

// deny answers with a small JSON body: an error code and the decision id,
// nothing about the policy.
func (s *Server) deny(rec *AuditRecord, code int, reason, rule, detail string) *authv3.CheckResponse {
	rec.Decision, rec.Status, rec.Reason = "deny", code, reason
	if rule != "" {
		rec.Rule = rule
	}
	errCode := errorCodes[code]
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

// unauthenticated answers a request that presented no usable credential.
// A navigating browser (s.navigation) without a bearer token is sent to
// sign in with a 302 to model.SignInPath, its return path taken from
// Envoy's :path (never from a client's X-Forwarded-Uri): through a silent
// renewal when its session expired within the grace, and with its
// unusable session cookie cleared otherwise. Every other client gets the
// 401 (or other denial) r says; a page's fetch()/XHR whose session no
// longer counts gets it with ReloadHeader, so the page can reload (a
// navigation, which renews or signs in).
func (s *Server) unauthenticated(rec *AuditRecord, r *Result, req *Request, h *authv3.AttributeContext_HttpRequest, c credentials) *authv3.CheckResponse {
	if r.Status != 401 || c.token != "" || !s.navigation(req, h) {
		resp := s.denyResult(rec, r)
		if d := resp.GetDeniedResponse(); d != nil && r.Status == 401 && c.session != "" && c.token == "" && s.signsIn(req) {
			d.Headers = append(d.Headers, &core.HeaderValueOption{Header: &core.HeaderValue{Key: ReloadHeader, Value: "reload"}})
		}
		return resp
	}
	renew := r.Reason == "session_expired"
	return s.toSignIn(rec, h, r.Reason, renew, c.session != "" && !renew)
}

// ReloadHeader tells a page whose fetch()/XHR got a 401 because its
// session expired (or no longer opens) to reload: the navigation renews
// the session at the IdP (docs/sign-in.md). Such requests are never
// redirected (the IdP's pages are no answer for a script).
const ReloadHeader = "x-gatehouse-sign-in"

// signsIn: sign-in is on and the request's route sends people to sign in
// (model.RouteAuth.Redirects: not gatehouse.dev/sign-in: off).
func (s *Server) signsIn(req *Request) bool {
	return s.opts.Sessions != nil && (req.policy == nil || req.policy.route == nil || req.policy.route.Auth.Redirects())
}

// navigation: a browser loading a page (a GET or HEAD whose Accept prefers
// text/html, without an Authorization header, and not a fetch()/XHR by
// its Sec-Fetch-Mode when the browser sends one) on a route that signs
// people in. Only navigations are ever redirected.
func (s *Server) navigation(req *Request, h *authv3.AttributeContext_HttpRequest) bool {
	if !s.signsIn(req) || req.Headers["authorization"] != "" || (h.GetMethod() != "GET" && h.GetMethod() != "HEAD") {
		return false
	}
	if mode := req.Headers["sec-fetch-mode"]; mode != "" && mode != "navigate" {
		return false
	}
	return prefersHTML(req.Headers["accept"])
}

// toSignIn is the 302 that sends a navigating browser to sign in and back
// to this request's path: with renew, through a silent renewal at the IdP
// (prompt=none: no form while the IdP session lives); with clear, the
// session cookie it sent is removed.
func (s *Server) toSignIn(rec *AuditRecord, h *authv3.AttributeContext_HttpRequest, reason string, renew, clear bool) *authv3.CheckResponse {
	rec.Decision, rec.Status, rec.Reason = "deny", 302, reason
	loc := model.SignInPath + "?rd=" + url.QueryEscape(h.GetPath())
	if renew {
		loc += "&" + model.RenewParam + "=1"
	}
	hdrs := []*core.HeaderValueOption{
		{Header: &core.HeaderValue{Key: "location", Value: loc}},
		{Header: &core.HeaderValue{Key: "cache-control", Value: "no-store"}},
		{Header: &core.HeaderValue{Key: "content-type", Value: "text/html; charset=utf-8"}},
	}
	if clear {
		hdrs = append(hdrs, &core.HeaderValueOption{Header: &core.HeaderValue{Key: "set-cookie", Value: s.opts.SessionCookie.Clear(h.GetScheme())}})
	}
	return &authv3.CheckResponse{
		Status: &status.Status{Code: int32(codes.Unauthenticated)},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode_Found},
			Headers: hdrs,
			Body:    `<!doctype html><title>Sign in</title><p><a href="` + html.EscapeString(loc) + `">Sign in</a> to continue.</p>` + "\n",
		}},
	}
}

// asPage turns a denial's JSON body into a small HTML page for a browser
// (with sign-in on): what happened, the decision id to quote, and a way to
// sign out and in as someone else. Nothing more about the policy.
func asPage(resp *authv3.CheckResponse, rec *AuditRecord) {
	d := resp.GetDeniedResponse()
	if d == nil {
		return
	}
	title := map[int]string{400: "Bad request", 401: "Sign-in needed", 403: "Forbidden", 404: "Not found", 503: "Unavailable"}[rec.Status]
	if title == "" {
		title = "Refused"
	}
	code := errorCodes[rec.Status]
	for _, h := range d.Headers {
		if h.GetHeader().GetKey() == "content-type" {
			h.Header.Value = "text/html; charset=utf-8"
		}
	}
	d.Body = "<!doctype html><meta charset=utf-8><title>" + title + "</title><h1>" + title + "</h1><p>gatehouse refused this request (" + code +
		"). Decision id: <code>" + html.EscapeString(rec.DecisionID) + `</code>.</p><p><a href="` + model.LogoutPath + `">Sign out</a></p>` + "\n"
}

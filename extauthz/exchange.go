package extauthz

import (
	"encoding/json"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/model"
)

// The token exchange endpoint (RFC 8693), docs/agents.md: an AI agent
// trades a person's token (subject_token) and its own client-credentials
// token (actor_token) for a short-lived token for one catalog entity
// (resource, RFC 8707), with sub the person and act.sub the agent.
//
// Client authentication: the actor token is the agent's proof. It is an
// access token the IdP issued to the agent's own client by the client
// credentials grant (the issuer's machine_token_claims say so), and the
// client must be a catalog agent. gatehouse keeps no client secrets: a
// request with an Authorization header (HTTP Basic client authentication)
// is refused rather than silently ignored, and a client_id parameter, when
// sent, must be the actor token's client.

// ExchangePath is where Envoy sends token exchanges (under
// model.SignInPrefix, routed without a Check).
const ExchangePath = model.SignInPrefix + "token"

// RFC 8693 names.
const (
	GrantTypeTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	TokenTypeAccessToken   = "urn:ietf:params:oauth:token-type:access_token"
	TokenTypeJWT           = "urn:ietf:params:oauth:token-type:jwt"
)

// maxExchangeBody bounds an exchange request's body (two tokens and a few
// names).
const maxExchangeBody = 3 * maxTokenBytes

// exchangeRequest is a parsed token exchange request.
type exchangeRequest struct {
	SubjectToken, SubjectTokenType string
	ActorToken, ActorTokenType     string
	Resource                       string // one catalog entity ref or URL
	Scope                          []string
	ClientID                       string
}

// oauthError is an RFC 6749 §5.2 error answer.
type oauthError struct {
	status int
	Code   string `json:"error"`
	Desc   string `json:"error_description,omitempty"`
}

func (e *oauthError) Error() string { return e.Code + ": " + e.Desc }

func badRequest(code, desc string) *oauthError {
	return &oauthError{status: 400, Code: code, Desc: desc}
}

// singleParams may appear once (RFC 6749 §3.2: parameters must not be
// repeated; RFC 8707 allows several resources, gatehouse issues a token
// for exactly one).
var singleParams = []string{"grant_type", "subject_token", "subject_token_type", "actor_token", "actor_token_type",
	"requested_token_type", "scope", "resource", "audience", "client_id"}

// parseExchangeForm reads an application/x-www-form-urlencoded exchange
// request body. Everything about its shape is refused here, before any
// token is looked at.
func parseExchangeForm(body []byte) (exchangeRequest, *oauthError) {
	var r exchangeRequest
	if len(body) > maxExchangeBody {
		return r, badRequest("invalid_request", "the request body is over "+strconv.Itoa(maxExchangeBody)+" bytes")
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return r, badRequest("invalid_request", "the body is not application/x-www-form-urlencoded")
	}
	for _, k := range singleParams {
		if len(form[k]) > 1 {
			if k == "resource" || k == "audience" {
				return r, badRequest("invalid_target", "name one resource: a token is issued for exactly one catalog entity")
			}
			return r, badRequest("invalid_request", "parameter "+k+" is repeated")
		}
	}
	if g := form.Get("grant_type"); g != GrantTypeTokenExchange {
		if g == "" {
			return r, badRequest("invalid_request", "grant_type is missing (use "+GrantTypeTokenExchange+")")
		}
		return r, badRequest("unsupported_grant_type", "only "+GrantTypeTokenExchange+" is served here")
	}
	r.SubjectToken, r.SubjectTokenType = form.Get("subject_token"), form.Get("subject_token_type")
	r.ActorToken, r.ActorTokenType = form.Get("actor_token"), form.Get("actor_token_type")
	switch {
	case r.SubjectToken == "" || r.SubjectTokenType == "":
		return r, badRequest("invalid_request", "subject_token and subject_token_type are required: the person's access token")
	case r.ActorToken == "" || r.ActorTokenType == "":
		return r, badRequest("invalid_request", "actor_token and actor_token_type are required: the agent's client-credentials token (it authenticates the agent)")
	case !jwtType(r.SubjectTokenType):
		return r, badRequest("invalid_request", "subject_token_type must be "+TokenTypeAccessToken+" or "+TokenTypeJWT)
	case !jwtType(r.ActorTokenType):
		return r, badRequest("invalid_request", "actor_token_type must be "+TokenTypeAccessToken+" or "+TokenTypeJWT)
	case len(r.SubjectToken) > maxTokenBytes || len(r.ActorToken) > maxTokenBytes:
		return r, badRequest("invalid_request", "a token is longer than "+strconv.Itoa(maxTokenBytes)+" bytes")
	}
	if t := form.Get("requested_token_type"); t != "" && t != TokenTypeAccessToken {
		return r, badRequest("invalid_request", "requested_token_type: gatehouse issues "+TokenTypeAccessToken+" only")
	}
	res, aud := form.Get("resource"), form.Get("audience")
	switch {
	case res != "" && aud != "" && res != aud:
		return r, badRequest("invalid_target", "resource and audience name different entities; name one")
	case res == "":
		res = aud
	}
	if res == "" {
		return r, badRequest("invalid_target", "resource is required: the catalog entity (e.g. component:default/orders) or its URL the token is for")
	}
	if len(res) > 2048 || strings.ContainsAny(res, " \t\r\n\x00") {
		return r, badRequest("invalid_target", "resource is not an entity ref or a URL")
	}
	r.Resource = res
	if s, ok := form["scope"]; ok {
		for _, sc := range strings.Split(s[0], " ") {
			if sc == "" {
				continue
			}
			if !scopeToken(sc) {
				return r, badRequest("invalid_scope", "scope "+strconv.Quote(clipStr(sc, 64))+" has characters RFC 6749 §3.3 does not allow")
			}
			if !slices.Contains(r.Scope, sc) {
				r.Scope = append(r.Scope, sc)
			}
		}
		if len(r.Scope) > 64 {
			return r, badRequest("invalid_scope", "more than 64 scopes")
		}
	}
	r.ClientID = form.Get("client_id")
	return r, nil
}

func jwtType(t string) bool { return t == TokenTypeAccessToken || t == TokenTypeJWT }

// scopeToken: NQCHAR (%x21 / %x23-5B / %x5D-7E), at most 128 bytes.
func scopeToken(s string) bool {
	if len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c == 0x22 || c == 0x5c || c > 0x7e {
			return false
		}
	}
	return true
}

// Exchanger serves the token exchange endpoint from a Check server's
// current model and token verifier.
type Exchanger struct {
	srv *Server
	d   *Delegation
	log *slog.Logger
}

// NewExchanger returns the endpoint; the server must have been built with
// Options.Delegation d (so that Check accepts what it issues).
func NewExchanger(srv *Server, d *Delegation, log *slog.Logger) *Exchanger {
	if log == nil {
		log = slog.Default()
	}
	return &Exchanger{srv: srv, d: d, log: log}
}

// exchangeResponse is RFC 8693 §2.2.1's answer.
type exchangeResponse struct {
	AccessToken     string `json:"access_token"`
	IssuedTokenType string `json:"issued_token_type"`
	TokenType       string `json:"token_type"`
	ExpiresIn       int64  `json:"expires_in"`
	Scope           string `json:"scope,omitempty"`
}

func (x *Exchanger) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeOAuthError(w, &oauthError{status: 405, Code: "invalid_request", Desc: "use POST"})
		return
	}
	if r.URL.RawQuery != "" {
		writeOAuthError(w, badRequest("invalid_request", "send the parameters in the body, never in the URL (tokens would be logged)"))
		return
	}
	if ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || ct != "application/x-www-form-urlencoded" {
		writeOAuthError(w, badRequest("invalid_request", "Content-Type must be application/x-www-form-urlencoded"))
		return
	}
	if r.Header.Get("Authorization") != "" {
		writeOAuthError(w, &oauthError{status: 401, Code: "invalid_client", Desc: "send no Authorization header: the actor_token (the agent's client-credentials token) authenticates the agent"})
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxExchangeBody+1))
	if err != nil {
		writeOAuthError(w, badRequest("invalid_request", "reading the body failed"))
		return
	}
	req, oe := parseExchangeForm(body)
	if oe != nil {
		x.refused(w, oe, "", "", "")
		return
	}
	resp, who, oe := x.exchange(r, req)
	if oe != nil {
		x.refused(w, oe, who.subject, who.agent, req.Resource)
		return
	}
	x.log.Info("token exchanged", "subject", who.subject, "actor", who.agent, "audience", who.audience, "rule", who.rule, "scope", resp.Scope, "expires_in", resp.ExpiresIn)
	exchangeCounter("issued").Inc()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

func (x *Exchanger) refused(w http.ResponseWriter, oe *oauthError, subject, agent, resource string) {
	x.log.Info("token exchange refused", "error", oe.Code, "why", oe.Desc, "subject", subject, "actor", agent, "resource", clipStr(resource, 200))
	exchangeCounter(oe.Code).Inc()
	writeOAuthError(w, oe)
}

func writeOAuthError(w http.ResponseWriter, e *oauthError) {
	w.Header().Set("Content-Type", "application/json")
	if e.status == 401 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="gatehouse", error="`+e.Code+`"`)
	}
	w.WriteHeader(e.status)
	_ = json.NewEncoder(w).Encode(e)
}

// exchangeParties is who an exchange was for, for the log.
type exchangeParties struct{ subject, agent, audience, rule string }

// exchange verifies both tokens, the agent and its reach, and issues.
func (x *Exchanger) exchange(r *http.Request, req exchangeRequest) (exchangeResponse, exchangeParties, *oauthError) {
	var who exchangeParties
	eng, m := x.srv.Engine(), x.srv.Model()
	if eng == nil {
		return exchangeResponse{}, who, &oauthError{status: 503, Code: "temporarily_unavailable", Desc: "gatehouse has not loaded a catalog yet"}
	}
	v := x.srv.Verifier()
	ctx := r.Context()
	// The actor first: it is the client's authentication.
	actor, err := v.Verify(ctx, req.ActorToken)
	switch {
	case err != nil:
		return exchangeResponse{}, who, &oauthError{status: 401, Code: "invalid_client", Desc: "actor_token: " + err.Error()}
	case actor.Actor != nil || actor.Delegated:
		return exchangeResponse{}, who, &oauthError{status: 401, Code: "invalid_client", Desc: "actor_token is itself delegated; the agent's own client-credentials token is needed"}
	case !actor.Machine:
		return exchangeResponse{}, who, &oauthError{status: 401, Code: "invalid_client", Desc: "actor_token is not a client-credentials token: " + actor.NotMachine()}
	case req.ClientID != "" && req.ClientID != actor.ClientID:
		return exchangeResponse{}, who, &oauthError{status: 401, Code: "invalid_client", Desc: "client_id is not the actor token's client"}
	}
	agent, ok := eng.Agent(actor.ClientID)
	if !ok {
		desc := "client " + clip(actor.ClientID) + " is not an AI agent in the catalog (a Component with spec.type ai-agent and gatehouse.dev/client-id " + clip(actor.ClientID) + ")"
		return exchangeResponse{}, who, &oauthError{status: 401, Code: "invalid_client", Desc: desc}
	}
	who.agent = agent
	subj, err := v.Verify(ctx, req.SubjectToken)
	if err != nil {
		return exchangeResponse{}, who, badRequest("invalid_grant", "subject_token: "+err.Error())
	}
	if subj.Actor != nil || subj.Delegated {
		return exchangeResponse{}, who, badRequest("invalid_grant", "subject_token is already delegated: a delegated token is never exchanged again (nor back into a person's own token)")
	}
	person := eng.PrincipalFor(subj)
	if person.Kind != "user" {
		why := "subject_token is not a person's token"
		if person.Unmatched != "" {
			why += ": " + person.Unmatched
		}
		return exchangeResponse{}, who, badRequest("invalid_grant", why)
	}
	who.subject = person.Ref
	entity, oe := resolveResource(eng, m, req.Resource)
	if oe != nil {
		return exchangeResponse{}, who, oe
	}
	who.audience = entity
	if who.rule = eng.AgentReach(agent, entity); who.rule == "" {
		return exchangeResponse{}, who, badRequest("invalid_target", agent+" may not call "+entity+": nothing in the catalog lets it (declare the API in its spec.consumesApis, or a gatehouse.dev/access rule naming it)")
	}
	scope, oe := narrowScope(req.Scope, subj.Scopes)
	if oe != nil {
		return exchangeResponse{}, who, oe
	}
	notAfter := subj.Expiry
	if actor.Expiry.Before(notAfter) {
		notAfter = actor.Expiry
	}
	tok, exp, err := x.d.issue(delegatedClaims{
		Subject: person.Ref, Audience: entity, ClientID: actor.ClientID, Scope: strings.Join(scope, " "),
		Act: Actor{Subject: agent, ClientID: actor.ClientID, Issuer: actor.Issuer}, SubjectIssuer: subj.Issuer,
	}, notAfter)
	if err != nil {
		return exchangeResponse{}, who, badRequest("invalid_grant", err.Error())
	}
	return exchangeResponse{AccessToken: tok, IssuedTokenType: TokenTypeAccessToken, TokenType: "Bearer",
		ExpiresIn: int64(time.Until(exp).Round(time.Second) / time.Second), Scope: strings.Join(scope, " ")}, who, nil
}

// resolveResource turns the resource parameter into one catalog entity
// ref: a ref (kind:namespace/name; namespace default when left out) the
// model routes, or an http(s) URL matched as Envoy would route it (the
// route's API when it has one, else its entity).
func resolveResource(eng *Engine, m *model.Model, res string) (string, *oauthError) {
	if strings.HasPrefix(res, "http://") || strings.HasPrefix(res, "https://") {
		u, err := url.Parse(res)
		if err != nil || u.Host == "" || u.Fragment != "" {
			return "", badRequest("invalid_target", "resource is not an absolute URL without a fragment (RFC 8707)")
		}
		path, ok := cleanPath(u.EscapedPath())
		if !ok || m == nil {
			return "", badRequest("invalid_target", "resource URL has a path gatehouse refuses")
		}
		if path == "" {
			path = "/"
		}
		_, r := m.Match(u.Host, path)
		if r == nil || r.Public {
			return "", badRequest("invalid_target", "no protected route matches resource "+clipStr(res, 200))
		}
		if r.API != "" {
			return r.API, nil
		}
		return r.Entity, nil
	}
	ref := strings.ToLower(res)
	kind, rest, ok := strings.Cut(ref, ":")
	if ok && !strings.Contains(rest, "/") {
		ref = kind + ":default/" + rest
	}
	if !ok || (kind != "component" && kind != "api" && kind != "resource") || !eng.EntityKnown(ref) {
		return "", badRequest("invalid_target", "resource "+strconv.Quote(clipStr(res, 200))+" is not a routed catalog Component, API or Resource (write component:default/orders, or its URL)")
	}
	return ref, nil
}

// narrowScope: the scope of the issued token is what the agent asked
// for, never more than the person's token has (each asked scope must be
// in it: invalid_scope otherwise); without a request, the person's whole
// scope.
func narrowScope(asked, held []string) ([]string, *oauthError) {
	if len(asked) == 0 {
		return held, nil
	}
	for _, s := range asked {
		if !slices.Contains(held, s) {
			return nil, badRequest("invalid_scope", "scope "+strconv.Quote(clipStr(s, 64))+" is not in the subject token's scope")
		}
	}
	return asked, nil
}

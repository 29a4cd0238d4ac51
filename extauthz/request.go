package extauthz

import (
	"crypto/sha256"
	"strings"

	"github.com/gatehouse-dev/gatehouse/model"
)

// Request is what policy decides about, whoever asks: Check builds it from
// what Envoy sent, explain from an operator's URL. Every field is read
// only.
type Request struct {
	// RouteID is the route Envoy chose; policy is its compiled policy.
	RouteID string
	policy  *routePolicy
	Method  string
	// Path is normalised and percent-decoded (cleanPath); Host as sent.
	Path, Host string
	// Query is the raw query string (after "?"), which a GraphQL GET
	// carries its document in.
	Query string
	// Headers are the headers Check reads (authorization, cookie,
	// x-request-id, x-gatehouse-*); nil when explaining.
	Headers map[string]string
	// Body is the request body, when the route's RouteAuth asks Envoy to
	// send it (model.RouteAuth.BodyBytes); nil otherwise.
	Body []byte
	// proc: the request came through the ext_proc server (extproc.go),
	// whose body filter may rewrite it; allow records the outcome there.
	proc *procCall
	// docKey: documentKey, once computed.
	docKey string
}

// documentKey is a hash of the URL's query string and the body (SHA-256,
// first 16 bytes): what a GraphQL request's document, operation name and
// variables are, computed once per request for the decision cache key
// and the inspector's memory.
func (r *Request) documentKey() string {
	if r.docKey == "" {
		h := sha256.New()
		h.Write(bytesOf(r.Query))
		h.Write([]byte{0})
		h.Write(r.Body)
		var sum [sha256.Size]byte
		r.docKey = string(h.Sum(sum[:0])[:16])
	}
	return r.docKey
}

// Filtering reports whether the request came through the ext_proc server,
// so that a body filter sees it once allowed (GraphQL filter mode: the
// field rules remove fields there instead of refusing the request).
func (r *Request) Filtering() bool { return r.proc != nil }

// Policy is the route's compiled policy as the catalog gave it.
func (r *Request) Policy() *model.Policy { return &r.policy.Policy }

// request builds the Request for a route id Envoy (or explain) chose and
// a raw path, or the denial when there is nothing to decide: a path that
// hides a traversal (400 bad_path), no route (404 no_route), a route this
// model does not know (404 unknown_route), or a route that could not have
// matched the path (404 route_mismatch: an Envoy configured so that a
// client can set the route header decides nothing).
//
// The Request is returned in every case, with Path set when it is clean.
func (e *Engine) request(routeID, method, rawPath, host string) (Request, *Result) {
	path, ok := cleanPath(rawPath)
	req := Request{RouteID: routeID, Method: method, Path: path, Host: host}
	if i := strings.IndexByte(rawPath, '?'); i >= 0 {
		req.Query = rawPath[i+1:]
		if j := strings.IndexByte(req.Query, '#'); j >= 0 {
			req.Query = req.Query[:j]
		}
	}
	if !ok {
		return req, &Result{Status: 400, Reason: "bad_path", Steps: []Step{{Rule: "path", Why: "the path decodes to a dot segment, an empty segment, a backslash or a NUL"}}}
	}
	if routeID == "" {
		return req, &Result{Status: 404, Reason: "no_route", Steps: []Step{{Rule: "route", Why: "no route matches host " + host + " and path " + path}}}
	}
	rp := e.routes[routeID]
	if rp == nil {
		return req, &Result{Status: 404, Reason: "unknown_route", Steps: []Step{{Rule: "route", Why: "route " + routeID + " is not in model " + e.version}}}
	}
	if rp.route != nil && !rp.route.MatchesPath(pathOnly(rawPath)) {
		return req, &Result{Status: 404, Reason: "route_mismatch", Steps: []Step{{Rule: "route", Why: "route " + routeID + " does not match path " + truncate(rawPath, 256)}}}
	}
	req.policy = rp
	return req, nil
}

package extauthz

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/model"
)

// ExplainRequest asks "would this request be allowed, and why?".
type ExplainRequest struct {
	// Token is a raw bearer token; or Principal (a user or component ref)
	// with optional extra Groups; neither: an anonymous request.
	Token     string   `json:"token,omitempty"`
	Principal string   `json:"principal,omitempty"`
	Groups    []string `json:"groups,omitempty"`
	// Scopes: the OAuth scopes a token of Principal would grant (what
	// @requiresScopes reads); a Token's own scopes are its claims.
	Scopes []string `json:"scopes,omitempty"`
	// Peer is the component a sidecar verified by mTLS (a component ref),
	// on a sidecar's inbound route.
	Peer   string `json:"peer,omitempty"`
	Method string `json:"method"`
	URL    string `json:"url"`
	// RouteID, when set, is the route Envoy chose (as Check receives it);
	// otherwise the route is matched from URL as the translator's routes
	// match (model.Match).
	RouteID string `json:"routeId,omitempty"`
	// Body is the request body, read on routes whose RouteAuth asks Envoy
	// for it (a GraphQL API's): a POST's JSON or document.
	Body string `json:"body,omitempty"`
}

// ExplainResult is the decision with every rule considered.
type ExplainResult struct {
	ModelVersion string        `json:"modelVersion"`
	Host         string        `json:"host"`
	Path         string        `json:"path"`
	Route        *model.Route  `json:"route,omitempty"`
	Policy       *model.Policy `json:"policy,omitempty"`
	Subject      *Subject      `json:"subject,omitempty"`
	// Principal is who the request is for (Subject.Principal()).
	Principal *Principal `json:"principal,omitempty"`
	Decision  Result     `json:"decision"`
	// Missing: for a principal no rule allowed, what in the catalog would
	// allow it (any one of them); docs/policy.md, steps 4-6.
	Missing []string `json:"missing,omitempty"`
}

// Explain evaluates a request through the same steps and Evaluate as
// Check: the Request from the route and path, the Subject from the token
// (verified and mapped as Check does) or from catalog refs, then Evaluate
// with every step recorded.
func Explain(ctx context.Context, eng *Engine, m *model.Model, verifier TokenVerifier, in ExplainRequest) (*ExplainResult, error) {
	u, err := url.Parse(in.URL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("url %q: give an absolute URL such as http://orders.example.com/orders/7", in.URL)
	}
	method := strings.ToUpper(in.Method)
	if method == "" {
		method = "GET"
	}
	res := &ExplainResult{ModelVersion: eng.version, Host: u.Host, Path: u.EscapedPath()}
	routeID, mesh := in.RouteID, model.IsMeshHost(u.Host)
	if path, ok := cleanPath(res.Path); ok && routeID == "" {
		var r *model.Route
		if mesh {
			// A call through the mesh: the caller's sidecar routes the name
			// only if its component declares it; the provider's sidecar
			// then checks.
			_, r = m.MatchMesh(u.Host, path)
		} else {
			_, r = m.Match(u.Host, path)
		}
		if r != nil {
			routeID = r.ID
		}
	}
	req, denied := eng.request(routeID, method, u.RequestURI(), u.Host)
	if req.policy != nil {
		res.Route, res.Policy = req.policy.route, &req.policy.Policy
	}
	if denied != nil {
		res.Decision = *denied
		return res, nil
	}
	if r := req.policy.route; r != nil && r.Auth.SendsBody() {
		if len(in.Body) > int(r.Auth.BodyBytes) {
			// Envoy answers 413 before any Check.
			res.Decision = Result{Status: 413, Reason: "body_too_large", Steps: []Step{{Rule: "body", Why: "the body is over the route's limit of " + strconv.Itoa(int(r.Auth.BodyBytes)) + " bytes; Envoy answers 413"}}}
			return res, nil
		}
		req.Body = []byte(in.Body)
	}
	if r := req.policy.route; r != nil && r.Auth.ExtProc && !mesh {
		// Envoy sends this route's requests to the ext_proc server, whose
		// body filter removes what field rules forbid (GraphQL filter
		// mode): explain decides as it does.
		req.proc = &procCall{}
	}
	if req.policy.Public {
		// As in Check: no credential is looked at on a public path.
		res.Decision = eng.Evaluate(&req, &Subject{}, true)
		return res, nil
	}
	sub, err := eng.explainSubject(ctx, verifier, in, &req)
	if err != nil {
		return nil, err
	}
	if sub.denied != nil {
		res.Decision = *sub.denied
		return res, nil
	}
	res.Subject, res.Principal = sub.Subject, sub.Subject.Principal()
	var egress *Step
	if mesh {
		if egress, res.Decision = eng.meshEgress(m, u, res.Principal); !res.Decision.Allow && egress != nil {
			return res, nil
		}
	}
	res.Decision = eng.Evaluate(&req, sub.Subject, true)
	if egress != nil {
		res.Decision.Steps = append([]Step{*egress}, res.Decision.Steps...)
	}
	res.Missing = missing(res.Decision, res.Policy)
	return res, nil
}

// missing says, for the first principal no rule allowed, what in the
// catalog would allow it: the criteria's own conditions, read backwards.
func missing(d Result, pol *model.Policy) []string {
	if d.Allow || d.Reason != "no_matching_rule" || pol == nil {
		return nil
	}
	var ref string
	for _, p := range d.Principals {
		if !p.Allow {
			ref = p.Ref
			break
		}
	}
	if ref == "" {
		return nil
	}
	var out []string
	switch {
	case strings.HasPrefix(ref, "component:") && pol.API != "":
		out = append(out, pol.API+" in "+ref+"'s spec.consumesApis")
	case strings.HasPrefix(ref, "component:"):
		out = append(out, pol.Entity+" in "+ref+"'s spec.dependsOn (or, in its spec.consumesApis, an API this route serves)")
	case len(pol.Owners) > 0:
		out = append(out, "membership of an owner: "+strings.Join(pol.Owners, ", "))
	}
	return append(out, "a gatehouse.dev/access rule on "+pol.Entity+" that allows "+ref+" for this method and path")
}

type explainedSubject struct {
	*Subject
	denied *Result
}

// explainSubject is the request's Subject: from a token, exactly as Check
// builds it; from catalog refs, as a token mapped to them would be.
func (e *Engine) explainSubject(ctx context.Context, v TokenVerifier, in ExplainRequest, req *Request) (explainedSubject, error) {
	creds := credentials{token: in.Token}
	if in.Peer != "" {
		if req.policy.route == nil || !req.policy.meshInbound {
			return explainedSubject{}, fmt.Errorf("peer %q: an mTLS peer is only taken on a sidecar's inbound route; route %s is not one", in.Peer, req.RouteID)
		}
		if !strings.HasPrefix(strings.ToLower(in.Peer), "component:") {
			return explainedSubject{}, fmt.Errorf("peer %q: write the calling component's ref, e.g. component:default/checkout", in.Peer)
		}
		creds.peer = strings.ToLower(in.Peer)
	}
	sub, _, denied := subjectFor(ctx, v, nil, nil, e, creds, time.Now(), time.Time{})
	if denied != nil {
		return explainedSubject{denied: denied}, nil
	}
	if in.Token == "" && in.Principal != "" {
		p := e.principalByRef(in.Principal, in.Groups)
		if p == nil {
			return explainedSubject{}, fmt.Errorf("principal %q is not a user or component in the catalog (write user:default/alice or component:default/checkout)", in.Principal)
		}
		if len(in.Scopes) > 0 {
			p.Scopes = slices.Compact(slices.Sorted(slices.Values(in.Scopes)))
		}
		sub.User = p
	}
	return explainedSubject{Subject: &sub}, nil
}

// meshEgress: a call through the mesh leaves the caller's sidecar only to
// what its component declares; an undeclared name is refused there, before
// any Check. The step says which.
func (e *Engine) meshEgress(m *model.Model, u *url.URL, p *Principal) (*Step, Result) {
	if p == nil || p.Kind != "component" {
		return nil, Result{Allow: true}
	}
	caller := m.MeshService(p.Ref)
	if caller == nil {
		return nil, Result{Allow: true}
	}
	host := strings.ToLower(u.Hostname())
	for _, t := range caller.Outbound {
		if t.Host == host {
			return &Step{Rule: "egress", Matched: true, Why: p.Ref + " declares " + host + "; its sidecar routes the call over mTLS"}, Result{Allow: true}
		}
	}
	step := Step{Rule: "egress", Why: p.Ref + " declares neither the API nor the component named " + host + " (spec.consumesApis, spec.dependsOn); its sidecar refuses the call"}
	return &step, Result{Status: 403, Reason: "egress_not_declared", Steps: []Step{step}}
}

// principalByRef builds a principal from a catalog ref, as a token mapped
// to it would be.
func (e *Engine) principalByRef(ref string, extraGroups []string) *Principal {
	key := strings.ToLower(ref)
	p := &Principal{}
	switch {
	case strings.HasPrefix(key, "user:"):
		u := e.users[key]
		if u == nil {
			return nil
		}
		p.Kind, p.Ref, p.Subject, p.Email = "user", u.Ref, u.Ref, u.Email
		groups := set(u.Groups)
		for _, g := range extraGroups {
			for _, gk := range e.groupsNamed(g, "default") {
				for _, a := range e.groups[gk].Groups {
					groups[a] = true
				}
			}
		}
		p.Groups = keys(groups)
	case strings.HasPrefix(key, "component:"):
		for id, c := range e.clients {
			if c == key {
				p.ClientID = id
			}
		}
		p.Kind, p.Ref, p.Subject = "component", key, key
	default:
		return nil
	}
	return p
}

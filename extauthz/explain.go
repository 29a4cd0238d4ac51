package extauthz

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/gatehouse-dev/gatehouse/model"
)

// ExplainRequest asks "would this request be allowed, and why?".
type ExplainRequest struct {
	// Token is a raw bearer token; or Principal (a user or component ref)
	// with optional extra Groups.
	Token     string   `json:"token,omitempty"`
	Principal string   `json:"principal,omitempty"`
	Groups    []string `json:"groups,omitempty"`
	Method    string   `json:"method"`
	URL       string   `json:"url"`
}

// ExplainResult is the decision with every rule considered.
type ExplainResult struct {
	ModelVersion string        `json:"modelVersion"`
	Host         string        `json:"host"`
	Path         string        `json:"path"`
	Route        *model.Route  `json:"route,omitempty"`
	Policy       *model.Policy `json:"policy,omitempty"`
	Principal    *Principal    `json:"principal,omitempty"`
	Decision     Decision      `json:"decision"`
}

// Explain evaluates a request with the engine Check uses. Route matching
// follows the translator's rules (model.Match).
func Explain(ctx context.Context, eng *Engine, m *model.Model, verifier TokenVerifier, req ExplainRequest) (*ExplainResult, error) {
	u, err := url.Parse(req.URL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("url %q: give an absolute URL such as http://orders.example.com/orders/7", req.URL)
	}
	method := strings.ToUpper(req.Method)
	if method == "" {
		method = "GET"
	}
	res := &ExplainResult{ModelVersion: eng.version, Host: u.Host, Path: u.EscapedPath()}
	path, ok := cleanPath(res.Path)
	if !ok {
		res.Decision = Decision{Status: 400, Reason: "bad_path"}
		return res, nil
	}
	var r *model.Route
	mesh := model.IsMeshHost(u.Host)
	if mesh {
		// A call through the mesh: the caller's sidecar routes the name only
		// if its component declares it; the provider's sidecar then checks.
		_, r = m.MatchMesh(u.Host, path)
	} else {
		_, r = m.Match(u.Host, path)
	}
	if r == nil {
		res.Decision = Decision{Status: 404, Reason: "no_route", Steps: []Step{{Rule: "route", Why: "no route matches host " + u.Host + " and path " + path}}}
		return res, nil
	}
	res.Route, res.Policy = r, eng.Route(r.ID)
	var p *Principal
	switch {
	case req.Token != "":
		if verifier == nil {
			return nil, fmt.Errorf("no issuers configured to verify the token")
		}
		id, err := verifier.Verify(ctx, req.Token)
		if err != nil {
			res.Decision = Decision{Status: 401, Reason: "invalid_token", Steps: []Step{{Rule: "token", Why: err.Error()}}}
			return res, nil
		}
		p = eng.PrincipalFor(id)
	case req.Principal != "":
		p = eng.principalByRef(req.Principal, req.Groups)
		if p == nil {
			return nil, fmt.Errorf("principal %q is not a user or component in the catalog (write user:default/alice or component:default/checkout)", req.Principal)
		}
	}
	res.Principal = p
	if mesh && p != nil && p.Kind == "component" {
		if caller := m.MeshService(p.Ref); caller != nil {
			declared := false
			host := strings.ToLower(u.Hostname())
			for _, t := range caller.Outbound {
				declared = declared || t.Host == host
			}
			if !declared {
				res.Decision = Decision{Status: 403, Reason: "egress_not_declared", Steps: []Step{{Rule: "egress", Why: p.Ref + " declares neither the API nor the component named " + host + " (spec.consumesApis, spec.dependsOn); its sidecar refuses the call"}}}
				return res, nil
			}
			step := Step{Rule: "egress", Matched: true, Why: p.Ref + " declares " + host + "; its sidecar routes the call over mTLS"}
			res.Decision = eng.Decide(p, r.ID, method, path, true)
			res.Decision.Steps = append([]Step{step}, res.Decision.Steps...)
			return res, nil
		}
	}
	res.Decision = eng.Decide(p, r.ID, method, path, true)
	return res, nil
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

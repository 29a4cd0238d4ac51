package extauthz

import (
	"sort"
	"strconv"
	"strings"

	"github.com/gatehouse-dev/gatehouse/internal/pathglob"
	"github.com/gatehouse-dev/gatehouse/model"
)

// Engine is the authorization view of one model version: policies indexed
// by route id and the directory indexed for token mapping. It is built once
// per model and never modified; Check swaps engines atomically.
type Engine struct {
	version string
	routes  map[string]*routePolicy

	users     map[string]*model.User
	byEmail   map[string]*model.User
	bySubject map[string]*model.User
	groups    map[string]*model.Group
	idpGroups map[string][]string // IdP group name (lower case) -> group keys
	clients   map[string]string   // client id -> component key
}

type routePolicy struct {
	model.Policy
	route      *model.Route // what Envoy matches for it (nil: not in the model's routes)
	ownerRules []string     // "owner <ref>" for each of Policy.Owners
	owners     map[string]bool
	consumers  map[string]bool
	rules      []compiledRule
	pathRules  bool // some rule depends on the path
	// meshInbound: a sidecar's inbound route, where Check takes the mTLS
	// peer as the calling component.
	meshInbound bool
	// gql: the field policy of a GraphQL API's route (nil otherwise).
	gql *gqlPolicy
}

type compiledRule struct {
	index   int
	name    string // "rule N of <entity> gatehouse.dev/access"
	allow   map[string]bool
	methods map[string]bool // nil: any
	paths   []pathglob.Pattern
}

// NewEngine indexes a model.
func NewEngine(m *model.Model) *Engine {
	e := &Engine{
		version:   m.Version,
		routes:    make(map[string]*routePolicy, len(m.Policies)),
		users:     map[string]*model.User{},
		byEmail:   map[string]*model.User{},
		bySubject: map[string]*model.User{},
		groups:    map[string]*model.Group{},
		idpGroups: map[string][]string{},
		clients:   map[string]string{},
	}
	routes := map[string]*model.Route{}
	for i := range m.VirtualHosts {
		for j := range m.VirtualHosts[i].Routes {
			r := &m.VirtualHosts[i].Routes[j]
			routes[r.ID] = r
		}
	}
	inbound := map[string]bool{}
	for i := range m.Mesh {
		for j := range m.Mesh[i].Inbound {
			r := &m.Mesh[i].Inbound[j]
			routes[r.ID], inbound[r.ID] = r, true
		}
	}
	schemas := gqlCache{}
	for i := range m.Policies {
		p := &m.Policies[i]
		rp := &routePolicy{Policy: *p, route: routes[p.RouteID], owners: set(p.Owners), consumers: set(p.Consumers), meshInbound: inbound[p.RouteID]}
		if p.GraphQL != nil {
			rp.gql = schemas.policy(p.GraphQL)
		}
		for _, o := range p.Owners {
			rp.ownerRules = append(rp.ownerRules, "owner "+o)
		}
		for j, r := range p.Rules {
			cr := compiledRule{index: j + 1, name: "rule " + strconv.Itoa(j+1) + " of " + p.Entity + " gatehouse.dev/access", allow: set(r.Allow)}
			if len(r.Methods) > 0 {
				cr.methods = set(r.Methods)
			}
			for _, pat := range r.Paths {
				cr.paths = append(cr.paths, pathglob.MustCompile(pat)) // validated in catalogsync
			}
			if len(cr.paths) > 0 {
				rp.pathRules = true
			}
			rp.rules = append(rp.rules, cr)
		}
		e.routes[p.RouteID] = rp
	}
	for i := range m.Directory.Users {
		u := &m.Directory.Users[i]
		e.users[u.Ref] = u
		if u.Email != "" {
			e.byEmail[u.Email] = u
		}
		for _, s := range u.IdpSubjects {
			e.bySubject[s] = u
		}
	}
	for i := range m.Directory.Groups {
		g := &m.Directory.Groups[i]
		e.groups[g.Ref] = g
		for _, n := range g.IdpGroups {
			k := strings.ToLower(n)
			e.idpGroups[k] = append(e.idpGroups[k], g.Ref)
		}
	}
	for _, c := range m.Directory.Clients {
		for _, id := range c.ClientIDs {
			e.clients[id] = c.Ref
		}
	}
	return e
}

// Version is the model version the engine was built from.
func (e *Engine) Version() string { return e.version }

// Principal is the caller as the catalog knows it.
type Principal struct {
	// Kind: "user", "component", or "unknown" (a valid token that maps to
	// no catalog user and is not a machine token: denied with
	// unknown_principal, Unmatched says why).
	Kind      string   `json:"kind"`
	Ref       string   `json:"ref,omitempty"` // user or component ref key
	Subject   string   `json:"subject,omitempty"`
	Email     string   `json:"email,omitempty"`
	ClientID  string   `json:"clientId,omitempty"`
	Issuer    string   `json:"issuer,omitempty"`
	Groups    []string `json:"groups,omitempty"` // group ref keys, transitive, sorted
	Unmatched string   `json:"unmatched,omitempty"`
	// Scopes: the OAuth scopes of the token (Identity.Scopes), sorted;
	// what @requiresScopes reads. Sessions and mTLS peers carry none.
	Scopes []string `json:"scopes,omitempty"`
}

// Name is what upstreams see in x-gatehouse-user.
func (p *Principal) Name() string {
	if p.Ref != "" {
		return p.Ref
	}
	return p.Subject
}

// PrincipalFor maps a verified identity to the catalog (docs/policy.md,
// "Mapping a token to the catalog"):
//   - a client-credentials token (the issuer's machine_token_claims hold)
//     is the Component whose gatehouse.dev/client-id is its client, and
//     nothing else: never a user, and no user's token is ever a component;
//   - otherwise a user: by sub when it is a user entity ref (Backstage
//     tokens), else by gatehouse.dev/idp-subject, else by
//     spec.profile.email when the email is verified (email_verified true,
//     or the issuer's trust_email);
//   - groups: the user's catalog groups (transitively) plus, where the
//     issuer maps groups (groups_claim), its IdP groups mapped to Group
//     entities (by gatehouse.dev/idp-group or by name in the issuer's
//     namespace), with their ancestors.
//
// Anything else is "unknown", with the reason in Unmatched.
func (e *Engine) PrincipalFor(id *Identity) *Principal {
	p := &Principal{Kind: "unknown", Subject: id.Subject, Email: id.Email, ClientID: id.ClientID, Issuer: id.Issuer, Scopes: id.Scopes}
	if id.Machine {
		if ref := e.clients[id.ClientID]; ref != "" {
			p.Kind, p.Ref = "component", ref
		} else {
			p.Unmatched = "a client-credentials token of client " + clip(id.ClientID) + ", which no Component declares in gatehouse.dev/client-id"
		}
		return p
	}
	u := e.userFor(id, p)
	if u == nil {
		return p
	}
	p.Kind, p.Ref = "user", u.Ref
	if len(id.Groups) == 0 {
		p.Groups = u.Groups // sorted and unique in the model; never written to
		return p
	}
	groups := map[string]bool{}
	for _, g := range u.Groups {
		groups[g] = true
	}
	for _, name := range id.Groups {
		for _, gk := range e.groupsNamed(name, id.GroupsNamespace) {
			if g := e.groups[gk]; g != nil {
				for _, a := range g.Groups {
					groups[a] = true
				}
			}
		}
	}
	p.Groups = keys(groups)
	return p
}

// userFor finds the catalog User of a (non-machine) token, or says in
// p.Unmatched why there is none.
func (e *Engine) userFor(id *Identity, p *Principal) *model.User {
	if id.EntityRefSubject && strings.HasPrefix(strings.ToLower(id.Subject), "user:") {
		if u := e.users[strings.ToLower(id.Subject)]; u != nil {
			return u
		}
	}
	if u := e.bySubject[id.Subject]; u != nil && id.Subject != "" {
		return u
	}
	var why []string
	switch {
	case id.Email == "":
		why = append(why, "sub "+clip(id.Subject)+" is no User's gatehouse.dev/idp-subject and the token has no email")
	case !id.EmailVerified:
		why = append(why, id.EmailWhyNot())
	default:
		if u := e.byEmail[strings.ToLower(id.Email)]; u != nil {
			return u
		}
		why = append(why, "no User has spec.profile.email "+clip(id.Email)+" (nor gatehouse.dev/idp-subject "+clip(id.Subject)+")")
	}
	if id.ClientID != "" && e.clients[id.ClientID] != "" {
		// A person signing in at a component's OAuth client never acts as
		// that component.
		why = append(why, "client "+clip(id.ClientID)+" is "+e.clients[id.ClientID]+"'s, but "+id.NotMachine())
	}
	p.Unmatched = strings.Join(why, "; ")
	return nil
}

func clip(s string) string { return clipStr(s, 100) }

func (e *Engine) groupsNamed(name, namespace string) []string {
	n := strings.ToLower(strings.TrimSpace(name))
	if n == "" {
		return nil
	}
	if gs, ok := e.idpGroups[n]; ok {
		return gs
	}
	if strings.HasPrefix(n, "group:") {
		if _, ok := e.groups[n]; ok {
			return []string{n}
		}
		return nil
	}
	if namespace == "" {
		namespace = "default"
	}
	if k := "group:" + strings.ToLower(namespace) + "/" + n; e.groups[k] != nil {
		return []string{k}
	}
	return nil
}

// Route returns the policy of a route id, or nil.
func (e *Engine) Route(id string) *model.Policy {
	if rp := e.routes[id]; rp != nil {
		return &rp.Policy
	}
	return nil
}

// Decide evaluates a route's policy for one principal (nil: no token),
// through Evaluate; for callers that hold a route id, a method and a
// normalised path rather than a Request.
func (e *Engine) Decide(p *Principal, routeID, method, path string, explain bool) Decision {
	rp := e.routes[routeID]
	if rp == nil {
		d := Decision{Status: 404, Reason: "unknown_route"}
		if explain {
			d.Steps = []Step{{Rule: "route", Why: "route " + routeID + " is not in model " + e.version}}
		}
		return d
	}
	return e.Evaluate(&Request{RouteID: routeID, policy: rp, Method: method, Path: path}, &Subject{User: p}, explain)
}

func matchAny(ps []pathglob.Pattern, path string) bool {
	for _, p := range ps {
		if p.Match(path) {
			return true
		}
	}
	return false
}

func set(xs []string) map[string]bool {
	m := make(map[string]bool, len(xs))
	for _, x := range xs {
		m[x] = true
	}
	return m
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func contains(sorted []string, x string) bool {
	i := sort.SearchStrings(sorted, x)
	return i < len(sorted) && sorted[i] == x
}

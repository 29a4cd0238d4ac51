package model

import (
	"sort"
	"strings"

	cs "github.com/gatehouse-dev/gatehouse/catalogsync"
	"github.com/gatehouse-dev/gatehouse/internal/pathglob"
)

// Policy is who may call one route, derived from the catalog. Evaluation
// order is documented in docs/policy.md: public, owners, consumers, rules;
// everything else is denied.
type Policy struct {
	RouteID string `json:"routeId" yaml:"routeId"`
	Entity  string `json:"entity" yaml:"entity"`
	API     string `json:"api,omitempty" yaml:"api,omitempty"`
	System  string `json:"system,omitempty" yaml:"system,omitempty"`
	// Owners: group or user refs whose members may call everything.
	Owners []string `json:"owners,omitempty" yaml:"owners,omitempty"`
	// Consumers: components that declare (consumesApis) an API served here.
	Consumers []string     `json:"consumers,omitempty" yaml:"consumers,omitempty"`
	Rules     []AccessRule `json:"rules,omitempty" yaml:"rules,omitempty"`
	Public    bool         `json:"public,omitempty" yaml:"public,omitempty"`
	// ForwardToken: the caller's Authorization header reaches the upstream.
	ForwardToken bool `json:"forwardToken,omitempty" yaml:"forwardToken,omitempty"`
}

// AccessRule is one explicit rule of a route's policy (an entry of the
// entity's gatehouse.dev/access annotation, validated by catalogsync).
type AccessRule struct {
	Allow   []string `json:"allow" yaml:"allow"`                         // ref keys: user:, group:, component:
	Methods []string `json:"methods,omitempty" yaml:"methods,omitempty"` // upper case; empty = any
	Paths   []string `json:"paths,omitempty" yaml:"paths,omitempty"`     // pathglob patterns; empty = any
}

// Directory is the catalog's identities, for mapping a token to a principal.
type Directory struct {
	Users   []User   `json:"users,omitempty" yaml:"users,omitempty"`
	Groups  []Group  `json:"groups,omitempty" yaml:"groups,omitempty"`
	Clients []Client `json:"clients,omitempty" yaml:"clients,omitempty"`
}

// User is a catalog User.
type User struct {
	Ref         string   `json:"ref" yaml:"ref"`
	Email       string   `json:"email,omitempty" yaml:"email,omitempty"` // lower case
	IdpSubjects []string `json:"idpSubjects,omitempty" yaml:"idpSubjects,omitempty"`
	Groups      []string `json:"groups,omitempty" yaml:"groups,omitempty"` // transitive
}

// Group is a catalog Group.
type Group struct {
	Ref       string   `json:"ref" yaml:"ref"`
	IdpGroups []string `json:"idpGroups,omitempty" yaml:"idpGroups,omitempty"` // IdP group names mapped to it (besides its own name)
	Groups    []string `json:"groups" yaml:"groups"`                           // itself and its ancestors
}

// Client is a Component that authenticates with its own OAuth client.
type Client struct {
	Ref       string   `json:"ref" yaml:"ref"`
	ClientIDs []string `json:"clientIds" yaml:"clientIds"`
}

// compileAuthz derives a policy for every route and the directory.
func compileAuthz(snap *cs.Snapshot, m *Model) cs.Problems {
	var problems cs.Problems
	for _, vh := range m.VirtualHosts {
		for _, r := range vh.Routes {
			m.Policies = append(m.Policies, policyFor(snap, r))
		}
	}
	for _, svc := range m.Mesh {
		for _, r := range svc.Inbound {
			m.Policies = append(m.Policies, policyFor(snap, r))
		}
	}
	sort.Slice(m.Policies, func(i, j int) bool { return m.Policies[i].RouteID < m.Policies[j].RouteID })

	// Identity keys must be unambiguous: a key claimed by two entities maps
	// to neither (fail closed) and is reported.
	claimed := map[string][]*cs.Entity{}
	add := func(k string, e *cs.Entity) { claimed[k] = append(claimed[k], e) }
	for _, u := range snap.ByKind(cs.KindUser) {
		if u.Spec.Profile != nil && u.Spec.Profile.Email != "" {
			add("email\x00"+strings.ToLower(u.Spec.Profile.Email), u)
		}
		if u.Access != nil {
			for _, s := range u.Access.IdpSubjects {
				add("subject\x00"+s, u)
			}
		}
	}
	for _, c := range snap.ByKind(cs.KindComponent) {
		if c.Access != nil {
			for _, id := range c.Access.ClientIDs {
				add("client\x00"+id, c)
			}
		}
	}
	ambiguous := map[string]bool{}
	for _, k := range sortedKeys(claimed) {
		es := claimed[k]
		if len(es) < 2 {
			continue
		}
		ambiguous[k] = true
		kind, val, _ := strings.Cut(k, "\x00")
		field := map[string]string{"email": "spec.profile.email", "subject": "metadata.annotations[" + cs.AnnIdpSubject + "]", "client": "metadata.annotations[" + cs.AnnClientID + "]"}[kind]
		var refs []string
		for _, e := range es {
			refs = append(refs, e.Ref().String())
		}
		for _, e := range es {
			problems = append(problems, cs.Problem{Severity: cs.SeverityError, Source: e.Origin.Source, File: e.Origin.File, Line: e.Origin.Line,
				Entity: e.Ref().String(), Field: field,
				Message: kind + " " + quote(val) + " is claimed by " + strings.Join(refs, ", ") + "; tokens with it map to none of them",
				Fix:     "give each entity its own value"})
		}
	}
	for _, u := range snap.ByKind(cs.KindUser) {
		du := User{Ref: u.Ref().Key(), Groups: snap.GroupsOf(u.Ref().Key())}
		if u.Spec.Profile != nil && u.Spec.Profile.Email != "" && !ambiguous["email\x00"+strings.ToLower(u.Spec.Profile.Email)] {
			du.Email = strings.ToLower(u.Spec.Profile.Email)
		}
		if u.Access != nil {
			for _, s := range u.Access.IdpSubjects {
				if !ambiguous["subject\x00"+s] {
					du.IdpSubjects = append(du.IdpSubjects, s)
				}
			}
		}
		m.Directory.Users = append(m.Directory.Users, du)
	}
	for _, g := range snap.ByKind(cs.KindGroup) {
		dg := Group{Ref: g.Ref().Key(), Groups: snap.GroupsOf(g.Ref().Key())}
		if g.Access != nil {
			dg.IdpGroups = g.Access.IdpGroups
		}
		m.Directory.Groups = append(m.Directory.Groups, dg)
	}
	for _, c := range snap.ByKind(cs.KindComponent) {
		if c.Access == nil || len(c.Access.ClientIDs) == 0 {
			continue
		}
		dc := Client{Ref: c.Ref().Key()}
		for _, id := range c.Access.ClientIDs {
			if !ambiguous["client\x00"+id] {
				dc.ClientIDs = append(dc.ClientIDs, id)
			}
		}
		if len(dc.ClientIDs) > 0 {
			m.Directory.Clients = append(m.Directory.Clients, dc)
		}
	}
	return problems
}

func policyFor(snap *cs.Snapshot, r Route) Policy {
	p := Policy{RouteID: r.ID, Entity: r.Entity, API: r.API, Public: r.Public}
	e := snap.Get(r.Entity)
	if e == nil {
		return p // cannot happen: routes come from entities in the snapshot
	}
	owners := map[string]bool{}
	for _, o := range e.RelationTargets(cs.RelOwnedBy) {
		owners[o] = true
	}
	if s := e.RelationTargets(cs.RelPartOf); len(s) > 0 {
		for _, t := range s {
			if strings.HasPrefix(t, "system:") {
				p.System = t
			}
		}
	}
	consumers := map[string]bool{}
	addConsumers := func(api *cs.Entity) {
		for _, c := range api.RelationTargets(cs.RelAPIConsumedBy) {
			if strings.HasPrefix(c, "component:") {
				consumers[c] = true
			}
		}
	}
	if r.API != "" {
		if api := snap.Get(r.API); api != nil {
			for _, o := range api.RelationTargets(cs.RelOwnedBy) {
				owners[o] = true
			}
			addConsumers(api)
		}
	} else {
		// An API without a path prefix of its own covers its provider's
		// whole route.
		for _, apiKey := range e.RelationTargets(cs.RelProvidesAPI) {
			if api := snap.Get(apiKey); api != nil && (api.Routing == nil || api.Routing.PathPrefix == "") {
				addConsumers(api)
			}
		}
		// A component that declares spec.dependsOn this one consumes all of it.
		for _, c := range e.RelationTargets(cs.RelDependencyOf) {
			if strings.HasPrefix(c, "component:") {
				consumers[c] = true
			}
		}
	}
	p.Owners = sortedKeys(owners)
	p.Consumers = sortedKeys(consumers)
	if e.Access != nil {
		p.Rules = accessRules(e.Access.Rules)
		p.ForwardToken = e.Access.ForwardToken
	}
	return p
}

// accessRules copies the catalog's rules into the model's own type (nil
// stays nil; the slices inside are shared, neither side modifies them).
func accessRules(rs []cs.AccessRule) []AccessRule {
	if rs == nil {
		return nil
	}
	out := make([]AccessRule, len(rs))
	for i, r := range rs {
		out[i] = AccessRule(r)
	}
	return out
}

// publicRoutes returns the public-path routes of a routed entity on one
// host, and problems for public paths outside the entity's prefix.
func publicRoutes(e *cs.Entity, base Route) ([]Route, cs.Problems) {
	if e.Access == nil {
		return nil, nil
	}
	var out []Route
	var ps cs.Problems
	for _, p := range e.Access.PublicPaths {
		pat := pathglob.MustCompile(p) // validated in catalogsync
		r := base
		r.Public, r.API = true, ""
		r.ID = base.ID + "#public:" + p
		if pre, ok := pat.Prefix(); ok {
			r.Prefix = pre
			if pre == "" {
				r.Prefix = "/"
			}
		} else {
			r.Prefix, r.Path = "", strings.TrimSuffix(p, "/")
			if r.Path == "" {
				r.Path = "/"
			}
		}
		target := r.Prefix + r.Path
		if !under(target, base.Prefix) {
			ps = append(ps, cs.Problem{Severity: cs.SeverityError, Source: e.Origin.Source, File: e.Origin.File, Line: e.Origin.Line,
				Entity: e.Ref().String(), Field: "metadata.annotations[" + cs.AnnPublicPaths + "]",
				Message: "public path " + p + " is outside the route prefix " + base.Prefix + "; it is not served",
				Fix:     "list paths under " + base.Prefix})
			continue
		}
		out = append(out, r)
	}
	return out, ps
}

func quote(s string) string { return "\"" + s + "\"" }

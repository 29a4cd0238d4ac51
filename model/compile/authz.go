package compile

import (
	"sort"
	"strings"

	cs "github.com/gatehouse-dev/gatehouse/catalogsync"
	"github.com/gatehouse-dev/gatehouse/internal/pathglob"
	"github.com/gatehouse-dev/gatehouse/model"
)

// compileAuthz derives a policy for every route and the directory.
func compileAuthz(snap *cs.Snapshot, m *model.Model) cs.Problems {
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
	ambiguous, problems := ambiguousIdentities(snap)
	m.Directory = directory(snap, ambiguous)
	return problems
}

// ambiguousIdentities: identity keys must be unambiguous. A key (an email,
// an IdP subject, an OAuth client id) claimed by two entities maps to
// neither (fail closed) and is reported on each.
func ambiguousIdentities(snap *cs.Snapshot) (map[string]bool, cs.Problems) {
	var problems cs.Problems
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
	return ambiguous, problems
}

// directory is the catalog's users, groups and OAuth clients, without the
// ambiguous identity keys.
func directory(snap *cs.Snapshot, ambiguous map[string]bool) model.Directory {
	var d model.Directory
	for _, u := range snap.ByKind(cs.KindUser) {
		du := model.User{Ref: u.Ref().Key(), Groups: snap.GroupsOf(u.Ref().Key())}
		if u.Spec.Profile != nil && u.Spec.Profile.Email != "" && !ambiguous["email\x00"+strings.ToLower(u.Spec.Profile.Email)] {
			du.Email = strings.ToLower(u.Spec.Profile.Email)
		}
		if u.Access != nil {
			for _, s := range u.Access.IdpSubjects {
				if !ambiguous["subject\x00"+s] {
					du.IdpSubjects = append(du.IdpSubjects, s)
				}
			}
			du.SessionsNotBefore = u.Access.SessionsNotBefore
		}
		d.Users = append(d.Users, du)
	}
	for _, g := range snap.ByKind(cs.KindGroup) {
		dg := model.Group{Ref: g.Ref().Key(), Groups: snap.GroupsOf(g.Ref().Key())}
		if g.Access != nil {
			dg.IdpGroups = g.Access.IdpGroups
		}
		d.Groups = append(d.Groups, dg)
	}
	for _, c := range snap.ByKind(cs.KindComponent) {
		if c.Access == nil || len(c.Access.ClientIDs) == 0 {
			continue
		}
		dc := model.Client{Ref: c.Ref().Key()}
		for _, id := range c.Access.ClientIDs {
			if !ambiguous["client\x00"+id] {
				dc.ClientIDs = append(dc.ClientIDs, id)
			}
		}
		if len(dc.ClientIDs) > 0 {
			d.Clients = append(d.Clients, dc)
		}
		if c.Agent != nil {
			d.Agents = append(d.Agents, model.Agent{Ref: dc.Ref, Methods: c.Agent.Methods, GraphQL: c.Agent.GraphQL, MCPTools: c.Agent.MCPTools})
		}
	}
	return d
}

func policyFor(snap *cs.Snapshot, r model.Route) model.Policy {
	p := model.Policy{RouteID: r.ID, Entity: r.Entity, API: r.API, Public: r.Public}
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
			if !r.Public {
				p.GraphQL = graphqlPolicy(api)
				p.MCP = mcpPolicy(api, routePrefix(r))
			}
			for _, o := range api.RelationTargets(cs.RelOwnedBy) {
				owners[o] = true
			}
			addConsumers(api)
		}
	} else {
		p.Unavailable = brokenGraphQLAPI(snap, e)
		if !r.Public {
			p.MCP = mcpPolicy(unscopedMCP(snap, e), routePrefix(r))
		}
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
		p.AssertionBearer = e.Access.AssertionBearer
	}
	return p
}

// accessRules copies the catalog's rules into the model's own type (nil
// stays nil; the slices inside are shared, neither side modifies them).
func accessRules(rs []cs.AccessRule) []model.AccessRule {
	if rs == nil {
		return nil
	}
	out := make([]model.AccessRule, len(rs))
	for i, r := range rs {
		out[i] = model.AccessRule(r)
	}
	return out
}

// publicRoutes returns the public-path routes of a routed entity on one
// host, and problems for public paths outside the entity's prefix.
func publicRoutes(e *cs.Entity, base model.Route) ([]model.Route, cs.Problems) {
	if e.Access == nil {
		return nil, nil
	}
	var out []model.Route
	var ps cs.Problems
	for _, p := range e.Access.PublicPaths {
		pat := pathglob.MustCompile(p) // validated in catalogsync
		r := base
		r.Public, r.API, r.ForwardToken = true, "", e.Access.ForwardToken
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

// brokenGraphQLAPI names a GraphQL API that e declares it provides but
// that is not in the catalog because its schema does not load and no
// earlier version did (a new API, or a restart with the broken file): its
// own route and field rules are missing, so e's routes must not serve its
// path by the looser rules of the whole component. Fail closed: e serves
// nothing until the schema is fixed ("" when there is none).
func brokenGraphQLAPI(snap *cs.Snapshot, e *cs.Entity) string {
	for _, s := range e.Spec.ProvidesAPIs {
		ref, err := cs.ParseRef(s, cs.KindAPI, e.Ref().Namespace)
		if err != nil || snap.Get(ref.Key()) != nil {
			continue
		}
		for _, p := range snap.Problems {
			if p.Severity == cs.SeverityError && strings.EqualFold(p.Entity, ref.String()) && p.Field == "spec.definition" {
				return ref.String() + " provided here has no GraphQL schema that loads (" + p.Message + "); " + e.Ref().String() + " serves nothing until it is fixed"
			}
		}
	}
	return ""
}

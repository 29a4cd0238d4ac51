package extauthz

import (
	"sort"
	"strings"
)

// ActorFor maps a delegated token's current actor to the catalog: it must
// be an AI agent (a Component with spec.type ai-agent), named by the ref
// gatehouse's exchange put in act.sub, or by its client id
// (act.client_id) through gatehouse.dev/client-id for an IdP's token.
// Anything else is "unknown" (403 unknown_principal), with the reason in
// Unmatched: an agent removed from the catalog, or no longer an agent,
// acts for nobody.
func (e *Engine) ActorFor(a *Actor) *Principal {
	p := &Principal{Kind: "unknown", Subject: a.Subject, ClientID: a.ClientID, Issuer: a.Issuer}
	ref := a.Ref
	if ref == "" && a.ClientID != "" {
		ref = e.clients[a.ClientID]
	}
	switch {
	case ref == "" && a.ClientID == "":
		p.Unmatched = "the actor (act.sub " + clip(a.Subject) + ") names no client, so it maps to no catalog agent"
	case ref == "":
		p.Unmatched = "the actor's client " + clip(a.ClientID) + " is no Component's gatehouse.dev/client-id"
	case e.agents[ref] == nil:
		p.Unmatched = "the actor " + ref + " is not an AI agent in the catalog (a Component with spec.type ai-agent)"
	default:
		p.Kind, p.Ref, p.Agent = "component", ref, e.agents[ref]
	}
	return p
}

// Agent is the catalog agent with this client id (nil: none).
func (e *Engine) Agent(clientID string) (ref string, ok bool) {
	ref = e.clients[clientID]
	return ref, ref != "" && e.agents[ref] != nil
}

// AgentReach says how an agent may call the entity ref (a Component or an
// API) at all: the first declared consumption or access rule that names
// it on one of the entity's routes, "" when none does. The token exchange
// issues tokens only for entities an agent may reach; each request is
// still decided by Check.
func (e *Engine) AgentReach(agent, entity string) string {
	ids := make([]string, 0, 4)
	for id, rp := range e.routes {
		if !rp.Public && (rp.Entity == entity || rp.API == entity) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids) // the same answer on every replica
	for _, id := range ids {
		rp := e.routes[id]
		if rp.consumers[agent] {
			return "consumer " + agent + " of route " + id
		}
		for _, r := range rp.rules {
			if r.allow[agent] {
				return r.name
			}
		}
	}
	return ""
}

// EntityKnown reports whether the model routes the entity ref (a
// Component, or an API with a route of its own or served by one).
func (e *Engine) EntityKnown(entity string) bool {
	for _, rp := range e.routes {
		if rp.Entity == entity || rp.API == entity {
			return true
		}
	}
	return false
}

// audienceOf: a delegated token is for one entity (its aud); on a route it
// is good when the route is that entity's, or an API's route that entity
// provides, or the route of that API.
func audienceFits(aud string, rp *routePolicy) bool {
	return strings.EqualFold(aud, rp.Entity) || (rp.API != "" && strings.EqualFold(aud, rp.API))
}

// delegatedSubject adds a delegated token's actor to the subject: the
// current actor is evaluated, earlier ones are audited; gatehouse's own
// tokens are for one audience and carry the narrowed scope, which both
// the person and the agent act under.
func delegatedSubject(sub *Subject, eng *Engine, id *Identity) {
	sub.Actor = eng.ActorFor(id.Actor)
	sub.EarlierActors = id.Actor.Earlier
	if id.Delegated {
		sub.Audience = id.Audience
	}
	// The token's scope binds both: a scope-guarded field needs it in
	// the token, whoever of the two is evaluated.
	sub.Actor.Scopes = sub.User.Scopes
}

package extauthz

import "strings"

// Subject is the chain of principals a request carries, outermost first:
// the verified mTLS peer (a component, on a sidecar's inbound route), the
// actor (an agent acting for someone; not yet issued, always nil) and the
// user (from a token). Every principal present must be allowed; the
// identity asserted upstream, the audit record, the identity headers and
// the decision cache key are all derived from it here, never assembled by
// their callers.
type Subject struct {
	Peer  *Principal `json:"peer,omitempty"`
	Actor *Principal `json:"actor,omitempty"`
	User  *Principal `json:"user,omitempty"`
	// Auth is how the user was identified: AuthBearer, or a session
	// ("oidc-session"); the audit record's auth.
	Auth string `json:"auth,omitempty"`
}

// AuthBearer: the user presented a bearer token (header or credential
// cookie).
const AuthBearer = "bearer"

// Roles in the chain, in the order they are evaluated.
const (
	RolePeer  = "peer"
	RoleActor = "actor"
	RoleUser  = "user"
)

// rolePrincipal is one link of the chain.
type rolePrincipal struct {
	role string
	p    *Principal
}

// chain is the subject's principals in the order they are evaluated,
// outermost first; absent ones are nil.
func (s *Subject) chain() [3]rolePrincipal {
	return [3]rolePrincipal{{RolePeer, s.Peer}, {RoleActor, s.Actor}, {RoleUser, s.User}}
}

// Empty: no principal (an anonymous request).
func (s *Subject) Empty() bool { return s.Peer == nil && s.Actor == nil && s.User == nil }

// Principal is who the request is for: the user when there is one, else
// the peer; what x-gatehouse-user, the assertion's sub and the audit's
// principal name.
func (s *Subject) Principal() *Principal {
	switch {
	case s.User != nil:
		return s.User
	case s.Actor != nil:
		return s.Actor
	}
	return s.Peer
}

// assertion is the identity claims upstreams receive for this subject on
// a route of entity.
func (s *Subject) assertion(entity, route string) Assertion {
	p := s.Principal()
	a := Assertion{Subject: p.Name(), Audience: entity, Kind: p.Kind, Groups: p.Groups, Client: p.ClientID, Route: route, Email: p.Email}
	if s.Peer != nil {
		a.Peer = s.Peer.Ref
	}
	return a
}

// fill writes the subject into an audit record.
func (s *Subject) fill(rec *AuditRecord) {
	if s.Peer != nil {
		rec.Peer = s.Peer.Ref
	}
	rec.Auth = s.Auth
	if p := s.Principal(); p != nil {
		rec.Principal, rec.Kind, rec.Groups, rec.ClientID, rec.Issuer = p.Name(), p.Kind, p.Groups, p.ClientID, p.Issuer
		rec.Scopes = p.Scopes
	}
}

// credentials are what a Subject is made from before anything is
// verified: the raw token and the mTLS peer's component. Two requests with
// the same credentials have the same Subject, so the decision cache is
// keyed by them (and never holds a token: only its hash).
type credentials struct {
	token   string
	session string // the sealed session cookie, when there is no token
	peer    string // component ref of the verified mTLS peer, or ""
}

// key is the decision cache key of these credentials for one request: the
// token's hash, the route, the operation (inspector) and the peer. The
// token's scopes (which @requiresScopes decides on) are the token's, so
// its hash keys them too; a session or a peer carries none.
func (c credentials) key(req *Request) string {
	kind, cred := byte(0), c.token
	if cred == "" && c.session != "" {
		kind, cred = 's', c.session
	}
	k := credentialKey(kind, cred, req.RouteID, req.Method, req.Path, req.policy.pathRules)
	if req.policy.gql != nil {
		// The operations are the document's: the key holds a hash of the
		// URL's query and the body (document, operation name, variables).
		k += "\x00gql\x00" + req.documentKey()
	}
	if c.peer != "" {
		k += "\x00peer\x00" + c.peer
	}
	if req.proc != nil {
		// Decided for the ext_proc server, whose filter may remove what
		// Check would refuse (GraphQL filter mode): never the same answer.
		k += "\x00xp"
	}
	return k
}

// rule names which principal each rule allowed, as the audit shows it
// ("peer consumer …; user owner …"), or the one rule when there is one.
func joinRules(roles, rules []string) string {
	if len(rules) == 1 {
		return rules[0]
	}
	parts := make([]string, len(rules))
	for i := range rules {
		parts[i] = roles[i] + " " + rules[i]
	}
	return strings.Join(parts, "; ")
}

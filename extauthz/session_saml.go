package extauthz

import (
	"strings"
	"time"
)

// MethodSAML is Session.Method of a SAML 2.0 sign-in (audit: saml-session).
const MethodSAML = "saml"

// SAMLIssuer is what a SAML IdP's settings (signin.saml[]) say about the
// sessions signed in through it. A SAML assertion carries no
// email_verified, so its email counts only with TrustEmail, and its
// groups only with Groups (the IdP's groups attribute is configured),
// filtered by GroupsPrefix: the rules of an OIDC issuer's claims. The
// session cookie holds what the IdP asserted (NameID, email, groups); the
// settings are applied when a request is decided, so a changed setting
// (or a removed IdP) applies to sessions already signed in.
type SAMLIssuer struct {
	// Name is signin.saml[].name (Session.IssuerName).
	Name string
	// EntityID, when set, must be the session's Issuer (the IdP's entity
	// ID it signed in at).
	EntityID        string
	TrustEmail      bool
	Groups          bool
	GroupsPrefix    string
	GroupsNamespace string
}

// MaxSessionGroups bounds the IdP groups a session cookie carries (a
// cookie holds 4 KB).
const MaxSessionGroups = 64

// samlIdentity is a SAML session's user as PrincipalFor reads it, under
// the IdP's current settings; why says why there is none.
func (s *Session) samlIdentity(idps map[string]SAMLIssuer) (id *Identity, why string) {
	c, ok := idps[s.IssuerName]
	if !ok {
		return nil, "SAML identity provider " + clip(s.IssuerName) + " of this session is no longer configured"
	}
	if c.EntityID != "" && c.EntityID != s.Issuer {
		return nil, "this session was signed in at " + clip(s.Issuer) + ", not at " + clip(c.EntityID) + " (signin.saml " + c.Name + ")"
	}
	id = &Identity{Issuer: s.Issuer, IssuerName: c.Name, Subject: s.Subject, Email: s.Email, Expiry: time.Unix(s.Expiry, 0)}
	if s.Email != "" && c.TrustEmail {
		id.EmailVerified, id.EmailTrust = true, "trust_email"
	}
	if c.Groups {
		for _, g := range s.Groups {
			if c.GroupsPrefix != "" {
				rest, ok := strings.CutPrefix(g, c.GroupsPrefix)
				if !ok || rest == "" {
					continue
				}
				g = rest
			}
			id.Groups = append(id.Groups, g)
		}
		id.GroupsNamespace = c.GroupsNamespace
		if id.GroupsNamespace == "" {
			id.GroupsNamespace = "default"
		}
	}
	return id, ""
}

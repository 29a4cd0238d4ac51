package signin

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/crewjam/saml"
	"github.com/crewjam/saml/samlsp"
	"github.com/jonboulle/clockwork"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/gatehouse-dev/gatehouse/extauthz"
	"github.com/gatehouse-dev/gatehouse/model"
)

// SAML 2.0 service-provider sign-in (SP-initiated, HTTP-Redirect binding
// out, HTTP-POST binding back), with github.com/crewjam/saml for the
// protocol and XML signatures. It ends in the same extauthz.Session as
// OIDC, with Method "saml".
//
// What makes a response count (crewjam checks all but the binding and
// RelayState, which are ours):
//   - the Response or the Assertion is signed by a certificate of the
//     IdP's metadata (RSA/ECDSA, SHA-1 refused), and the assertion is
//     read from what the signature covers, so a wrapped (XSW) document
//     whose signed part is elsewhere is refused;
//   - issuer = the IdP's entity ID; audience = signin.saml_sp.entity_id;
//     Destination and the bearer Recipient = this host's ACS URL;
//     IssueInstant, NotBefore and NotOnOrAfter within samlClockSkew;
//   - InResponseTo = the request id sealed in this browser's binding
//     cookie (one sign-in, ten minutes, cleared when the ACS is reached);
//     the assertion's ID is consumed in a replay cache until the
//     assertion can no longer be accepted.

// SAML paths under model.SignInPrefix (routed to this handler like the
// others).
const (
	SAMLPrefix       = model.SignInPrefix + "saml/"
	SAMLMetadataPath = SAMLPrefix + "metadata"
	SAMLACSPath      = SAMLPrefix + "acs"
	SAMLLoginPath    = SAMLPrefix + "login"
	SAMLSLOPath      = SAMLPrefix + "slo"
)

// PurposeSAMLBinding seals the SAML sign-in binding: never opens as an
// OIDC binding or a session.
const PurposeSAMLBinding = "gatehouse-saml-binding-v1"

// samlClockSkew is the leeway for the IdP's clock (as an OIDC issuer's
// default clock_skew). crewjam's is a package setting (180 s by default).
const samlClockSkew = 30 * time.Second

func init() { saml.MaxClockSkew = samlClockSkew }

// inResponseToKey prefixes a spent request id in the replay cache (an
// assertion's ID, an xs:ID, has no colon).
const inResponseToKey = "InResponseTo:"

// maxSAMLResponse bounds a posted SAMLResponse (base64).
const maxSAMLResponse = 256 << 10

// DefaultEmailAttributes are the attribute names (Name or FriendlyName)
// read as the email when email_attribute is not set: Keycloak's and
// Okta's "email", LDAP's mail (name and OID), Entra ID's claim URI.
var DefaultEmailAttributes = []string{"email", "mail", "emailAddress", "urn:oid:0.9.2342.19200300.100.1.3",
	"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"}

// SAMLConfig is one SAML IdP (signin.saml[]).
type SAMLConfig struct {
	Name string
	// MetadataFile or MetadataURL: the IdP's metadata (a URL is fetched at
	// start, again while it fails and every hour).
	MetadataFile, MetadataURL string
	// EntityID picks the IdP in an aggregate and pins it.
	EntityID string
	// NameIDFormat: the URI asked for (empty: unspecified).
	NameIDFormat string
	// EmailAttribute: empty for DefaultEmailAttributes.
	EmailAttribute string
	// GroupsAttribute: empty, no groups are kept; GroupsPrefix: only
	// groups with it are kept in the session (Check applies both again).
	GroupsAttribute, GroupsPrefix string
}

// SAMLSPConfig is gatehouse as a SAML service provider.
type SAMLSPConfig struct {
	EntityID    string
	Key         crypto.Signer
	Certificate *x509.Certificate
}

// LoadSAMLKeyPair reads the SP's PEM certificate and key.
func LoadSAMLKeyPair(certFile, keyFile string) (crypto.Signer, *x509.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, nil, err
	}
	return parseKeyPair(certPEM, keyPEM)
}

// samlIdP is one IdP with its metadata, loaded lazily from a URL.
type samlIdP struct {
	cfg    SAMLConfig
	client *http.Client

	mu      sync.Mutex
	md      *saml.EntityDescriptor
	fetched time.Time
	lastTry time.Time
	lastErr error
}

// samlMetadataMaxAge: metadata from a URL is fetched again after this
// (the IdP's signing certificate may have rolled).
const samlMetadataMaxAge = time.Hour

// metadata returns the IdP's metadata, fetching a URL at most every 5 s
// after a failure (the last good metadata is kept meanwhile).
func (p *samlIdP) metadata(ctx context.Context) (*saml.EntityDescriptor, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.md != nil && (p.cfg.MetadataURL == "" || time.Since(p.fetched) < samlMetadataMaxAge) {
		return p.md, nil
	}
	if p.lastErr != nil && time.Since(p.lastTry) < 5*time.Second {
		if p.md != nil {
			return p.md, nil
		}
		return nil, p.lastErr
	}
	p.lastTry = time.Now()
	md, err := p.load(ctx)
	if err != nil {
		p.lastErr = fmt.Errorf("SAML IdP %s metadata: %w", p.cfg.Name, err)
		if p.md != nil {
			return p.md, nil
		}
		return nil, p.lastErr
	}
	p.md, p.fetched, p.lastErr = md, time.Now(), nil
	return md, nil
}

func (p *samlIdP) load(ctx context.Context) (*saml.EntityDescriptor, error) {
	var data []byte
	if p.cfg.MetadataFile != "" {
		b, err := os.ReadFile(p.cfg.MetadataFile)
		if err != nil {
			return nil, err
		}
		data = b
	} else {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.cfg.MetadataURL, nil)
		if err != nil {
			return nil, err
		}
		resp, err := p.client.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET %s: %s", p.cfg.MetadataURL, resp.Status)
		}
		data, err = io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		if err != nil {
			return nil, err
		}
	}
	var md *saml.EntityDescriptor
	var err error
	if p.cfg.EntityID != "" {
		md, err = samlsp.ParseMetadataByEntityID(data, p.cfg.EntityID)
	} else {
		md, err = samlsp.ParseMetadata(data)
	}
	if err != nil {
		return nil, err
	}
	if len(md.IDPSSODescriptors) == 0 {
		return nil, fmt.Errorf("entity %q has no IDPSSODescriptor: not an IdP's metadata", md.EntityID)
	}
	return md, nil
}

// samlBinding is the sealed content of the binding cookie of a SAML
// sign-in: the AuthnRequest's id the answer must carry in InResponseTo.
type samlBinding struct {
	IdP       string `json:"i"`
	RequestID string `json:"q"`
	Relay     string `json:"rs"`
	Return    string `json:"r"`
	Expiry    int64  `json:"e"`
}

// samlState is the handler's SAML part.
type samlState struct {
	sp     SAMLSPConfig
	idps   map[string]*samlIdP
	order  []string
	replay *samlsp.MemoryReplayCache
}

func newSAML(cfg Config) (*samlState, error) {
	if len(cfg.SAML) == 0 {
		return nil, nil
	}
	if cfg.SAMLSP.EntityID == "" || cfg.SAMLSP.Key == nil || cfg.SAMLSP.Certificate == nil {
		return nil, errors.New("SAML sign-in needs the SP's entity ID, key and certificate")
	}
	s := &samlState{sp: cfg.SAMLSP, idps: map[string]*samlIdP{}, replay: samlsp.NewMemoryReplayCache(100_000)}
	s.replay.Clock = dsigClock(cfg.Now)
	for _, c := range cfg.SAML {
		if c.Name == "" || s.idps[c.Name] != nil {
			return nil, fmt.Errorf("SAML IdP name %q is empty or repeated", c.Name)
		}
		p := &samlIdP{cfg: c, client: cfg.Client}
		// A file must be good at start; a URL is fetched now, in the
		// background (an IdP that does not answer never holds up the
		// start), and again at the first sign-in while it fails.
		if c.MetadataFile != "" {
			if _, err := p.metadata(context.Background()); err != nil {
				return nil, err
			}
		} else {
			go func() {
				if _, err := p.metadata(context.Background()); err != nil {
					cfg.Log.Warn("SAML IdP metadata not loaded yet; retried at the first sign-in", "idp", c.Name, "error", err)
				}
			}()
		}
		s.idps[c.Name] = p
		s.order = append(s.order, c.Name)
	}
	return s, nil
}

// dsigClock is now as crewjam's clock.
func dsigClock(now func() time.Time) *dsig.Clock {
	return dsig.NewFakeClock(nowClock{Clock: clockwork.NewRealClock(), now: now})
}

type nowClock struct {
	clockwork.Clock
	now func() time.Time
}

func (c nowClock) Now() time.Time { return c.now() }

// serviceProvider is gatehouse as the SP of idp on the host of r: the ACS
// URL (Destination, Recipient) is this host's.
func (h *Handler) serviceProvider(r *http.Request, md *saml.EntityDescriptor, p *samlIdP) *saml.ServiceProvider {
	origin := h.origin(r)
	acs, _ := url.Parse(origin + SAMLACSPath)
	meta, _ := url.Parse(origin + SAMLMetadataPath)
	slo, _ := url.Parse(origin + SAMLSLOPath)
	sp := &saml.ServiceProvider{
		EntityID:                         h.saml.sp.EntityID,
		Key:                              h.saml.sp.Key,
		Certificate:                      h.saml.sp.Certificate,
		MetadataURL:                      *meta,
		AcsURL:                           *acs,
		SloURL:                           *slo,
		IDPMetadata:                      md,
		AuthnNameIDFormat:                saml.UnspecifiedNameIDFormat,
		SendUnspecifiedNameIDFormat:      true,
		SignatureMethod:                  signatureMethod(h.saml.sp.Key),
		AssertionConsumerServiceBindings: []string{saml.HTTPPostBinding},
		LogoutBindings:                   []string{saml.HTTPRedirectBinding},
		RejectSHA1Signatures:             true,
		ReplayCache:                      h.saml.replay,
		Clock:                            dsigClock(h.cfg.Now),
	}
	if p != nil && p.cfg.NameIDFormat != "" {
		sp.AuthnNameIDFormat = saml.NameIDFormat(p.cfg.NameIDFormat)
	}
	return sp
}

func signatureMethod(k crypto.Signer) string {
	switch k.Public().(type) {
	case *rsa.PublicKey:
		return dsig.RSASHA256SignatureMethod
	case *ecdsa.PublicKey:
		return dsig.ECDSASHA256SignatureMethod
	}
	return ""
}

// serveSAML serves the SAML paths; false for any other path.
func (h *Handler) serveSAML(w http.ResponseWriter, r *http.Request) bool {
	if !strings.HasPrefix(r.URL.Path, SAMLPrefix) {
		return false
	}
	if h.saml == nil {
		page(w, http.StatusNotFound, "Not found", "SAML sign-in is not configured.")
		return true
	}
	switch r.URL.Path {
	case SAMLMetadataPath:
		h.samlMetadata(w, r)
	case SAMLLoginPath:
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			page(w, http.StatusMethodNotAllowed, "Sign-in", "Use GET.")
			return true
		}
		name := r.URL.Query().Get("idp")
		if name == "" && len(h.saml.order) == 1 {
			name = h.saml.order[0]
		}
		h.samlSignIn(w, r, name)
	case SAMLACSPath:
		h.samlACS(w, r)
	case SAMLSLOPath:
		h.samlSLO(w, r)
	default:
		page(w, http.StatusNotFound, "Not found", "No such sign-in page.")
	}
	return true
}

// samlMetadata serves the SP metadata for the IdPs to import: entity ID,
// this host's ACS (HTTP-POST), SLO, and the signing certificate.
func (h *Handler) samlMetadata(w http.ResponseWriter, r *http.Request) {
	sp := h.serviceProvider(r, nil, nil)
	b, err := xml.MarshalIndent(sp.Metadata(), "", "  ")
	if err != nil {
		h.fail(w, "writing the SAML metadata", err)
		return
	}
	w.Header().Set("Content-Type", "application/samlmetadata+xml")
	_, _ = w.Write(append([]byte(xml.Header), b...))
}

// samlSignIn starts a sign-in at the IdP named name: the return URL is
// checked, an AuthnRequest made, its id sealed into the binding cookie,
// and the browser sent to the IdP (HTTP-Redirect binding, signed).
func (h *Handler) samlSignIn(w http.ResponseWriter, r *http.Request, name string) {
	p := h.saml.idps[name]
	if p == nil {
		page(w, http.StatusNotFound, "Sign-in", "No SAML identity provider is called "+html.EscapeString(truncate(name, 100))+".")
		return
	}
	rd, err := ReturnURL(r.URL.Query().Get("rd"), r.Host, h.cfg.ReturnHosts)
	if err != nil {
		h.cfg.Log.Info("sign-in refused", "reason", "return_url", "host", r.Host)
		page(w, http.StatusBadRequest, "Sign-in refused", html.EscapeString(err.Error())+".")
		return
	}
	md, err := p.metadata(r.Context())
	if err != nil {
		h.fail(w, "reaching the identity provider", err)
		return
	}
	sp := h.serviceProvider(r, md, p)
	loc := sp.GetSSOBindingLocation(saml.HTTPRedirectBinding)
	if loc == "" {
		h.fail(w, "finding the identity provider's sign-in URL", fmt.Errorf("SAML IdP %s has no HTTP-Redirect SingleSignOnService in its metadata", name))
		return
	}
	req, err := sp.MakeAuthenticationRequest(loc, saml.HTTPRedirectBinding, saml.HTTPPostBinding)
	if err != nil {
		h.fail(w, "making the SAML request", err)
		return
	}
	b := samlBinding{IdP: name, RequestID: req.ID, Relay: random(), Return: rd, Expiry: h.cfg.Now().Add(bindingLifetime).Unix()}
	sealed, err := h.cfg.Keys.Seal(b, PurposeSAMLBinding)
	if err != nil {
		h.fail(w, "sealing the sign-in binding", err)
		return
	}
	u, err := req.Redirect(b.Relay, sp)
	if err != nil {
		h.fail(w, "making the SAML request", err)
		return
	}
	http.SetCookie(w, samlBindingCookie(r, sealed, int(bindingLifetime.Seconds())))
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// samlBindingCookie: the IdP posts the answer from its own site, and a
// browser sends a SameSite=Lax cookie with a cross-site POST to nobody.
// On TLS it is SameSite=None (Secure, __Host-); on plain http browsers
// refuse None without Secure, so it stays Lax: SAML over plain http works
// only with an IdP on the same site (localhost, the tests).
func samlBindingCookie(r *http.Request, value string, maxAge int) *http.Cookie {
	secure := scheme(r) == "https"
	c := &http.Cookie{Name: bindingCookieName(secure), Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode}
	if secure {
		c.SameSite = http.SameSiteNoneMode
	}
	return c
}

// samlACS is the Assertion Consumer Service: the IdP's Response, posted
// by the browser, becomes a session when it passes every check.
func (h *Handler) samlACS(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		page(w, http.StatusMethodNotAllowed, "Sign-in", "The identity provider's answer comes by POST.")
		return
	}
	// The binding is used once, whatever the answer.
	http.SetCookie(w, samlBindingCookie(r, "", -1))
	r.Body = http.MaxBytesReader(w, r.Body, maxSAMLResponse+8<<10)
	if err := r.ParseForm(); err != nil {
		h.refuse(w, "form_invalid", "The identity provider's answer could not be read.")
		return
	}
	form := r.PostForm
	if form.Get("SAMLart") != "" || form.Get("Signature") != "" || form.Get("SigAlg") != "" {
		h.refuse(w, "binding_unsupported", "Only the HTTP-POST binding is accepted.")
		return
	}
	var b samlBinding
	c, err := r.Cookie(bindingCookieName(scheme(r) == "https"))
	switch {
	case err != nil || h.cfg.Keys.Open(c.Value, PurposeSAMLBinding, &b) != nil:
		h.refuse(w, "no_binding", "This sign-in was not started in this browser, or took too long.")
		return
	case b.Expiry <= h.cfg.Now().Unix():
		h.refuse(w, "binding_expired", "This sign-in took too long.")
		return
	case !equal(form.Get("RelayState"), b.Relay):
		h.refuse(w, "relay_state_mismatch", "This sign-in answer does not belong to the sign-in this browser started.")
		return
	}
	p := h.saml.idps[b.IdP]
	if p == nil {
		h.refuse(w, "idp_unknown", "The identity provider of this sign-in is no longer configured.")
		return
	}
	raw := form.Get("SAMLResponse")
	if raw == "" || len(raw) > maxSAMLResponse {
		h.refuse(w, "no_response", "The identity provider sent no SAML response.")
		return
	}
	doc, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		h.refuse(w, "response_invalid", "The identity provider's answer was refused.")
		return
	}
	md, err := p.metadata(r.Context())
	if err != nil {
		h.fail(w, "reaching the identity provider", err)
		return
	}
	sp := h.serviceProvider(r, md, p)
	a, err := sp.ParseXMLResponse(doc, []string{b.RequestID}, sp.AcsURL)
	if err != nil {
		h.refuseSAML(w, b.IdP, err)
		return
	}
	// One good answer per request: its id is spent on this replica until
	// the binding would have expired (the browser has dropped the cookie
	// already; this refuses the cookie sent again with another answer).
	// Only verified answers get here, so nobody fills the cache with
	// bindings of their own.
	if err := h.saml.replay.Consume(inResponseToKey+b.RequestID, time.Unix(b.Expiry, 0)); err != nil {
		h.cfg.Log.Info("sign-in refused", "reason", "request_replayed", "idp", b.IdP, "detail", err.Error())
		page(w, http.StatusBadRequest, "Sign-in failed", `This sign-in answer was used already. <a href="/">Start again</a>.`)
		return
	}
	who, reason := p.session(a)
	if who == nil {
		h.refuse(w, reason, "The identity provider's answer was refused.")
		return
	}
	h.startSession(w, r, who, b.Return)
}

// refuseSAML logs why crewjam refused a response (its private detail;
// never the response) and answers 400.
func (h *Handler) refuseSAML(w http.ResponseWriter, idp string, err error) {
	detail := err.Error()
	var ire *saml.InvalidResponseError
	if errors.As(err, &ire) && ire.PrivateErr != nil {
		detail = ire.PrivateErr.Error()
	}
	h.cfg.Log.Info("sign-in refused", "reason", "saml_response_invalid", "idp", idp, "detail", truncate(detail, 300))
	page(w, http.StatusBadRequest, "Sign-in failed", `The identity provider's answer was refused. <a href="/">Start again</a>.`)
}

// session is who a verified assertion names: the NameID, the email and
// groups attributes as asserted (whether they count is decided on every
// request by the IdP's settings: extauthz.SAMLIssuer).
func (p *samlIdP) session(a *saml.Assertion) (*extauthz.Session, string) {
	if a.Subject == nil || a.Subject.NameID == nil || strings.TrimSpace(a.Subject.NameID.Value) == "" || a.Issuer.Value == "" {
		return nil, "no_name_id"
	}
	s := &extauthz.Session{Issuer: a.Issuer.Value, IssuerName: p.cfg.Name, Subject: truncate(a.Subject.NameID.Value, 512), Method: extauthz.MethodSAML}
	names := DefaultEmailAttributes
	if p.cfg.EmailAttribute != "" {
		names = []string{p.cfg.EmailAttribute}
	}
	for _, n := range names {
		if v := attributeValues(a, n); len(v) > 0 {
			s.Email = strings.ToLower(strings.TrimSpace(v[0]))
			break
		}
	}
	if len(s.Email) > 320 || !strings.Contains(s.Email, "@") {
		s.Email = ""
	}
	if p.cfg.GroupsAttribute != "" {
		for _, g := range attributeValues(a, p.cfg.GroupsAttribute) {
			g = strings.TrimPrefix(strings.TrimSpace(g), "/") // Keycloak's full group paths
			if g == "" || len(g) > 256 || !strings.HasPrefix(g, p.cfg.GroupsPrefix) || slices.Contains(s.Groups, g) {
				continue
			}
			if len(s.Groups) == extauthz.MaxSessionGroups {
				return nil, "too_many_groups"
			}
			s.Groups = append(s.Groups, g)
		}
	}
	if len(a.AuthnStatements) > 0 {
		s.SessionIndex = truncate(a.AuthnStatements[0].SessionIndex, 256)
	}
	return s, ""
}

// attributeValues are the values of the assertion's attributes whose Name
// or FriendlyName is name.
func attributeValues(a *saml.Assertion, name string) []string {
	var out []string
	for _, st := range a.AttributeStatements {
		for _, at := range st.Attributes {
			if at.Name != name && at.FriendlyName != name {
				continue
			}
			for _, v := range at.Values {
				if v.Value != "" {
					out = append(out, v.Value)
				}
			}
		}
	}
	return out
}

// samlLogout ends a SAML session: the cookie is cleared, and the browser
// goes to the IdP's single logout service (HTTP-Redirect, signed) with
// the NameID and session index, which sends it back to SAMLSLOPath; an
// IdP without one: straight to the signed-out page. false when the
// request carries no SAML session.
func (h *Handler) samlLogout(w http.ResponseWriter, r *http.Request) bool {
	if h.saml == nil {
		return false
	}
	c, err := r.Cookie(extauthz.SessionCookieName(scheme(r)))
	if err != nil {
		return false
	}
	var s extauthz.Session
	if h.cfg.Keys.Open(c.Value, extauthz.PurposeSession, &s) != nil || s.Method != extauthz.MethodSAML {
		return false
	}
	h.clearSession(w, r)
	target := model.SignedOutPath
	if p := h.saml.idps[s.IssuerName]; p != nil {
		if md, err := p.metadata(r.Context()); err == nil {
			sp := h.serviceProvider(r, md, p)
			var opts []saml.LogoutRequestOption
			if s.SessionIndex != "" {
				opts = append(opts, saml.WithSessionIndex(s.SessionIndex))
			}
			if loc := sp.GetSLOBindingLocation(saml.HTTPRedirectBinding); loc != "" {
				if u, err := sp.MakeRedirectLogoutRequest(s.Subject, random(), opts...); err == nil {
					target = u.String()
				} else {
					h.cfg.Log.Warn("SAML logout request", "idp", s.IssuerName, "error", err)
				}
			}
		}
	}
	http.Redirect(w, r, target, http.StatusFound)
	return true
}

// samlSLO is the single logout service. The IdP's answer to a logout of
// ours (SAMLResponse) ends at the signed-out page (the session is gone
// already). Its request to end this browser's session (SAMLRequest: the
// user logged out elsewhere; HTTP-Redirect, signed by the IdP) clears the
// session and answers the IdP with a LogoutResponse, so that its logout
// goes on to the next application. Either way this browser's session ends.
func (h *Handler) samlSLO(w http.ResponseWriter, r *http.Request) {
	h.clearSession(w, r)
	if r.URL.Query().Get("SAMLRequest") != "" {
		for _, name := range h.saml.order {
			p := h.saml.idps[name]
			md, err := p.metadata(r.Context())
			if err != nil {
				continue
			}
			sp := h.serviceProvider(r, md, p)
			lr, err := sp.ValidateLogoutRequest(r)
			if err != nil {
				continue
			}
			u, err := sp.MakeRedirectLogoutResponse(lr.ID, r.URL.Query().Get("RelayState"))
			if err != nil {
				h.cfg.Log.Warn("SAML logout response", "idp", name, "error", err)
				break
			}
			h.cfg.Log.Info("signed out by the identity provider", "idp", name)
			http.Redirect(w, r, u.String(), http.StatusFound)
			return
		}
		h.cfg.Log.Info("SAML logout request refused", "reason", "no configured IdP signed it")
	}
	http.Redirect(w, r, model.SignedOutPath, http.StatusFound)
}

func (h *Handler) clearSession(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: extauthz.SessionCookieName(scheme(r)), Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		Secure: scheme(r) == "https", SameSite: http.SameSiteLaxMode})
}

// parseKeyPair reads a PEM certificate and its PEM private key (PKCS#1,
// PKCS#8 or SEC 1).
func parseKeyPair(certPEM, keyPEM []byte) (crypto.Signer, *x509.Certificate, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, nil, err
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, nil, err
	}
	key, ok := pair.PrivateKey.(crypto.Signer)
	if !ok || signatureMethod(key) == "" {
		return nil, nil, errors.New("the key is neither RSA nor ECDSA")
	}
	return key, leaf, nil
}

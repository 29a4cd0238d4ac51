package signin

import (
	"bytes"
	"compress/flate"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml/samlsp"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/gatehouse-dev/gatehouse/extauthz"
	"github.com/gatehouse-dev/gatehouse/model"
)

// samlT0 is the tests' now.
var samlT0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	testIdPEntity = "https://idp.example.test/saml"
	testSPEntity  = "https://gate.example.test/sp"
	testHost      = "gate.example.test"
	testACS       = "http://gate.example.test" + SAMLACSPath
)

// keyPair is an RSA key with a self-signed certificate valid around samlT0.
type keyPair struct {
	key  *rsa.PrivateKey
	cert *x509.Certificate
}

func newKeyPair(t testing.TB, cn string) keyPair {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: samlT0.Add(-24 * time.Hour), NotAfter: samlT0.Add(365 * 24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return keyPair{key, cert}
}

func (k keyPair) pem() (certPEM, keyPEM []byte) {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: k.cert.Raw}),
		pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k.key)})
}

// idpMetadata is an IdP's metadata with its signing certificate.
func idpMetadata(k keyPair) string {
	return `<?xml version="1.0"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="` + testIdPEntity + `">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol" WantAuthnRequestsSigned="false">
    <md:KeyDescriptor use="signing"><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:X509Data><ds:X509Certificate>` +
		base64.StdEncoding.EncodeToString(k.cert.Raw) + `</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.example.test/slo"/>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.example.test/sso"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>`
}

// samlFixture is a handler with one SAML IdP ("corp") whose key signs the
// tests' responses.
type samlFixture struct {
	h    *Handler
	keys *extauthz.SessionKeys
	idp  keyPair
	logs *bytes.Buffer
}

func newSAMLFixture(t testing.TB, mutate ...func(*Config)) *samlFixture {
	t.Helper()
	dir := t.TempDir()
	idp, sp := newKeyPair(t, "idp"), newKeyPair(t, "gatehouse")
	md := filepath.Join(dir, "idp.xml")
	if err := os.WriteFile(md, []byte(idpMetadata(idp)), 0o600); err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM := sp.pem()
	spKey, spCert, err := parseKeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := extauthz.NewSessionKeys(bytes.Repeat([]byte{7}, extauthz.SessionKeyBytes))
	logs := &bytes.Buffer{}
	cfg := Config{Keys: keys, Log: slog.New(slog.NewTextHandler(logs, nil)), Now: func() time.Time { return samlT0 },
		SAML:        []SAMLConfig{{Name: "corp", MetadataFile: md, GroupsAttribute: "groups"}},
		SAMLSP:      SAMLSPConfig{EntityID: testSPEntity, Key: spKey, Certificate: spCert},
		SAMLDefault: "corp"}
	for _, m := range mutate {
		m(&cfg)
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &samlFixture{h: h, keys: keys, idp: idp, logs: logs}
}

// start begins a sign-in; it returns the binding cookie and what it seals.
func (f *samlFixture) start(t testing.TB) (*http.Cookie, samlBinding) {
	t.Helper()
	r := httptest.NewRequest("GET", "http://"+testHost+model.SignInPath+"?rd=%2Forders%2F1", nil)
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	if w.Code != 302 || !strings.HasPrefix(w.Header().Get("Location"), "https://idp.example.test/sso?SAMLRequest=") {
		t.Fatalf("sign-in start: %d %q %s", w.Code, w.Header().Get("Location"), w.Body)
	}
	loc, _ := url.Parse(w.Header().Get("Location"))
	if loc.Query().Get("Signature") == "" || loc.Query().Get("SigAlg") != dsig.RSASHA256SignatureMethod {
		t.Fatalf("the AuthnRequest is not signed: %s", loc)
	}
	for _, c := range w.Result().Cookies() {
		if c.Name == extauthz.BindingCookiePlain {
			var b samlBinding
			if err := f.keys.Open(c.Value, PurposeSAMLBinding, &b); err != nil {
				t.Fatal(err)
			}
			if loc.Query().Get("RelayState") != b.Relay {
				t.Fatalf("RelayState %q is not the binding's", loc.Query().Get("RelayState"))
			}
			return c, b
		}
	}
	t.Fatal("no binding cookie")
	return nil, samlBinding{}
}

// post sends a SAMLResponse (raw XML) to the ACS.
func (f *samlFixture) post(cookie *http.Cookie, relay string, doc []byte) *httptest.ResponseRecorder {
	form := url.Values{"SAMLResponse": {base64.StdEncoding.EncodeToString(doc)}, "RelayState": {relay}}
	return f.postForm(cookie, form)
}

func (f *samlFixture) postForm(cookie *http.Cookie, form url.Values) *httptest.ResponseRecorder {
	r := httptest.NewRequest("POST", testACS, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if cookie != nil {
		r.AddCookie(cookie)
	}
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	return w
}

// session is the session cookie an ACS answer set (nil: none).
func (f *samlFixture) session(t testing.TB, w *httptest.ResponseRecorder) *extauthz.Session {
	t.Helper()
	for _, c := range w.Result().Cookies() {
		if c.Name == extauthz.SessionCookiePlain && c.MaxAge > 0 {
			s, err := f.keys.OpenSession(c.Value, samlT0)
			if err != nil {
				t.Fatalf("session cookie does not open: %v", err)
			}
			return s
		}
	}
	return nil
}

// resp is what a test response says; valid() is a good answer to b.
type resp struct {
	ResponseID, AssertionID        string
	IssueInstant                   string
	Destination, InResponseTo      string
	Issuer, AssertionIssuer        string
	NameID, Recipient, SCDNotAfter string
	NotBefore, NotOnOrAfter        string
	Audience                       string
	Email                          string
	Groups                         []string
	Status                         string
}

func ts(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

func valid(b samlBinding) resp {
	return resp{ResponseID: "r" + random()[:16], AssertionID: "a" + random()[:16], IssueInstant: ts(samlT0), Destination: testACS,
		InResponseTo: b.RequestID, Issuer: testIdPEntity, AssertionIssuer: testIdPEntity, NameID: "alice", Recipient: testACS,
		SCDNotAfter: ts(samlT0.Add(5 * time.Minute)), NotBefore: ts(samlT0.Add(-time.Minute)), NotOnOrAfter: ts(samlT0.Add(5 * time.Minute)),
		Audience: testSPEntity, Email: "Alice@Example.com", Groups: []string{"/payments", "admins"}, Status: "urn:oasis:names:tc:SAML:2.0:status:Success"}
}

var assertionTmpl = template.Must(template.New("a").Parse(`<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{{.AssertionID}}" Version="2.0" IssueInstant="{{.IssueInstant}}"><saml:Issuer>{{.AssertionIssuer}}</saml:Issuer><saml:Subject><saml:NameID Format="urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified">{{.NameID}}</saml:NameID><saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer"><saml:SubjectConfirmationData InResponseTo="{{.InResponseTo}}" NotOnOrAfter="{{.SCDNotAfter}}" Recipient="{{.Recipient}}"/></saml:SubjectConfirmation></saml:Subject><saml:Conditions NotBefore="{{.NotBefore}}" NotOnOrAfter="{{.NotOnOrAfter}}"><saml:AudienceRestriction><saml:Audience>{{.Audience}}</saml:Audience></saml:AudienceRestriction></saml:Conditions><saml:AuthnStatement AuthnInstant="{{.IssueInstant}}" SessionIndex="s1"><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement><saml:AttributeStatement><saml:Attribute Name="email"><saml:AttributeValue>{{.Email}}</saml:AttributeValue></saml:Attribute><saml:Attribute Name="groups">{{range .Groups}}<saml:AttributeValue>{{.}}</saml:AttributeValue>{{end}}</saml:Attribute></saml:AttributeStatement></saml:Assertion>`))

var responseTmpl = template.Must(template.New("r").Parse(`<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{{.ResponseID}}" Version="2.0" IssueInstant="{{.IssueInstant}}" Destination="{{.Destination}}" InResponseTo="{{.InResponseTo}}"><saml:Issuer>{{.Issuer}}</saml:Issuer><samlp:Status><samlp:StatusCode Value="{{.Status}}"/></samlp:Status></samlp:Response>`))

func render(t testing.TB, tm *template.Template, r resp) *etree.Element {
	t.Helper()
	var b bytes.Buffer
	if err := tm.Execute(&b, r); err != nil {
		t.Fatal(err)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(b.Bytes()); err != nil {
		t.Fatal(err)
	}
	return doc.Root()
}

// sign signs el (enveloped, exclusive c14n, RSA-SHA256) with k and puts
// the Signature after the Issuer, where SAML's schema has it.
func sign(t testing.TB, k keyPair, el *etree.Element) *etree.Element {
	t.Helper()
	ctx := dsig.NewDefaultSigningContext(dsig.TLSCertKeyStore(tls.Certificate{Certificate: [][]byte{k.cert.Raw}, PrivateKey: k.key}))
	ctx.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	signed, err := ctx.SignEnveloped(el)
	if err != nil {
		t.Fatal(err)
	}
	// Rebuilt from copies: goxmldsig's result does not keep etree's
	// parent links, so moving the Signature in place duplicates it.
	out := etree.NewElement(signed.Tag)
	out.Space, out.Attr = signed.Space, signed.Attr
	kids := signed.ChildElements()
	out.AddChild(kids[0].Copy())
	out.AddChild(kids[len(kids)-1].Copy())
	for _, k := range kids[1 : len(kids)-1] {
		out.AddChild(k.Copy())
	}
	return out
}

// build is a Response with r's assertion, signed as asked.
func build(t testing.TB, k keyPair, r resp, signAssertion, signResponse bool) []byte {
	t.Helper()
	a := render(t, assertionTmpl, r)
	if signAssertion {
		a = sign(t, k, a)
	}
	res := render(t, responseTmpl, r)
	res.AddChild(a)
	if signResponse {
		res = sign(t, k, res)
	}
	return serialize(t, res)
}

func serialize(t testing.TB, el *etree.Element) []byte {
	t.Helper()
	doc := etree.NewDocument()
	doc.SetRoot(el.Copy())
	b, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSAMLSignIn(t *testing.T) {
	f := newSAMLFixture(t)
	for _, tc := range []struct {
		name                string
		signAssert, signRes bool
	}{
		{"signed assertion", true, false},
		{"signed response", false, true},
		{"both signed", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, b := f.start(t)
			w := f.post(c, b.Relay, build(t, f.idp, valid(b), tc.signAssert, tc.signRes))
			s := f.session(t, w)
			if w.Code != 302 || s == nil {
				t.Fatalf("%d, session %v: %s\n%s", w.Code, s, w.Body, f.logs)
			}
			if w.Header().Get("Location") != "/orders/1" {
				t.Fatalf("back to %q, want /orders/1", w.Header().Get("Location"))
			}
			want := extauthz.Session{Issuer: testIdPEntity, IssuerName: "corp", Subject: "alice", Email: "alice@example.com",
				Groups: []string{"payments", "admins"}, SessionIndex: "s1", Method: "saml", IssuedAt: samlT0.Unix(), Expiry: samlT0.Add(8 * time.Hour).Unix()}
			if fmt.Sprint(*s) != fmt.Sprint(want) {
				t.Fatalf("session\n got %+v\nwant %+v", *s, want)
			}
			if s.AuthName() != "saml-session" {
				t.Fatalf("audit auth %q", s.AuthName())
			}
			if !clearsBinding(w) {
				t.Fatal("the binding cookie was not cleared")
			}
		})
	}
}

func clearsBinding(w *httptest.ResponseRecorder) bool {
	for _, c := range w.Result().Cookies() {
		if c.Name == extauthz.BindingCookiePlain && c.MaxAge < 0 {
			return true
		}
	}
	return false
}

// TestSAMLResponseRefused: every answer that fails a check is refused (400,
// no session), and the binding cookie is cleared all the same.
func TestSAMLResponseRefused(t *testing.T) {
	f := newSAMLFixture(t)
	other := newKeyPair(t, "not the idp")
	type build_ func(t *testing.T, b samlBinding) []byte
	signed := func(m func(*resp)) build_ {
		return func(t *testing.T, b samlBinding) []byte {
			r := valid(b)
			m(&r)
			return build(t, f.idp, r, true, false)
		}
	}
	signedRes := func(m func(*resp)) build_ {
		return func(t *testing.T, b samlBinding) []byte {
			r := valid(b)
			m(&r)
			return build(t, f.idp, r, false, true)
		}
	}
	for _, tc := range []struct {
		name  string
		build build_
	}{
		{"expired (issued 10 minutes ago, conditions over)", signed(func(r *resp) {
			r.IssueInstant, r.NotBefore = ts(samlT0.Add(-10*time.Minute)), ts(samlT0.Add(-11*time.Minute))
			r.NotOnOrAfter, r.SCDNotAfter = ts(samlT0.Add(-5*time.Minute)), ts(samlT0.Add(-5*time.Minute))
		})},
		{"subject confirmation expired (past the 30 s skew)", signed(func(r *resp) { r.SCDNotAfter = ts(samlT0.Add(-31 * time.Second)) })},
		{"conditions expired", signed(func(r *resp) { r.NotOnOrAfter = ts(samlT0.Add(-31 * time.Second)) })},
		{"not yet valid", signed(func(r *resp) { r.NotBefore = ts(samlT0.Add(5 * time.Minute)) })},
		{"issued in the future", signed(func(r *resp) { r.IssueInstant = ts(samlT0.Add(5 * time.Minute)) })},
		{"wrong audience", signed(func(r *resp) { r.Audience = "https://other-sp.example.test" })},
		{"wrong recipient", signed(func(r *resp) { r.Recipient = "http://evil.example.test" + SAMLACSPath })},
		{"wrong destination (signed response)", signedRes(func(r *resp) { r.Destination = "http://evil.example.test" + SAMLACSPath })},
		{"wrong destination (signed assertion)", signed(func(r *resp) { r.Destination = "http://evil.example.test" + SAMLACSPath })},
		{"wrong issuer", signed(func(r *resp) { r.Issuer, r.AssertionIssuer = "https://evil.example.test", "https://evil.example.test" })},
		{"wrong assertion issuer", signed(func(r *resp) { r.AssertionIssuer = "https://evil.example.test" })},
		{"unknown InResponseTo", signed(func(r *resp) { r.InResponseTo = "id-not-ours" })},
		{"unknown InResponseTo in the assertion only", signed(func(r *resp) { r.InResponseTo = "" })},
		{"failed status", signedRes(func(r *resp) { r.Status = "urn:oasis:names:tc:SAML:2.0:status:Requester" })},
		{"unsigned", func(t *testing.T, b samlBinding) []byte { return build(t, f.idp, valid(b), false, false) }},
		{"signed by another key", func(t *testing.T, b samlBinding) []byte { return build(t, other, valid(b), true, true) }},
		{"changed after signing", func(t *testing.T, b samlBinding) []byte {
			doc := build(t, f.idp, valid(b), true, false)
			return bytes.Replace(doc, []byte(">alice<"), []byte(">admin<"), 1)
		}},
		{"wrapped: forged assertion before the signed one", func(t *testing.T, b samlBinding) []byte {
			return wrapSibling(t, f.idp, b)
		}},
		{"wrapped: signed assertion hidden in the forged one's signature", func(t *testing.T, b samlBinding) []byte {
			return wrapInSignature(t, f.idp, b)
		}},
		{"wrapped: signed response inside a forged response", func(t *testing.T, b samlBinding) []byte {
			return wrapResponse(t, f.idp, b)
		}},
		{"not XML", func(*testing.T, samlBinding) []byte { return []byte("<samlp:Response") }},
		{"empty", func(*testing.T, samlBinding) []byte { return nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, b := f.start(t)
			f.logs.Reset()
			w := f.post(c, b.Relay, tc.build(t, b))
			if w.Code != 400 || f.session(t, w) != nil {
				t.Fatalf("%d (session %v), want 400 and no session: %s", w.Code, f.session(t, w), f.logs)
			}
			if !clearsBinding(w) {
				t.Fatal("the binding cookie was not cleared")
			}
			t.Logf("refused: %s", strings.TrimSpace(f.logs.String()))
		})
	}
}

// wrapSibling: XSW with a forged unsigned assertion (NameID admin) first
// and the IdP's signed one after it.
func wrapSibling(t testing.TB, k keyPair, b samlBinding) []byte {
	r := valid(b)
	good := sign(t, k, render(t, assertionTmpl, r))
	evil := r
	evil.AssertionID, evil.NameID = "evil", "admin"
	res := render(t, responseTmpl, r)
	res.AddChild(render(t, assertionTmpl, evil))
	res.AddChild(good)
	return serialize(t, res)
}

// wrapInSignature: the forged assertion (same ID, NameID admin) carries
// the good one's Signature, with the signed original in a ds:Object of
// it, so that a verifier that finds the referenced element anywhere
// checks the original and reads the forgery.
func wrapInSignature(t testing.TB, k keyPair, b samlBinding) []byte {
	r := valid(b)
	good := sign(t, k, render(t, assertionTmpl, r))
	evil := r
	evil.NameID = "admin"
	forged := render(t, assertionTmpl, evil)
	sig := good.FindElement("./Signature").Copy()
	obj := sig.CreateElement("ds:Object")
	obj.AddChild(good.Copy())
	forged.InsertChildAt(1, sig)
	res := render(t, responseTmpl, r)
	res.AddChild(forged)
	return serialize(t, res)
}

// wrapResponse: a forged unsigned Response with a forged assertion, the
// IdP's signed Response inside its Extensions.
func wrapResponse(t testing.TB, k keyPair, b samlBinding) []byte {
	r := valid(b)
	inner := render(t, responseTmpl, r)
	inner.AddChild(render(t, assertionTmpl, r))
	inner = sign(t, k, inner)
	evil := r
	evil.NameID, evil.ResponseID, evil.AssertionID = "admin", "evilr", "evila"
	res := render(t, responseTmpl, evil)
	ext := res.CreateElement("samlp:Extensions")
	ext.AddChild(inner)
	res.RemoveChild(ext)
	res.InsertChildAt(1, ext)
	res.AddChild(render(t, assertionTmpl, evil))
	return serialize(t, res)
}

// TestSAMLBindingChecks: the answer must come to the browser that asked,
// once, in time, by HTTP-POST.
func TestSAMLBindingChecks(t *testing.T) {
	t.Run("replayed: the same answer and cookie again", func(t *testing.T) {
		f := newSAMLFixture(t)
		c, b := f.start(t)
		doc := build(t, f.idp, valid(b), true, false)
		if w := f.post(c, b.Relay, doc); f.session(t, w) == nil {
			t.Fatalf("first: %d %s", w.Code, f.logs)
		}
		if w := f.post(c, b.Relay, doc); w.Code != 400 || f.session(t, w) != nil {
			t.Fatalf("replay: %d, want 400", w.Code)
		}
	})
	t.Run("replayed InResponseTo: another answer to the same request", func(t *testing.T) {
		f := newSAMLFixture(t)
		c, b := f.start(t)
		if w := f.post(c, b.Relay, build(t, f.idp, valid(b), true, false)); f.session(t, w) == nil {
			t.Fatalf("first: %d %s", w.Code, f.logs)
		}
		if w := f.post(c, b.Relay, build(t, f.idp, valid(b), true, false)); w.Code != 400 || f.session(t, w) != nil {
			t.Fatalf("second answer to one request: %d, want 400", w.Code)
		}
	})
	t.Run("replayed assertion under a new request", func(t *testing.T) {
		f := newSAMLFixture(t)
		c, b := f.start(t)
		r := valid(b)
		if w := f.post(c, b.Relay, build(t, f.idp, r, true, false)); f.session(t, w) == nil {
			t.Fatalf("first: %d %s", w.Code, f.logs)
		}
		c2, b2 := f.start(t)
		r.InResponseTo = b2.RequestID // an IdP would never reuse the ID; an attacker would
		if w := f.post(c2, b2.Relay, build(t, f.idp, r, true, false)); w.Code != 400 || f.session(t, w) != nil {
			t.Fatalf("assertion ID used twice: %d, want 400", w.Code)
		}
	})
	t.Run("an answer to another browser's request", func(t *testing.T) {
		f := newSAMLFixture(t)
		_, victim := f.start(t)
		mine, b := f.start(t)
		if w := f.post(mine, b.Relay, build(t, f.idp, valid(victim), true, false)); w.Code != 400 {
			t.Fatalf("%d, want 400", w.Code)
		}
	})
	f := newSAMLFixture(t)
	for _, tc := range []struct {
		name string
		post func(c *http.Cookie, b samlBinding, doc []byte) *httptest.ResponseRecorder
	}{
		{"no binding cookie", func(_ *http.Cookie, b samlBinding, doc []byte) *httptest.ResponseRecorder {
			return f.post(nil, b.Relay, doc)
		}},
		{"RelayState of another sign-in", func(c *http.Cookie, _ samlBinding, doc []byte) *httptest.ResponseRecorder {
			return f.post(c, random(), doc)
		}},
		{"binding expired", func(_ *http.Cookie, b samlBinding, doc []byte) *httptest.ResponseRecorder {
			b.Expiry = samlT0.Unix()
			v, _ := f.keys.Seal(b, PurposeSAMLBinding)
			return f.post(&http.Cookie{Name: extauthz.BindingCookiePlain, Value: v}, b.Relay, doc)
		}},
		{"an OIDC binding", func(_ *http.Cookie, b samlBinding, doc []byte) *httptest.ResponseRecorder {
			v, _ := f.keys.Seal(b, extauthz.PurposeBinding)
			return f.post(&http.Cookie{Name: extauthz.BindingCookiePlain, Value: v}, b.Relay, doc)
		}},
		{"a forged binding", func(_ *http.Cookie, b samlBinding, doc []byte) *httptest.ResponseRecorder {
			other, _ := extauthz.NewSessionKeys(bytes.Repeat([]byte{8}, extauthz.SessionKeyBytes))
			v, _ := other.Seal(b, PurposeSAMLBinding)
			return f.post(&http.Cookie{Name: extauthz.BindingCookiePlain, Value: v}, b.Relay, doc)
		}},
		{"artifact binding", func(c *http.Cookie, b samlBinding, _ []byte) *httptest.ResponseRecorder {
			return f.postForm(c, url.Values{"SAMLart": {"AAQAAA"}, "RelayState": {b.Relay}})
		}},
		{"simple-sign binding", func(c *http.Cookie, b samlBinding, doc []byte) *httptest.ResponseRecorder {
			return f.postForm(c, url.Values{"SAMLResponse": {base64.StdEncoding.EncodeToString(doc)}, "RelayState": {b.Relay}, "SigAlg": {"x"}, "Signature": {"y"}})
		}},
		{"not base64", func(c *http.Cookie, b samlBinding, _ []byte) *httptest.ResponseRecorder {
			return f.postForm(c, url.Values{"SAMLResponse": {"%%%"}, "RelayState": {b.Relay}})
		}},
		{"too large", func(c *http.Cookie, b samlBinding, _ []byte) *httptest.ResponseRecorder {
			return f.postForm(c, url.Values{"SAMLResponse": {strings.Repeat("A", maxSAMLResponse+4)}, "RelayState": {b.Relay}})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, b := f.start(t)
			w := tc.post(c, b, build(t, f.idp, valid(b), true, false))
			if w.Code != 400 || f.session(t, w) != nil {
				t.Fatalf("%d, want 400 and no session: %s", w.Code, f.logs)
			}
		})
	}
	t.Run("GET", func(t *testing.T) {
		w := httptest.NewRecorder()
		f.h.ServeHTTP(w, httptest.NewRequest("GET", testACS+"?SAMLResponse=x", nil))
		if w.Code != 405 {
			t.Fatalf("%d, want 405", w.Code)
		}
	})
}

func TestSAMLSessionAttributes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cfg    func(*SAMLConfig)
		r      func(*resp)
		email  string
		groups []string
		reason string
	}{
		{name: "defaults", email: "alice@example.com", groups: []string{"payments", "admins"}},
		{name: "no groups attribute configured", cfg: func(c *SAMLConfig) { c.GroupsAttribute = "" }, email: "alice@example.com"},
		{name: "groups prefix", cfg: func(c *SAMLConfig) { c.GroupsPrefix = "pay" }, email: "alice@example.com", groups: []string{"payments"}},
		{name: "another email attribute", cfg: func(c *SAMLConfig) { c.EmailAttribute = "mail" }, groups: []string{"payments", "admins"}},
		{name: "not an email", r: func(r *resp) { r.Email = "alice" }, groups: []string{"payments", "admins"}},
		{name: "too many groups", r: func(r *resp) {
			r.Groups = nil
			for i := 0; i <= extauthz.MaxSessionGroups; i++ {
				r.Groups = append(r.Groups, fmt.Sprint("g", i))
			}
		}, reason: "too_many_groups"},
		{name: "empty NameID", r: func(r *resp) { r.NameID = "" }, reason: "no_name_id"},
		{name: "within the clock skew", r: func(r *resp) {
			r.SCDNotAfter, r.NotBefore = ts(samlT0.Add(-20*time.Second)), ts(samlT0.Add(20*time.Second))
		},
			email: "alice@example.com", groups: []string{"payments", "admins"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newSAMLFixture(t, func(c *Config) {
				if tc.cfg != nil {
					tc.cfg(&c.SAML[0])
				}
			})
			c, b := f.start(t)
			r := valid(b)
			if tc.r != nil {
				tc.r(&r)
			}
			w := f.post(c, b.Relay, build(t, f.idp, r, true, false))
			s := f.session(t, w)
			if tc.reason != "" {
				if s != nil || !strings.Contains(f.logs.String(), tc.reason) {
					t.Fatalf("%d %v, want refused (%s): %s", w.Code, s, tc.reason, f.logs)
				}
				return
			}
			if s == nil {
				t.Fatalf("%d: %s", w.Code, f.logs)
			}
			if s.Email != tc.email || fmt.Sprint(s.Groups) != fmt.Sprint(tc.groups) {
				t.Fatalf("email %q groups %v, want %q %v", s.Email, s.Groups, tc.email, tc.groups)
			}
		})
	}
}

func TestSAMLMetadata(t *testing.T) {
	f := newSAMLFixture(t)
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, httptest.NewRequest("GET", "http://"+testHost+SAMLMetadataPath, nil))
	md, err := samlsp.ParseMetadata(w.Body.Bytes())
	if w.Code != 200 || err != nil {
		t.Fatalf("%d %v: %s", w.Code, err, w.Body)
	}
	if md.EntityID != testSPEntity || len(md.SPSSODescriptors) != 1 {
		t.Fatalf("metadata: %s", w.Body)
	}
	sp := md.SPSSODescriptors[0]
	if len(sp.AssertionConsumerServices) != 1 || sp.AssertionConsumerServices[0].Location != testACS ||
		sp.AssertionConsumerServices[0].Binding != "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" {
		t.Fatalf("ACS: %+v", sp.AssertionConsumerServices)
	}
	if sp.WantAssertionsSigned == nil || !*sp.WantAssertionsSigned || !strings.Contains(w.Body.String(), base64.StdEncoding.EncodeToString(f.h.saml.sp.Certificate.Raw)) {
		t.Fatalf("metadata wants no signed assertions or lacks the certificate: %s", w.Body)
	}
}

func TestSAMLLogout(t *testing.T) {
	f := newSAMLFixture(t)
	c, b := f.start(t)
	w := f.post(c, b.Relay, build(t, f.idp, valid(b), true, false))
	var session *http.Cookie
	for _, c := range w.Result().Cookies() {
		if c.Name == extauthz.SessionCookiePlain {
			session = c
		}
	}
	if session == nil {
		t.Fatalf("no session: %s", f.logs)
	}
	r := httptest.NewRequest("GET", "http://"+testHost+model.LogoutPath, nil)
	r.AddCookie(session)
	w = httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	loc, _ := url.Parse(w.Header().Get("Location"))
	if w.Code != 302 || loc.Host != "idp.example.test" || loc.Path != "/slo" || loc.Query().Get("SAMLRequest") == "" {
		t.Fatalf("logout: %d to %s, want the IdP's single logout service", w.Code, loc)
	}
	cleared := false
	for _, c := range w.Result().Cookies() {
		cleared = cleared || (c.Name == extauthz.SessionCookiePlain && c.MaxAge < 0)
	}
	if !cleared {
		t.Fatal("logout left the session cookie")
	}
}

// FuzzSAMLACS: whatever is posted to the ACS, the handler never panics and
// never makes a session but alice's from the IdP-signed seed (a mutation
// that keeps the signed part intact may still sign her in, once).
func FuzzSAMLACS(f *testing.F) {
	fx := newSAMLFixture(f)
	c, b := fx.start(f)
	good := build(f, fx.idp, valid(b), true, false)
	f.Add(good, b.Relay)
	f.Add(build(f, fx.idp, valid(b), false, true), b.Relay)
	f.Add(wrapSibling(f, fx.idp, b), b.Relay)
	f.Add(wrapInSignature(f, fx.idp, b), b.Relay)
	f.Add(wrapResponse(f, fx.idp, b), b.Relay)
	f.Add([]byte("<x/>"), "")
	f.Fuzz(func(t *testing.T, doc []byte, relay string) {
		fx.h.saml.replay = samlsp.NewMemoryReplayCache(1000)
		fx.h.saml.replay.Clock = dsigClock(fx.h.cfg.Now)
		w := fx.post(c, relay, doc)
		if s := fx.session(t, w); s != nil {
			if s.Subject != "alice" || s.Email != "alice@example.com" || s.Issuer != testIdPEntity || relay != b.Relay {
				t.Fatalf("a session for %+v from a mutated response", *s)
			}
		} else if w.Code == 302 {
			t.Fatal("302 without a session")
		}
		_, _ = io.Copy(io.Discard, w.Body)
	})
}

// Metadata from a URL: gatehouse starts while the IdP is down, a sign-in
// then fails (502), and works once the IdP answers (retried at most every
// 5 s).
func TestSAMLMetadataURL(t *testing.T) {
	var md atomicString
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m := md.load(); m != "" {
			io.WriteString(w, m)
			return
		}
		http.Error(w, "down", 503)
	}))
	defer srv.Close()
	f := newSAMLFixture(t, func(c *Config) { c.SAML[0].MetadataFile, c.SAML[0].MetadataURL = "", srv.URL })
	get := func() *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		f.h.ServeHTTP(w, httptest.NewRequest("GET", "http://"+testHost+model.SignInPath+"?rd=%2F", nil))
		return w
	}
	if w := get(); w.Code != 502 {
		t.Fatalf("IdP down: %d, want 502", w.Code)
	}
	md.store(idpMetadata(f.idp))
	f.h.saml.idps["corp"].mu.Lock()
	f.h.saml.idps["corp"].lastTry = time.Time{} // the 5 s back-off, elapsed
	f.h.saml.idps["corp"].mu.Unlock()
	if w := get(); w.Code != 302 || !strings.HasPrefix(w.Header().Get("Location"), "https://idp.example.test/sso?") {
		t.Fatalf("IdP back: %d %s", w.Code, w.Header().Get("Location"))
	}
}

type atomicString struct {
	mu sync.Mutex
	s  string
}

func (a *atomicString) load() string   { a.mu.Lock(); defer a.mu.Unlock(); return a.s }
func (a *atomicString) store(s string) { a.mu.Lock(); a.s = s; a.mu.Unlock() }

// Two replicas share the session keys but not their replay caches: what
// docs/sign-in.md says a second replica does with an answer the first
// took. It accepts the same answer with the same binding cookie once
// (within the assertion's window; the browser has dropped the cookie), and
// then refuses it too; without the cookie, or after the window, never.
func TestSAMLSecondReplica(t *testing.T) {
	a := newSAMLFixture(t)
	b := &samlFixture{idp: a.idp, keys: a.keys, logs: a.logs}
	cfg := a.h.cfg
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b.h = h
	c, bind := a.start(t)
	doc := build(t, a.idp, valid(bind), true, false)
	if w := a.post(c, bind.Relay, doc); a.session(t, w) == nil {
		t.Fatalf("replica A: %d %s", w.Code, a.logs)
	}
	if w := b.post(nil, bind.Relay, doc); w.Code != 400 {
		t.Fatalf("replica B without the binding cookie: %d, want 400", w.Code)
	}
	if w := b.post(c, bind.Relay, doc); b.session(t, w) == nil {
		t.Fatalf("replica B with the cookie and the answer (documented): %d", w.Code)
	}
	if w := b.post(c, bind.Relay, doc); w.Code != 400 {
		t.Fatalf("replica B again: %d, want 400", w.Code)
	}
	late := samlT0.Add(2 * time.Minute) // past IssueInstant + 90 s
	h2, _ := New(func() Config { c := cfg; c.Now = func() time.Time { return late }; return c }())
	b.h = h2
	if w := b.post(c, bind.Relay, doc); w.Code != 400 {
		t.Fatalf("a third replica after the assertion's window: %d, want 400", w.Code)
	}
}

// idpLogoutRequest is the IdP's signed HTTP-Redirect LogoutRequest for
// alice (IdP-initiated single logout), signed with k.
func idpLogoutRequest(t *testing.T, k keyPair, id string) string {
	t.Helper()
	xmlDoc := `<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="` + id +
		`" Version="2.0" IssueInstant="` + ts(samlT0) + `" Destination="http://` + testHost + SAMLSLOPath + `"><saml:Issuer>` + testIdPEntity +
		`</saml:Issuer><saml:NameID>alice</saml:NameID><samlp:SessionIndex>s1</samlp:SessionIndex></samlp:LogoutRequest>`
	var buf bytes.Buffer
	fw, _ := flate.NewWriter(&buf, flate.DefaultCompression)
	fw.Write([]byte(xmlDoc))
	fw.Close()
	q := "SAMLRequest=" + url.QueryEscape(base64.StdEncoding.EncodeToString(buf.Bytes())) + "&RelayState=rs1&SigAlg=" + url.QueryEscape(dsig.RSASHA256SignatureMethod)
	sum := sha256.Sum256([]byte(q))
	sig, err := rsa.SignPKCS1v15(rand.Reader, k.key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return q + "&Signature=" + url.QueryEscape(base64.StdEncoding.EncodeToString(sig))
}

func TestSAMLIdPInitiatedLogout(t *testing.T) {
	f := newSAMLFixture(t)
	slo := func(query string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "http://"+testHost+SAMLSLOPath+"?"+query, nil)
		r.AddCookie(&http.Cookie{Name: extauthz.SessionCookiePlain, Value: "v1.x"})
		w := httptest.NewRecorder()
		f.h.ServeHTTP(w, r)
		cleared := false
		for _, c := range w.Result().Cookies() {
			cleared = cleared || (c.Name == extauthz.SessionCookiePlain && c.MaxAge < 0)
		}
		if !cleared {
			t.Fatalf("the session cookie was not cleared: %v", w.Result().Cookies())
		}
		return w
	}
	w := slo(idpLogoutRequest(t, f.idp, "lr1"))
	loc, _ := url.Parse(w.Header().Get("Location"))
	if w.Code != 302 || loc.Host != "idp.example.test" || loc.Query().Get("SAMLResponse") == "" || loc.Query().Get("RelayState") != "rs1" {
		t.Fatalf("a signed logout request: %d to %s, want a LogoutResponse to the IdP: %s", w.Code, loc, f.logs)
	}
	for name, q := range map[string]string{
		"signed by another key": idpLogoutRequest(t, newKeyPair(t, "other"), "lr2"),
		"replayed":              idpLogoutRequest(t, f.idp, "lr1"),
		"unsigned":              strings.Split(idpLogoutRequest(t, f.idp, "lr3"), "&SigAlg=")[0],
		"the IdP's answer":      "SAMLResponse=x",
	} {
		if w := slo(q); w.Code != 302 || w.Header().Get("Location") != model.SignedOutPath {
			t.Errorf("%s: %d to %s, want the signed-out page", name, w.Code, w.Header().Get("Location"))
		}
	}
}

// Package meshca is gatehouse's small certificate authority for workload
// identity in the mesh: it issues each sidecar a short-lived certificate
// whose URI SAN is the SPIFFE ID of its component,
// spiffe://<trust-domain>/ns/<namespace>/component/<name>.
//
// The CA key comes from files (an operator's intermediate, say) or is
// generated at first start and written next to its certificate, so a
// restart keeps the same trust root. Rotation: see docs/mesh.md.
package meshca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
)

// CA issues workload certificates.
type CA struct {
	trustDomain string
	cert        *x509.Certificate
	key         crypto.Signer
	bundle      []byte // PEM: the CA certificate plus any extra trusted roots
	now         func() time.Time

	mu sync.Mutex
}

// Config locates the CA.
type Config struct {
	// TrustDomain is the SPIFFE trust domain, e.g. "gatehouse.local" or
	// "prod.example.com".
	TrustDomain string
	// CertFile and KeyFile: the CA certificate and key (PEM). When neither
	// exists and Generate is set, a new CA is created and written there.
	CertFile, KeyFile string
	Generate          bool
	// ExtraTrustFile: more CA certificates to trust (PEM), e.g. the previous
	// CA during a rotation. Optional.
	ExtraTrustFile string
}

var trustDomainRE = regexp.MustCompile(`^[a-z0-9._-]+$`)

// ValidTrustDomain reports whether td is a SPIFFE trust domain name.
func ValidTrustDomain(td string) bool {
	return td != "" && len(td) <= 255 && trustDomainRE.MatchString(td)
}

// Load reads (or creates) the CA.
func Load(c Config) (*CA, error) {
	if !ValidTrustDomain(c.TrustDomain) {
		return nil, fmt.Errorf("mesh.trust_domain %q is not a SPIFFE trust domain (fix: lower-case letters, digits, dots, dashes and underscores, e.g. gatehouse.local)", c.TrustDomain)
	}
	if c.CertFile == "" || c.KeyFile == "" {
		return nil, errors.New("mesh CA: both mesh.ca_cert and mesh.ca_key must be set")
	}
	_, errC := os.Stat(c.CertFile)
	_, errK := os.Stat(c.KeyFile)
	if os.IsNotExist(errC) && os.IsNotExist(errK) {
		if !c.Generate {
			return nil, fmt.Errorf("mesh CA: %s and %s do not exist (fix: provide a CA certificate and key, or set mesh.generate_ca: true to create one at first start)", c.CertFile, c.KeyFile)
		}
		if err := generate(c); err != nil {
			return nil, err
		}
	}
	certPEM, err := os.ReadFile(c.CertFile)
	if err != nil {
		return nil, fmt.Errorf("mesh CA certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("mesh CA key: %w", err)
	}
	cb, _ := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("mesh CA certificate %s: no PEM CERTIFICATE block", c.CertFile)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("mesh CA certificate %s: %w", c.CertFile, err)
	}
	if !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("mesh CA certificate %s is not a CA certificate with the certSign key usage", c.CertFile)
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, fmt.Errorf("mesh CA key %s: no PEM block", c.KeyFile)
	}
	key, err := parseKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("mesh CA key %s: %w", c.KeyFile, err)
	}
	if !publicKeyEqual(key.Public(), cert.PublicKey) {
		return nil, fmt.Errorf("mesh CA key %s does not belong to the certificate %s", c.KeyFile, c.CertFile)
	}
	bundle := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	if c.ExtraTrustFile != "" {
		extra, err := os.ReadFile(c.ExtraTrustFile)
		if err != nil {
			return nil, fmt.Errorf("mesh.extra_trust: %w", err)
		}
		bundle = append(bundle, extra...)
	}
	return &CA{trustDomain: c.TrustDomain, cert: cert, key: key, bundle: bundle, now: time.Now}, nil
}

func parseKey(der []byte) (crypto.Signer, error) {
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		if s, ok := k.(crypto.Signer); ok {
			return s, nil
		}
		return nil, errors.New("unsupported key type")
	}
	if k, err := x509.ParseECPrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	return nil, errors.New("not a PKCS#8, EC or PKCS#1 private key")
}

func publicKeyEqual(a, b crypto.PublicKey) bool {
	type eq interface{ Equal(crypto.PublicKey) bool }
	if e, ok := a.(eq); ok {
		return e.Equal(b)
	}
	return false
}

func generate(c Config) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{Organization: []string{"gatehouse"}, CommonName: "gatehouse mesh CA " + c.TrustDomain},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.AddDate(1, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		URIs:                  []*url.URL{{Scheme: "spiffe", Host: c.TrustDomain}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return err
	}
	kd, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	for _, f := range []string{c.CertFile, c.KeyFile} {
		if err := os.MkdirAll(filepath.Dir(f), 0o700); err != nil {
			return fmt.Errorf("mesh CA: %w", err)
		}
	}
	// The key first, private; the certificate last, so a crash in between
	// leaves a key without a certificate (reported at the next start), never
	// a certificate whose key is lost.
	if err := os.WriteFile(c.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
		return fmt.Errorf("mesh CA key: %w", err)
	}
	if err := os.WriteFile(c.CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return fmt.Errorf("mesh CA certificate: %w", err)
	}
	return nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err)
	}
	return n
}

// TrustDomain returns the SPIFFE trust domain.
func (ca *CA) TrustDomain() string { return ca.trustDomain }

// TrustBundle returns the PEM certificates a sidecar trusts for peers.
func (ca *CA) TrustBundle() []byte { return ca.bundle }

// Certificate is one issued workload certificate.
type Certificate struct {
	CertPEM  []byte // leaf, then the CA certificate
	KeyPEM   []byte
	SPIFFEID string
	Serial   string
	NotAfter time.Time
}

// Issue returns a new key and certificate for a component's workload, valid
// for ttl (backdated a minute for clock skew).
func (ca *CA) Issue(component string, ttl time.Duration) (*Certificate, error) {
	id, err := SPIFFEID(ca.trustDomain, component)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	u, _ := url.Parse(id)
	now := ca.now()
	notAfter := now.Add(ttl)
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{Organization: []string{"gatehouse"}},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{u},
	}
	ca.mu.Lock()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	ca.mu.Unlock()
	if err != nil {
		return nil, err
	}
	kd, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	chain := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})...)
	return &Certificate{
		CertPEM: chain, KeyPEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}),
		SPIFFEID: id, Serial: tmpl.SerialNumber.Text(16), NotAfter: notAfter,
	}, nil
}

// SPIFFEID returns spiffe://<td>/ns/<namespace>/component/<name> for a
// component ref key (component:<namespace>/<name>).
func SPIFFEID(trustDomain, component string) (string, error) {
	ns, name, err := ParseComponent(component)
	if err != nil {
		return "", err
	}
	return "spiffe://" + trustDomain + "/ns/" + ns + "/component/" + name, nil
}

// ParseComponent splits a component ref key, component:<namespace>/<name>.
func ParseComponent(component string) (namespace, name string, err error) {
	rest, ok := strings.CutPrefix(component, "component:")
	ns, n, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 || ns == "" || n == "" {
		return "", "", fmt.Errorf("%q is not a component ref (component:<namespace>/<name>)", component)
	}
	return ns, n, nil
}

// ComponentOf returns the component ref key of a SPIFFE ID in trustDomain,
// or "" when the ID is of another trust domain or another shape.
func ComponentOf(trustDomain, id string) string {
	rest, ok := strings.CutPrefix(id, "spiffe://"+trustDomain+"/ns/")
	if !ok {
		return ""
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 || parts[1] != "component" || parts[0] == "" || parts[2] == "" {
		return ""
	}
	return "component:" + strings.ToLower(parts[0]) + "/" + strings.ToLower(parts[2])
}

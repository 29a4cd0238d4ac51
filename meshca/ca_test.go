package meshca

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestGenerateThenReuse(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{TrustDomain: "example.test", CertFile: filepath.Join(dir, "ca.crt"), KeyFile: filepath.Join(dir, "ca.key"), Generate: true}
	a, err := Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(cfg.KeyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	b, err := Load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if string(a.TrustBundle()) != string(b.TrustBundle()) {
		t.Fatal("a restart must keep the same CA")
	}
	cfg.Generate = false
	cfg.CertFile = filepath.Join(dir, "missing.crt")
	cfg.KeyFile = filepath.Join(dir, "missing.key")
	if _, err := Load(cfg); err == nil || !strings.Contains(err.Error(), "generate_ca") {
		t.Fatalf("missing CA without generate: %v", err)
	}
}

func TestKeyMustMatchCertificate(t *testing.T) {
	d1, d2 := t.TempDir(), t.TempDir()
	c1 := Config{TrustDomain: "t", CertFile: filepath.Join(d1, "ca.crt"), KeyFile: filepath.Join(d1, "ca.key"), Generate: true}
	c2 := Config{TrustDomain: "t", CertFile: filepath.Join(d2, "ca.crt"), KeyFile: filepath.Join(d2, "ca.key"), Generate: true}
	for _, c := range []Config{c1, c2} {
		if _, err := Load(c); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Load(Config{TrustDomain: "t", CertFile: c1.CertFile, KeyFile: c2.KeyFile}); err == nil || !strings.Contains(err.Error(), "does not belong") {
		t.Fatalf("mismatched key: %v", err)
	}
	if _, err := Load(Config{TrustDomain: "Bad Domain", CertFile: c1.CertFile, KeyFile: c1.KeyFile}); err == nil || !strings.Contains(err.Error(), "trust_domain") {
		t.Fatalf("bad trust domain: %v", err)
	}
}

func TestIssuedCertificateVerifiesWithSPIFFEID(t *testing.T) {
	dir := t.TempDir()
	ca, err := Load(Config{TrustDomain: "example.test", CertFile: filepath.Join(dir, "ca.crt"), KeyFile: filepath.Join(dir, "ca.key"), Generate: true})
	if err != nil {
		t.Fatal(err)
	}
	c, err := ca.Issue("component:shop/orders", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if c.SPIFFEID != "spiffe://example.test/ns/shop/component/orders" {
		t.Fatalf("id %s", c.SPIFFEID)
	}
	pair, err := tls.X509KeyPair(c.CertPEM, c.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.TrustBundle())
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("leaf does not verify against the trust bundle: %v", err)
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != c.SPIFFEID {
		t.Fatalf("URI SANs %v", leaf.URIs)
	}
	if d := time.Until(leaf.NotAfter); d > time.Hour || d < 59*time.Minute {
		t.Fatalf("lifetime %v", d)
	}
	if _, err := ca.Issue("user:default/alice", time.Hour); err == nil {
		t.Fatal("only components get workload certificates")
	}
}

func TestComponentOf(t *testing.T) {
	for id, want := range map[string]string{
		"spiffe://example.test/ns/shop/component/orders":   "component:shop/orders",
		"spiffe://other.test/ns/shop/component/orders":     "",
		"spiffe://example.test/ns/shop/component/orders/x": "",
		"spiffe://example.test/ns/shop/serviceaccount/x":   "",
		"spiffe://example.test.evil/ns/shop/component/o":   "",
		"spiffe://example.test/ns//component/orders":       "",
		"": "",
	} {
		if got := ComponentOf("example.test", id); got != want {
			t.Errorf("ComponentOf(%q) = %q, want %q", id, got, want)
		}
	}
}

package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	dir  string
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gatehouse test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &testCA{cert: cert, key: key, dir: t.TempDir()}
	writePEM(t, ca.path("ca.pem"), "CERTIFICATE", der)
	return ca
}

func (ca *testCA) path(name string) string { return filepath.Join(ca.dir, name) }

// issue writes name.pem and name.key: a certificate for gatehouse.test and
// 127.0.0.1 (server) or a client certificate.
func (ca *testCA) issue(t *testing.T, name string, serial int64, server bool) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.DNSNames, tmpl.IPAddresses = []string{"gatehouse.test"}, []net.IP{net.ParseIP("127.0.0.1")}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	// Write to temporary files and rename: a reader never sees half a pair.
	writePEM(t, ca.path(name+".key.tmp"), "EC PRIVATE KEY", kb)
	writePEM(t, ca.path(name+".pem.tmp"), "CERTIFICATE", der)
	_ = os.Rename(ca.path(name+".key.tmp"), ca.path(name+".key"))
	_ = os.Rename(ca.path(name+".pem.tmp"), ca.path(name+".pem"))
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// mTLS on the xDS and ext_authz listeners: Envoy connects with its client
// certificate, plaintext and certificate-less clients are refused, and a
// replaced server certificate is used for new connections without a restart.
func TestMutualTLSListeners(t *testing.T) {
	ca := newTestCA(t)
	ca.issue(t, "server", 10, true)
	ca.issue(t, "envoy", 20, false)
	for k, v := range map[string]string{
		"GATEHOUSE_XDS_TLS_CERT_FILE": ca.path("server.pem"), "GATEHOUSE_XDS_TLS_KEY_FILE": ca.path("server.key"), "GATEHOUSE_XDS_TLS_CLIENT_CA_FILE": ca.path("ca.pem"),
		"GATEHOUSE_AUTHZ_TLS_CERT_FILE": ca.path("server.pem"), "GATEHOUSE_AUTHZ_TLS_KEY_FILE": ca.path("server.key"), "GATEHOUSE_AUTHZ_TLS_CLIENT_CA_FILE": ca.path("ca.pem"),
		"GATEHOUSE_AUTHZ_ENVOY_TLS_CA_FILE": ca.path("ca.pem"), "GATEHOUSE_AUTHZ_ENVOY_TLS_CERT_FILE": ca.path("envoy.pem"),
		"GATEHOUSE_AUTHZ_ENVOY_TLS_KEY_FILE": ca.path("envoy.key"), "GATEHOUSE_AUTHZ_ENVOY_TLS_SERVER_NAME": "gatehouse.test",
	} {
		t.Setenv(k, v)
	}
	up := startUpstream(t, "orders")
	cat := filepath.Join(t.TempDir(), "catalog.yaml")
	writeCatalog(t, cat, component("orders", "gatehouse.dev/upstream", up.url, publicAll, "/orders/public/**"))
	g := startGatehouse(t, cat, "")
	e := startEnvoy(t, g, "edge-tls", false, "--xds-ca", ca.path("ca.pem"), "--xds-cert", ca.path("envoy.pem"),
		"--xds-key", ca.path("envoy.key"), "--xds-server-name", "gatehouse.test")
	// Config over mTLS xDS; a protected path is decided by Check over mTLS.
	expectRoute(t, e.edgePort, "x", "/orders/public/1", 200, "orders", 5*time.Second)
	expectRoute(t, e.edgePort, "x", "/orders/private", 401, "", 5*time.Second)

	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	client, err := tls.LoadX509KeyPair(ca.path("envoy.pem"), ca.path("envoy.key"))
	if err != nil {
		t.Fatal(err)
	}
	handshake := func(certs []tls.Certificate) (*x509.Certificate, error) {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", g.xdsAddr,
			&tls.Config{RootCAs: pool, ServerName: "gatehouse.test", Certificates: certs, NextProtos: []string{"h2"}})
		if err != nil {
			return nil, err
		}
		defer c.Close()
		// TLS 1.3 reports a missing client certificate after the handshake.
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := c.Read(make([]byte, 1)); err != nil {
			if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
				return nil, err
			}
		}
		return c.ConnectionState().PeerCertificates[0], nil
	}
	if _, err := handshake(nil); err == nil {
		t.Fatal("a client without a certificate was accepted on the mTLS xDS listener")
	}
	if cert, err := handshake([]tls.Certificate{client}); err != nil || cert.SerialNumber.Int64() != 10 {
		t.Fatalf("mTLS handshake: %v (serial %v)", err, cert)
	}
	// Rotate the server certificate: new connections get it, Envoy stays.
	ca.issue(t, "server", 11, true)
	eventually(t, 5*time.Second, "the rotated certificate is served", func() error {
		cert, err := handshake([]tls.Certificate{client})
		if err != nil {
			return err
		}
		if cert.SerialNumber.Int64() != 11 {
			return os.ErrExist
		}
		return nil
	})
	if e.stat(t, "control_plane.connected_state") != 1 {
		t.Fatal("Envoy lost its xDS stream during the rotation")
	}
	expectRoute(t, e.edgePort, "x", "/orders/private", 401, "", 2*time.Second)
}

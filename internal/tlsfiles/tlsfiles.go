// Package tlsfiles serves TLS from certificate files that may be replaced
// while the process runs (cert-manager, Vault agent, a Kubernetes Secret
// update): the files are re-read when they change, so new connections use
// the new certificate without a restart and open streams are not dropped.
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// Files names a certificate, its key and, for mutual TLS, the CA that signs
// client certificates.
type Files struct {
	CertFile     string
	KeyFile      string
	ClientCAFile string // empty: clients are not asked for certificates
}

// Enabled reports whether TLS is configured.
func (f Files) Enabled() bool { return f.CertFile != "" || f.KeyFile != "" }

// Validate checks that the files are given together and load.
func (f Files) Validate() error {
	if f.CertFile == "" || f.KeyFile == "" {
		return errors.New("cert_file and key_file must be given together")
	}
	if _, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile); err != nil {
		return fmt.Errorf("cert_file/key_file: %w", err)
	}
	if f.ClientCAFile != "" {
		if _, err := loadPool(f.ClientCAFile); err != nil {
			return err
		}
	}
	return nil
}

// ServerConfig returns a tls.Config that re-reads the files when they change
// (checked at most once per second, on a new handshake).
func ServerConfig(f Files) (*tls.Config, error) {
	r := &reloader{files: f}
	if err := r.load(); err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return r.current(), nil
		},
	}, nil
}

type reloader struct {
	files   Files
	mu      sync.Mutex
	cfg     *tls.Config
	stamp   string
	checked time.Time
}

func (r *reloader) current() *tls.Config {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.checked) >= time.Second {
		r.checked = time.Now()
		if r.fingerprint() != r.stamp {
			_ = r.loadLocked() // on error keep serving the previous certificate
		}
	}
	return r.cfg
}

func (r *reloader) load() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.loadLocked()
}

func (r *reloader) loadLocked() error {
	stamp := r.fingerprint()
	cert, err := tls.LoadX509KeyPair(r.files.CertFile, r.files.KeyFile)
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2"}}
	if r.files.ClientCAFile != "" {
		pool, err := loadPool(r.files.ClientCAFile)
		if err != nil {
			return err
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	r.cfg, r.stamp = cfg, stamp
	return nil
}

// fingerprint changes when any file changes (size and modification time).
func (r *reloader) fingerprint() string {
	s := ""
	for _, p := range []string{r.files.CertFile, r.files.KeyFile, r.files.ClientCAFile} {
		if p == "" {
			continue
		}
		if st, err := os.Stat(p); err == nil {
			s += fmt.Sprintf("%s:%d:%d;", p, st.Size(), st.ModTime().UnixNano())
		}
	}
	return s
}

func loadPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("client_ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("client_ca_file %s holds no PEM certificate", path)
	}
	return pool, nil
}

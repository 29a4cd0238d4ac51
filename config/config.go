// Package config is gatehouse's typed configuration: Defaults() fills every
// key, Validate() names the key and the fix of anything wrong. Reading files,
// environment and flags is cmd's job; packages receive this struct.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/meshca"
	"github.com/gatehouse-dev/gatehouse/model"
)

// Config is the whole configuration (gatehouse.yaml).
type Config struct {
	XDS       XDS       `mapstructure:"xds" yaml:"xds"`
	Edge      Edge      `mapstructure:"edge" yaml:"edge"`
	Admin     Admin     `mapstructure:"admin" yaml:"admin"`
	SignIn    SignIn    `mapstructure:"signin" yaml:"signin"`
	Catalog   Catalog   `mapstructure:"catalog" yaml:"catalog"`
	Authz     Authz     `mapstructure:"authz" yaml:"authz"`
	Issuers   []Issuer  `mapstructure:"issuers" yaml:"issuers"`
	Assertion Assertion `mapstructure:"assertion" yaml:"assertion"`
	Audit     Audit     `mapstructure:"audit" yaml:"audit"`
	Mesh      Mesh      `mapstructure:"mesh" yaml:"mesh"`
	Shutdown  Shutdown  `mapstructure:"shutdown" yaml:"shutdown"`
	Log       Log       `mapstructure:"log" yaml:"log"`
	Dev       Dev       `mapstructure:"dev" yaml:"dev"`
}

// Dev configures the development issuer of serve --dev; without --dev it
// does nothing.
type Dev struct {
	// KeyFile keeps the issuer's signing key (PEM EC P-256) across
	// restarts, so tokens minted before a restart stay valid; it is created
	// (mode 0600) when missing. Empty: a new key at every start.
	KeyFile string `mapstructure:"key_file" yaml:"key_file"`
}

// Shutdown is what serve does on SIGTERM: /readyz and the gRPC health
// service fail at once, xDS and Check keep serving for Drain (so that
// Kubernetes and Envoys stop sending anything new), then the gRPC servers
// stop gracefully and the audit is flushed. A second signal exits at once.
type Shutdown struct {
	Drain time.Duration `mapstructure:"drain" yaml:"drain"`
}

// MaxDrain bounds shutdown.drain: Kubernetes kills a pod after its
// terminationGracePeriodSeconds anyway.
const MaxDrain = 5 * time.Minute

// Mesh enables sidecars: a SPIFFE trust domain and the CA that issues their
// workload certificates. An empty trust_domain leaves the mesh off.
type Mesh struct {
	TrustDomain string `mapstructure:"trust_domain" yaml:"trust_domain"`
	CACert      string `mapstructure:"ca_cert" yaml:"ca_cert"`
	CAKey       string `mapstructure:"ca_key" yaml:"ca_key"`
	// GenerateCA creates ca_cert and ca_key at first start when neither
	// exists.
	GenerateCA bool `mapstructure:"generate_ca" yaml:"generate_ca"`
	// ExtraTrust: more trusted CA certificates (PEM), e.g. the previous CA
	// while rotating.
	ExtraTrust string        `mapstructure:"extra_trust" yaml:"extra_trust"`
	CertTTL    time.Duration `mapstructure:"cert_ttl" yaml:"cert_ttl"`
}

// Authz is the ext_authz gRPC listener and decision settings.
type Authz struct {
	Listen string `mapstructure:"listen" yaml:"listen"`
	// TLS of the listener (optional; client_ca_file makes it mutual).
	TLS TLS `mapstructure:"tls" yaml:"tls"`
	// EnvoyTLS: how Envoys connect to the listener when TLS is on: files on
	// the Envoy's file system, sent in the ext_authz cluster.
	EnvoyTLS EnvoyTLS `mapstructure:"envoy_tls" yaml:"envoy_tls"`
	// EnvoyAddress is where Envoys reach the listener on every replica
	// (host:port each, or one name that resolves to them all); empty means
	// Listen.
	EnvoyAddress []string      `mapstructure:"envoy_address" yaml:"envoy_address"`
	Timeout      time.Duration `mapstructure:"timeout" yaml:"timeout"`
	CookieName   string        `mapstructure:"cookie_name" yaml:"cookie_name"`
	CacheSize    int           `mapstructure:"cache_size" yaml:"cache_size"`
	CacheTTL     time.Duration `mapstructure:"cache_ttl" yaml:"cache_ttl"`
}

// TLS names the files of a TLS listener; they are re-read when they change.
type TLS struct {
	CertFile     string `mapstructure:"cert_file" yaml:"cert_file"`
	KeyFile      string `mapstructure:"key_file" yaml:"key_file"`
	ClientCAFile string `mapstructure:"client_ca_file" yaml:"client_ca_file"`
}

// EnvoyTLS is the client side of a TLS connection from Envoy to gatehouse.
type EnvoyTLS struct {
	CAFile     string `mapstructure:"ca_file" yaml:"ca_file"`
	CertFile   string `mapstructure:"cert_file" yaml:"cert_file"`
	KeyFile    string `mapstructure:"key_file" yaml:"key_file"`
	ServerName string `mapstructure:"server_name" yaml:"server_name"`
}

// Issuer is one trusted OIDC token issuer.
type Issuer struct {
	Name          string        `mapstructure:"name" yaml:"name"`
	IssuerURL     string        `mapstructure:"issuer_url" yaml:"issuer_url"`
	JWKSURL       string        `mapstructure:"jwks_url" yaml:"jwks_url"`
	Audiences     []string      `mapstructure:"audiences" yaml:"audiences"`
	Algorithms    []string      `mapstructure:"algorithms" yaml:"algorithms"`
	ClockSkew     time.Duration `mapstructure:"clock_skew" yaml:"clock_skew"`
	EmailClaim    string        `mapstructure:"email_claim" yaml:"email_claim"`
	ClientIDClaim string        `mapstructure:"client_id_claim" yaml:"client_id_claim"`
	// TrustEmail maps unverified emails (email_verified not true) to
	// catalog users. RISK: a user who can set their own email at the IdP
	// becomes whichever catalog user has it. Default off.
	TrustEmail bool `mapstructure:"trust_email" yaml:"trust_email"`
	// GroupsClaim: IdP groups in this claim become catalog memberships.
	// Empty (default): none do.
	// EntityRefSubjects: a sub such as user:default/alice names that
	// catalog User (Backstage's tokens). Default off.
	EntityRefSubjects bool   `mapstructure:"entity_ref_subjects" yaml:"entity_ref_subjects"`
	GroupsClaim       string `mapstructure:"groups_claim" yaml:"groups_claim"`
	GroupsPrefix      string `mapstructure:"groups_prefix" yaml:"groups_prefix"`
	GroupsNamespace   string `mapstructure:"groups_namespace" yaml:"groups_namespace"`
	// MachineTokenClaims ("claim=value", {client} = the token's client id)
	// mark client-credentials tokens; only those act as Components.
	MachineTokenClaims []string `mapstructure:"machine_token_claims" yaml:"machine_token_claims"`
	// SignIn is the confidential client browsers sign in with at this
	// issuer (signin.issuer names the issuer).
	SignIn IssuerSignIn `mapstructure:"sign_in" yaml:"sign_in"`
}

// IssuerSignIn is an OIDC client for browser sign-in. Its secret is read
// from the environment variable ClientSecretEnv or the file
// ClientSecretFile, never written in the configuration.
type IssuerSignIn struct {
	ClientID         string   `mapstructure:"client_id" yaml:"client_id"`
	ClientSecretEnv  string   `mapstructure:"client_secret_env" yaml:"client_secret_env"`
	ClientSecretFile string   `mapstructure:"client_secret_file" yaml:"client_secret_file"`
	Scopes           []string `mapstructure:"scopes" yaml:"scopes"`
}

// SignIn is browser sign-in (docs/sign-in.md): off while Listen is empty.
// Its HTTP listener serves /.gatehouse/ (callback, logout) for Envoys,
// apart from the admin listener, which stays on loopback.
type SignIn struct {
	Listen string `mapstructure:"listen" yaml:"listen"`
	// EnvoyAddress: where Envoys reach the listener on every replica;
	// empty means Listen.
	EnvoyAddress []string `mapstructure:"envoy_address" yaml:"envoy_address"`
	// Issuer names the issuers[] entry people sign in at (its sign_in
	// client).
	Issuer string `mapstructure:"issuer" yaml:"issuer"`
	// KeyFile holds the session keys every replica shares (one per line,
	// 64 hex digits; the first seals). GenerateKey creates it when missing.
	KeyFile         string        `mapstructure:"key_file" yaml:"key_file"`
	GenerateKey     bool          `mapstructure:"generate_key" yaml:"generate_key"`
	SessionLifetime time.Duration `mapstructure:"session_lifetime" yaml:"session_lifetime"`
	// ReturnHosts: other hosts a return URL after sign-in may name.
	ReturnHosts []string `mapstructure:"return_hosts" yaml:"return_hosts"`
	// PublicPort: the port browsers use for the edge when it is not the
	// scheme's default (the edge drops the port from Host), so that the
	// callback URL gatehouse sends the IdP has it; 0: no port.
	PublicPort uint32 `mapstructure:"public_port" yaml:"public_port"`
	// SAML: SAML 2.0 identity providers people may sign in at
	// (docs/sign-in.md); issuer may name one of them.
	SAML []SAMLIdP `mapstructure:"saml" yaml:"saml"`
	// SAMLSP: gatehouse as a SAML service provider (needed with SAML).
	SAMLSP SAMLSP `mapstructure:"saml_sp" yaml:"saml_sp"`
}

// SAMLIdP is one SAML 2.0 identity provider: its metadata (a file, or a
// URL fetched at start and again while it fails) and how its assertions
// map to the catalog, by the rules of an OIDC issuer's claims.
type SAMLIdP struct {
	Name         string `mapstructure:"name" yaml:"name"`
	MetadataFile string `mapstructure:"metadata_file" yaml:"metadata_file"`
	MetadataURL  string `mapstructure:"metadata_url" yaml:"metadata_url"`
	// EntityID picks the IdP in an aggregate and pins it (optional).
	EntityID string `mapstructure:"entity_id" yaml:"entity_id"`
	// NameIDFormat asked for: unspecified (default), persistent, email,
	// transient, or a URI.
	NameIDFormat string `mapstructure:"name_id_format" yaml:"name_id_format"`
	// EmailAttribute names the attribute holding the email (default: the
	// common names, see docs). A SAML email counts only with TrustEmail.
	EmailAttribute string `mapstructure:"email_attribute" yaml:"email_attribute"`
	TrustEmail     bool   `mapstructure:"trust_email" yaml:"trust_email"`
	// GroupsAttribute: IdP groups in this attribute become catalog
	// memberships. Empty (default): none do.
	GroupsAttribute string `mapstructure:"groups_attribute" yaml:"groups_attribute"`
	GroupsPrefix    string `mapstructure:"groups_prefix" yaml:"groups_prefix"`
	GroupsNamespace string `mapstructure:"groups_namespace" yaml:"groups_namespace"`
}

// SAMLSP is gatehouse's side of SAML: the entity ID IdPs address their
// assertions to (the audience), and the key pair that signs
// authentication requests and appears in the SP metadata.
type SAMLSP struct {
	EntityID string `mapstructure:"entity_id" yaml:"entity_id"`
	CertFile string `mapstructure:"cert_file" yaml:"cert_file"`
	KeyFile  string `mapstructure:"key_file" yaml:"key_file"`
}

// SAMLNameIDFormats are the short names of name_id_format.
var SAMLNameIDFormats = map[string]string{
	"unspecified": "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
	"persistent":  "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
	"email":       "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
	"transient":   "urn:oasis:names:tc:SAML:2.0:nameid-format:transient",
}

// SAMLIdP returns the signin.saml[] entry named name.
func (s SignIn) SAMLIdP(name string) (SAMLIdP, bool) {
	i := slices.IndexFunc(s.SAML, func(p SAMLIdP) bool { return p.Name == name })
	if i < 0 {
		return SAMLIdP{}, false
	}
	return s.SAML[i], true
}

// Enabled reports whether browser sign-in is configured.
func (s SignIn) Enabled() bool { return s.Listen != "" }

// Assertion configures the identity assertions upstreams receive.
type Assertion struct {
	Issuer   string        `mapstructure:"issuer" yaml:"issuer"`
	Lifetime time.Duration `mapstructure:"lifetime" yaml:"lifetime"`
	KeyFile  string        `mapstructure:"key_file" yaml:"key_file"`
	Rotate   time.Duration `mapstructure:"rotate" yaml:"rotate"`
}

// Audit is where decision records go.
type Audit struct {
	// Output: "stdout", "stderr", a file path, or "off".
	Output string `mapstructure:"output" yaml:"output"`
	Buffer int    `mapstructure:"buffer" yaml:"buffer"`
}

// XDS is the xDS (ADS) gRPC listener.
type XDS struct {
	Listen string `mapstructure:"listen" yaml:"listen"`
	// TLS of the listener (optional; client_ca_file makes it mutual).
	TLS TLS `mapstructure:"tls" yaml:"tls"`
	// Holdoff coalesces bursts of catalog changes into one push.
	Holdoff time.Duration `mapstructure:"holdoff" yaml:"holdoff"`
	// SendBudgetMiB bounds the MiB of large responses on their way to
	// Envoys at once (a fleet reconnecting is served in turn).
	SendBudgetMiB int `mapstructure:"send_budget_mib" yaml:"send_budget_mib"`
}

// Edge configures the edge gateway's listener (served over LDS).
type Edge struct {
	Address        string `mapstructure:"address" yaml:"address"`
	Port           uint32 `mapstructure:"port" yaml:"port"`
	UpstreamCAFile string `mapstructure:"upstream_ca_file" yaml:"upstream_ca_file"`
	// RemoveRequestHeaders are removed from every request before anything
	// reads it (edge and sidecars): headers some frameworks route or
	// authorize by, so that an upstream cannot run another method or path
	// than the one authorized (model.DefaultRemoveRequestHeaders).
	RemoveRequestHeaders []string `mapstructure:"remove_request_headers" yaml:"remove_request_headers"`
}

// Admin is the admin HTTP listener (health, metrics, debug).
type Admin struct {
	Listen string `mapstructure:"listen" yaml:"listen"`
}

// Catalog lists the catalog sources.
type Catalog struct {
	// Files: catalog-info.yaml files, directories or globs. Relative paths
	// are relative to the configuration file.
	Files        []string      `mapstructure:"files" yaml:"files"`
	PollInterval time.Duration `mapstructure:"poll_interval" yaml:"poll_interval"`
	// Backstage: follow a running Backstage catalog (off when base_url is empty).
	Backstage Backstage `mapstructure:"backstage" yaml:"backstage"`
}

// Backstage is the Backstage catalog source.
type Backstage struct {
	BaseURL string `mapstructure:"base_url" yaml:"base_url"`
	// The static external-access token: from the environment variable named
	// by TokenEnv, or the file TokenFile (never written in this file).
	TokenEnv          string        `mapstructure:"token_env" yaml:"token_env"`
	TokenFile         string        `mapstructure:"token_file" yaml:"token_file"`
	PollInterval      time.Duration `mapstructure:"poll_interval" yaml:"poll_interval"`
	Filter            []string      `mapstructure:"filter" yaml:"filter"`
	PageSize          int           `mapstructure:"page_size" yaml:"page_size"`
	MaxDeleteFraction float64       `mapstructure:"max_delete_fraction" yaml:"max_delete_fraction"`
}

// Log configures logging.
type Log struct {
	Level  string `mapstructure:"level" yaml:"level"`
	Format string `mapstructure:"format" yaml:"format"`
}

// Defaults returns a configuration with every key at its default.
func Defaults() Config {
	return Config{
		XDS:       XDS{Listen: "127.0.0.1:18000", Holdoff: 100 * time.Millisecond, SendBudgetMiB: 128},
		Edge:      Edge{Address: "0.0.0.0", Port: 10000, UpstreamCAFile: "/etc/ssl/certs/ca-certificates.crt", RemoveRequestHeaders: slices.Clone(model.DefaultRemoveRequestHeaders)},
		Admin:     Admin{Listen: "127.0.0.1:9090"},
		Catalog:   Catalog{PollInterval: time.Second, Backstage: Backstage{PollInterval: 30 * time.Second, PageSize: 500, MaxDeleteFraction: 0.5}},
		Authz:     Authz{Listen: "127.0.0.1:18001", Timeout: 500 * time.Millisecond, CacheSize: 100000, CacheTTL: 30 * time.Second},
		Assertion: Assertion{Issuer: "gatehouse", Lifetime: 30 * time.Second, Rotate: 24 * time.Hour},
		Audit:     Audit{Output: "stdout", Buffer: 8192},
		SignIn:    SignIn{SessionLifetime: 8 * time.Hour},
		Mesh:      Mesh{CertTTL: time.Hour},
		Shutdown:  Shutdown{Drain: 5 * time.Second},
		Log:       Log{Level: "info", Format: "text"},
	}
}

// Validate checks every key and returns all problems at once, each naming
// the key and the fix.
func (c Config) Validate() error {
	v := &checker{}
	v.addr("xds.listen", c.XDS.Listen)
	v.addr("admin.listen", c.Admin.Listen)
	v.xds(c.XDS)
	v.edge(c.Edge)
	v.catalog(c.Catalog)
	v.addr("authz.listen", c.Authz.Listen)
	v.tlsPair("xds.tls", c.XDS.TLS)
	v.authz(c.Authz)
	v.issuers(c.Issuers)
	v.signIn(c.SignIn, c.Issuers)
	v.mesh(c.Mesh)
	v.assertion(c.Assertion)
	if c.Audit.Buffer < 1 {
		v.bad("audit.buffer", "must be at least 1", "use e.g. 8192")
	}
	v.backstage(c.Catalog.Backstage)
	if c.Shutdown.Drain < 0 || c.Shutdown.Drain > MaxDrain {
		v.bad("shutdown.drain", fmt.Sprintf("%s is out of range", c.Shutdown.Drain),
			"use 0 to 5m, e.g. 5s (long enough for Kubernetes to remove the pod from its Service, and for Envoys' health checks to notice)")
	}
	v.log(c.Log)
	return errors.Join(v.errs...)
}

// checker collects Validate's problems, in the order of the checks.
type checker struct{ errs []error }

func (v *checker) bad(key, msg, fix string) {
	v.errs = append(v.errs, fmt.Errorf("%s: %s (fix: %s)", key, msg, fix))
}

func (v *checker) addr(key, value string) {
	if _, port, err := net.SplitHostPort(value); err != nil || port == "" {
		v.bad(key, fmt.Sprintf("%q is not host:port", value), "write an address such as 127.0.0.1:18000")
	}
}

func (v *checker) tlsPair(key string, t TLS) {
	if (t.CertFile == "") != (t.KeyFile == "") {
		v.bad(key+".cert_file", "cert_file and key_file must be given together", "give both, or neither for plaintext")
	}
	if t.ClientCAFile != "" && t.CertFile == "" {
		v.bad(key+".client_ca_file", "mutual TLS needs the listener's own cert_file and key_file", "add cert_file and key_file")
	}
}

// xds: the ranges of xds.* (xds.listen and xds.tls are checked with the
// other listeners).
func (v *checker) xds(x XDS) {
	if x.Holdoff < 0 || x.Holdoff > 10*time.Second {
		v.bad("xds.holdoff", fmt.Sprintf("%s is out of range", x.Holdoff), "use a duration from 0 to 10s, e.g. 100ms")
	}
	if x.SendBudgetMiB < 1 || x.SendBudgetMiB > 16384 {
		v.bad("xds.send_budget_mib", fmt.Sprintf("%d is out of range", x.SendBudgetMiB), "use 1-16384 MiB, e.g. 128; keep it well under the kernel's TCP memory (net.ipv4.tcp_mem)")
	}
}

func (v *checker) edge(e Edge) {
	if net.ParseIP(e.Address) == nil {
		v.bad("edge.address", fmt.Sprintf("%q is not an IP address", e.Address), "use 0.0.0.0 to listen on every interface, or one IP")
	}
	if e.Port == 0 || e.Port > 65535 {
		v.bad("edge.port", fmt.Sprintf("%d is not a port", e.Port), "use 1-65535, e.g. 10000")
	}
	for i, h := range e.RemoveRequestHeaders {
		if !validHeaderName(h) || h == "host" {
			v.bad(fmt.Sprintf("edge.remove_request_headers[%d]", i), fmt.Sprintf("%q is not a header Envoy can remove", h),
				"use lower-case header names such as x-http-method-override (not host, nor a :pseudo-header)")
		}
	}
}

// catalog: the file source's keys (catalog.backstage has its own check).
func (v *checker) catalog(c Catalog) {
	if c.PollInterval < 100*time.Millisecond {
		v.bad("catalog.poll_interval", fmt.Sprintf("%s is too short", c.PollInterval), "use at least 100ms, e.g. 1s")
	}
	for i, f := range c.Files {
		if strings.TrimSpace(f) == "" {
			v.bad(fmt.Sprintf("catalog.files[%d]", i), "empty path", "remove the entry or name a file, directory or glob")
		}
	}
}

// authz: authz.* but its listen address.
func (v *checker) authz(a Authz) {
	v.tlsPair("authz.tls", a.TLS)
	if a.TLS.CertFile != "" && a.EnvoyTLS.CAFile == "" {
		v.bad("authz.envoy_tls.ca_file", "authz.tls is on but Envoys are not told how to verify it", "give the CA file path as Envoys see it")
	}
	if a.TLS.ClientCAFile != "" && (a.EnvoyTLS.CertFile == "" || a.EnvoyTLS.KeyFile == "") {
		v.bad("authz.envoy_tls.cert_file", "authz.tls.client_ca_file asks Envoys for a client certificate, but none is configured", "give cert_file and key_file as Envoys see them")
	}
	for i, addr := range a.EnvoyAddress {
		v.addr(fmt.Sprintf("authz.envoy_address[%d]", i), addr)
	}
	if a.Timeout < 10*time.Millisecond || a.Timeout > 10*time.Second {
		v.bad("authz.timeout", fmt.Sprintf("%s is out of range", a.Timeout), "use 10ms to 10s, e.g. 500ms")
	}
	if a.CacheSize < 0 {
		v.bad("authz.cache_size", "negative", "use 0 to disable the cache, or a size such as 100000")
	}
	if a.CacheTTL < 0 || a.CacheTTL > 10*time.Minute {
		v.bad("authz.cache_ttl", fmt.Sprintf("%s is out of range", a.CacheTTL), "use 0 to 10m, e.g. 30s")
	}
}

func (v *checker) issuers(issuers []Issuer) {
	names := map[string]bool{}
	for i, is := range issuers {
		key := fmt.Sprintf("issuers[%d]", i)
		if is.Name == "" {
			v.bad(key+".name", "missing", "give the issuer a short name, e.g. keycloak")
		} else if names[is.Name] {
			v.bad(key+".name", fmt.Sprintf("%q is used twice", is.Name), "give each issuer its own name")
		}
		names[is.Name] = true
		if u, err := url.Parse(is.IssuerURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			v.bad(key+".issuer_url", fmt.Sprintf("%q is not an http(s) URL", is.IssuerURL), "use the exact iss value of the tokens, e.g. https://idp.example.com/realms/main")
		}
		if is.JWKSURL != "" {
			if u, err := url.Parse(is.JWKSURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				v.bad(key+".jwks_url", fmt.Sprintf("%q is not an http(s) URL", is.JWKSURL), "leave it empty to use discovery, or give the JWKS URL")
			}
		}
		if len(is.Audiences) == 0 {
			v.bad(key+".audiences", "empty", "list the aud values gatehouse accepts, e.g. [gatehouse]")
		}
		for _, a := range is.Algorithms {
			switch u := strings.ToUpper(a); {
			case u == "NONE" || strings.HasPrefix(u, "HS"):
				v.bad(key+".algorithms", fmt.Sprintf("%q is not allowed", a), "use public-key algorithms only: RS256, ES256, PS256, EdDSA ...")
			}
		}
		if is.ClockSkew < 0 || is.ClockSkew > 5*time.Minute {
			v.bad(key+".clock_skew", fmt.Sprintf("%s is out of range", is.ClockSkew), "use 0 to 5m, e.g. 30s")
		}
		for _, m := range is.MachineTokenClaims {
			if claim, value, ok := strings.Cut(m, "="); !ok || strings.TrimSpace(claim) == "" || strings.TrimSpace(value) == "" {
				v.bad(key+".machine_token_claims", fmt.Sprintf("%q is not claim=value", m), `write claim=value with {client} for the token's client id, e.g. "client_id={client}" for Keycloak`)
			}
		}
		if is.GroupsClaim == "" && (is.GroupsPrefix != "" || is.GroupsNamespace != "") {
			v.bad(key+".groups_claim", "empty, so groups_prefix and groups_namespace do nothing", "set groups_claim (e.g. groups) to map IdP groups, or remove groups_prefix and groups_namespace")
		}
	}
}

// signIn: signin.*, when a listen address turns sign-in on.
func (v *checker) signIn(s SignIn, issuers []Issuer) {
	if !s.Enabled() {
		return
	}
	v.addr("signin.listen", s.Listen)
	for i, addr := range s.EnvoyAddress {
		v.addr(fmt.Sprintf("signin.envoy_address[%d]", i), addr)
	}
	if s.KeyFile == "" {
		v.bad("signin.key_file", "missing", "name the file of the session key every replica shares (openssl rand -hex 32 > file), or set generate_key: true for one replica")
	}
	if s.PublicPort > 65535 {
		v.bad("signin.public_port", fmt.Sprintf("%d is not a port", s.PublicPort), "use 1-65535, or 0 for the scheme's default")
	}
	if s.SessionLifetime < time.Minute || s.SessionLifetime > 7*24*time.Hour {
		v.bad("signin.session_lifetime", fmt.Sprintf("%s is out of range", s.SessionLifetime), "use 1m to 168h, e.g. 8h")
	}
	v.saml(s, issuers)
	if _, ok := s.SAMLIdP(s.Issuer); ok {
		return // sign-in at a SAML IdP
	}
	i := slices.IndexFunc(issuers, func(is Issuer) bool { return is.Name == s.Issuer })
	if i < 0 {
		v.bad("signin.issuer", fmt.Sprintf("%q is not the name of an issuer", s.Issuer), "name the issuers[] entry (OIDC) or signin.saml[] entry (SAML) people sign in at")
		return
	}
	c := issuers[i].SignIn
	key := fmt.Sprintf("issuers[%d].sign_in", i)
	if c.ClientID == "" {
		v.bad(key+".client_id", "missing", "give the confidential client's id (standard flow, redirect URI https://<host>/.gatehouse/callback)")
	}
	if c.ClientSecretEnv == "" && c.ClientSecretFile == "" {
		v.bad(key+".client_secret_file", "no secret source", "name the file (client_secret_file) or environment variable (client_secret_env) holding the client secret")
	}
}

// saml: signin.saml[] and signin.saml_sp.
func (v *checker) saml(s SignIn, issuers []Issuer) {
	if len(s.SAML) == 0 {
		return
	}
	if s.SAMLSP.EntityID == "" {
		v.bad("signin.saml_sp.entity_id", "missing", "set the entity ID the IdPs address assertions to, e.g. https://gate.example.com/.gatehouse/saml/metadata")
	}
	if s.SAMLSP.CertFile == "" || s.SAMLSP.KeyFile == "" {
		v.bad("signin.saml_sp.cert_file", "cert_file and key_file are both needed", "name the PEM certificate and key gatehouse signs SAML requests with (openssl req -x509 -newkey rsa:2048 -nodes -days 730 -subj /CN=gatehouse -keyout sp.key -out sp.crt)")
	}
	seen := map[string]bool{}
	for _, is := range issuers {
		seen[is.Name] = true
	}
	for i, p := range s.SAML {
		key := fmt.Sprintf("signin.saml[%d]", i)
		switch {
		case p.Name == "":
			v.bad(key+".name", "missing", "give the IdP a short name, e.g. okta")
		case seen[p.Name]:
			v.bad(key+".name", fmt.Sprintf("%q is already the name of an issuer or another SAML IdP", p.Name), "give every issuer and SAML IdP its own name")
		}
		seen[p.Name] = true
		if (p.MetadataFile == "") == (p.MetadataURL == "") {
			v.bad(key+".metadata_file", "name exactly one of metadata_file and metadata_url", "point at the IdP's SAML metadata (a file, or its https URL)")
		}
		if p.MetadataURL != "" {
			if u, err := url.Parse(p.MetadataURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				v.bad(key+".metadata_url", fmt.Sprintf("%q is not an http(s) URL", p.MetadataURL), "give the IdP's metadata URL, e.g. https://idp.example.com/realms/main/protocol/saml/descriptor")
			}
		}
		if f := p.NameIDFormat; f != "" && SAMLNameIDFormats[f] == "" && !strings.HasPrefix(f, "urn:") {
			v.bad(key+".name_id_format", fmt.Sprintf("%q is not a NameID format", f), "use unspecified, persistent, email, transient or a urn:oasis:names:tc:SAML URI")
		}
		if p.GroupsAttribute == "" && (p.GroupsPrefix != "" || p.GroupsNamespace != "") {
			v.bad(key+".groups_attribute", "empty, so groups_prefix and groups_namespace do nothing", "set groups_attribute (e.g. groups) to map IdP groups, or remove groups_prefix and groups_namespace")
		}
	}
}

func (v *checker) mesh(m Mesh) {
	if m.TrustDomain == "" {
		return
	}
	if !meshca.ValidTrustDomain(m.TrustDomain) {
		v.bad("mesh.trust_domain", fmt.Sprintf("%q is not a SPIFFE trust domain", m.TrustDomain), "use lower-case letters, digits, dots, dashes and underscores, e.g. prod.example.com")
	}
	if m.CACert == "" || m.CAKey == "" {
		v.bad("mesh.ca_cert", "the mesh needs a CA certificate and key", "set mesh.ca_cert and mesh.ca_key (with mesh.generate_ca: true they are created at first start)")
	}
	if m.CertTTL < 5*time.Second || m.CertTTL > 30*24*time.Hour {
		v.bad("mesh.cert_ttl", fmt.Sprintf("%s is out of range", m.CertTTL), "use 5s to 720h, e.g. 1h (certificates are renewed at half their life)")
	}
}

func (v *checker) assertion(a Assertion) {
	if a.Lifetime <= 0 || a.Lifetime > time.Minute {
		v.bad("assertion.lifetime", fmt.Sprintf("%s is out of range", a.Lifetime), "use above 0 and at most 60s, e.g. 30s")
	}
	if a.KeyFile == "" && a.Rotate < time.Minute {
		v.bad("assertion.rotate", fmt.Sprintf("%s is too short", a.Rotate), "use at least 1m, e.g. 24h")
	}
}

// backstage: catalog.backstage.*, when a base URL turns the source on.
func (v *checker) backstage(bs Backstage) {
	if bs.BaseURL == "" {
		return
	}
	if u, err := url.Parse(bs.BaseURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		v.bad("catalog.backstage.base_url", fmt.Sprintf("%q is not an http(s) URL", bs.BaseURL), "give Backstage's backend URL, e.g. https://backstage.example.com")
	}
	if bs.TokenEnv == "" && bs.TokenFile == "" {
		v.bad("catalog.backstage.token_env", "no token source", "name the environment variable (token_env) or file (token_file) that holds Backstage's static external-access token")
	}
	if bs.PollInterval < time.Second {
		v.bad("catalog.backstage.poll_interval", fmt.Sprintf("%s is too short", bs.PollInterval), "use at least 1s, e.g. 30s")
	}
	if bs.PageSize < 1 || bs.PageSize > 10000 {
		v.bad("catalog.backstage.page_size", fmt.Sprintf("%d is out of range", bs.PageSize), "use 1-10000, e.g. 500")
	}
	if bs.MaxDeleteFraction <= 0 || bs.MaxDeleteFraction > 1 {
		v.bad("catalog.backstage.max_delete_fraction", fmt.Sprintf("%g is out of range", bs.MaxDeleteFraction), "use a share above 0 and at most 1, e.g. 0.5")
	}
}

func (v *checker) log(l Log) {
	switch strings.ToLower(l.Level) {
	case "debug", "info", "warn", "error":
	default:
		v.bad("log.level", fmt.Sprintf("%q is not a level", l.Level), "use debug, info, warn or error")
	}
	switch l.Format {
	case "text", "json":
	default:
		v.bad("log.format", fmt.Sprintf("%q is not a format", l.Format), "use text or json")
	}
}

// validHeaderName: a lower-case HTTP field name (RFC 9110 token).
func validHeaderName(h string) bool {
	if h == "" {
		return false
	}
	for _, c := range h {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", c)) {
			return false
		}
	}
	return true
}

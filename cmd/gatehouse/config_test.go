package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "gatehouse.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadConfigDefaultsAndOverrides(t *testing.T) {
	p := writeConfig(t, "xds:\n  listen: 127.0.0.1:19000\ncatalog:\n  files: [catalog/]\n")
	t.Setenv("GATEHOUSE_ADMIN_LISTEN", "127.0.0.1:19191")
	t.Setenv("GATEHOUSE_AUTHZ_CACHE_TTL", "5s")
	c, err := loadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.XDS.Listen != "127.0.0.1:19000" {
		t.Errorf("file value lost: xds.listen = %s", c.XDS.Listen)
	}
	if c.Admin.Listen != "127.0.0.1:19191" || c.Authz.CacheTTL != 5*time.Second {
		t.Errorf("env overrides: admin.listen = %s, authz.cache_ttl = %s", c.Admin.Listen, c.Authz.CacheTTL)
	}
	if c.XDS.Holdoff != 100*time.Millisecond || c.Edge.Port != 10000 || c.Assertion.Lifetime != 30*time.Second {
		t.Errorf("defaults lost: %+v %+v %+v", c.XDS, c.Edge, c.Assertion)
	}
	// One key of a nested section from the environment keeps the section's
	// other defaults.
	t.Setenv("GATEHOUSE_CATALOG_BACKSTAGE_BASE_URL", "https://backstage.example.com")
	t.Setenv("GATEHOUSE_CATALOG_BACKSTAGE_TOKEN_ENV", "BS_TOKEN")
	c2, err := loadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if c2.Catalog.Backstage.MaxDeleteFraction != 0.5 || c2.Catalog.Backstage.PageSize != 500 || c2.Catalog.Backstage.PollInterval != 30*time.Second {
		t.Errorf("nested defaults lost by an env override: %+v", c2.Catalog.Backstage)
	}
	if want := filepath.Join(filepath.Dir(p), "catalog"); c.Catalog.Files[0] != want {
		t.Errorf("catalog path %s not made relative to the config file (%s)", c.Catalog.Files[0], want)
	}
}

func TestLoadConfigErrorsNameTheKey(t *testing.T) {
	cases := map[string]string{
		"xds:\n  listn: x\n":           "listn",
		"edge:\n  port: 0\n":           "edge.port",
		"xds:\n  send_budget_mib: 0\n": "xds.send_budget_mib",
		"log:\n  level: loud\n":        "log.level",
		"authz:\n  timeout: 1h\n":      "authz.timeout",
		"assertion:\n  lifetime: 5m\n": "assertion.lifetime",
		"issuers:\n  - name: a\n    issuer_url: https://idp\n    audiences: [x]\n    algorithms: [HS256]\n":               "issuers[0].algorithms",
		"issuers:\n  - name: a\n    issuer_url: idp\n":                                                                    "issuers[0].issuer_url",
		"issuers:\n  - name: a\n    issuer_url: https://idp\n    audiences: [x]\n    machine_token_claims: [client_id]\n": "issuers[0].machine_token_claims",
		"issuers:\n  - name: a\n    issuer_url: https://idp\n    audiences: [x]\n    groups_prefix: catalog-\n":           "issuers[0].groups_claim",
		"edge:\n  remove_request_headers: [X-Original-URL]\n":                                                             "edge.remove_request_headers[0]",
		"edge:\n  remove_request_headers: [host]\n":                                                                       "edge.remove_request_headers[0]",
	}
	for body, key := range cases {
		_, err := loadConfig(writeConfig(t, body))
		if err == nil || !strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), "fix") {
			t.Errorf("config %q: error %v does not name %s with a fix", body, err, key)
		}
	}
}

// shutdown.drain: 5s by default, from the file or the environment, and a
// value out of range names the key and the fix.
func TestShutdownDrainKey(t *testing.T) {
	c, err := loadConfig(writeConfig(t, "log:\n  level: info\n"))
	if err != nil || c.Shutdown.Drain != 5*time.Second {
		t.Fatalf("default shutdown.drain: %s, %v", c.Shutdown.Drain, err)
	}
	if c, err = loadConfig(writeConfig(t, "shutdown:\n  drain: 0s\n")); err != nil || c.Shutdown.Drain != 0 {
		t.Errorf("shutdown.drain: 0s (no drain): %s, %v", c.Shutdown.Drain, err)
	}
	t.Setenv("GATEHOUSE_SHUTDOWN_DRAIN", "20s")
	if c, err = loadConfig(""); err != nil || c.Shutdown.Drain != 20*time.Second {
		t.Errorf("GATEHOUSE_SHUTDOWN_DRAIN=20s: %s, %v", c.Shutdown.Drain, err)
	}
	t.Setenv("GATEHOUSE_SHUTDOWN_DRAIN", "")
	for body, want := range map[string]string{
		"shutdown:\n  drain: 10m\n": "shutdown.drain: 10m0s is out of range (fix: use 0 to 5m",
		"shutdown:\n  drain: -1s\n": "shutdown.drain: -1s is out of range",
		"shutdown:\n  drian: 5s\n":  "shutdown.drian",
	} {
		if _, err := loadConfig(writeConfig(t, body)); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "fix") {
			t.Errorf("config %q: error %v, want %q with a fix", body, err, want)
		}
	}
}

// authz.envoy_address lists every replica: one address, a YAML list, or a
// comma-separated environment variable; each must be host:port.
func TestAuthzEnvoyAddressList(t *testing.T) {
	c, err := loadConfig(writeConfig(t, "authz:\n  envoy_address: gatehouse-authz.gatehouse.svc:18001\n"))
	if err != nil || len(c.Authz.EnvoyAddress) != 1 {
		t.Fatalf("one address: %v, %v", c.Authz.EnvoyAddress, err)
	}
	c, err = loadConfig(writeConfig(t, "authz:\n  envoy_address: [10.0.0.5:18001, 10.0.0.6:18001]\n"))
	if err != nil || xdsOptions(c).AuthzAddress != "10.0.0.5:18001,10.0.0.6:18001" {
		t.Fatalf("a list: %v, %v", c.Authz.EnvoyAddress, err)
	}
	t.Setenv("GATEHOUSE_AUTHZ_ENVOY_ADDRESS", "10.0.0.5:18001,10.0.0.7:18001")
	if c, err = loadConfig(""); err != nil || len(c.Authz.EnvoyAddress) != 2 || c.Authz.EnvoyAddress[1] != "10.0.0.7:18001" {
		t.Errorf("from the environment: %v, %v", c.Authz.EnvoyAddress, err)
	}
	t.Setenv("GATEHOUSE_AUTHZ_ENVOY_ADDRESS", "")
	if _, err := loadConfig(writeConfig(t, "authz:\n  envoy_address: [10.0.0.5:18001, nope]\n")); err == nil || !strings.Contains(err.Error(), "authz.envoy_address[1]") {
		t.Errorf("a bad second address: %v", err)
	}
}

// signin.*: off by default; on, every missing piece names its key and fix,
// and a complete one loads (the secret's source, never the secret).
func TestSignInConfig(t *testing.T) {
	c, err := loadConfig(writeConfig(t, "log:\n  level: info\n"))
	if err != nil || c.SignIn.Enabled() || c.SignIn.SessionLifetime != 8*time.Hour {
		t.Fatalf("defaults: %+v %v", c.SignIn, err)
	}
	issuer := "issuers:\n  - name: kc\n    issuer_url: https://idp\n    audiences: [gatehouse]\n"
	for body, key := range map[string]string{
		"signin:\n  listen: 127.0.0.1:18002\n  issuer: kc\n  key_file: k\n":                                       "issuers[0].sign_in.client_id",
		"signin:\n  listen: 127.0.0.1:18002\n  issuer: nope\n  key_file: k\n":                                     "signin.issuer",
		"signin:\n  listen: 127.0.0.1:18002\n  issuer: kc\n":                                                      "signin.key_file",
		"signin:\n  listen: nowhere\n  issuer: kc\n  key_file: k\n":                                               "signin.listen",
		"signin:\n  listen: 127.0.0.1:18002\n  issuer: kc\n  key_file: k\n  session_lifetime: 200h\n":             "signin.session_lifetime",
		"signin:\n  listen: 127.0.0.1:18002\n  issuer: kc\n  key_file: k\n  envoy_address: [x]\n":                 "signin.envoy_address[0]",
		"signin:\n  listen: 127.0.0.1:18002\n  issuer: kc\n  key_file: k\n  public_port: 70000\n":                 "signin.public_port",
		"signin:\n  listen: 127.0.0.1:18002\n  issuer: kc\n  key_file: k\n  session_lifetime: 1s\n":               "signin.session_lifetime",
		"signin:\n  listen: 127.0.0.1:18002\n  issuer: kc\n  key_file: k\n  renew_grace: -1s\n":                   "signin.renew_grace",
		"signin:\n  listen: 127.0.0.1:18002\n  issuer: kc\n  key_file: k\n  cookie_domain: com\n":                 "signin.cookie_domain",
		"signin:\n  listen: 127.0.0.1:18002\n  issuer: kc\n  key_file: k\n  cookie_domain: 10.0.0.1\n":            "signin.cookie_domain",
		"signin:\n  listen: 127.0.0.1:18002\n  issuer: kc\n  key_file: k\n  cookie_domain: '*.example.com'\n":     "signin.cookie_domain",
		"signin:\n  listen: 127.0.0.1:18002\n  issuer: kc\n  key_file: k\n  cookie_domain: https://example.com\n": "signin.cookie_domain",
		"signin:\n  listen: 127.0.0.1:18002\n  issuer: kc\n  key_file: k\n  cookie_domain: example.com:443\n":     "signin.cookie_domain",
	} {
		if _, err := loadConfig(writeConfig(t, issuer+body)); err == nil || !strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), "fix") {
			t.Errorf("config %q: error %v does not name %s with a fix", body, err, key)
		}
	}
	ok := issuer + "    sign_in:\n      client_id: web\n      client_secret_env: WEB_SECRET\n" +
		"signin:\n  listen: 127.0.0.1:18002\n  issuer: kc\n  key_file: k\n  session_lifetime: 1h\n"
	if c, err = loadConfig(writeConfig(t, ok)); err != nil || !c.SignIn.Enabled() || c.Issuers[0].SignIn.ClientID != "web" || c.SignIn.RenewGrace != time.Hour {
		t.Fatalf("a complete sign-in configuration: %+v %v", c.SignIn, err)
	}
	if c, err = loadConfig(writeConfig(t, ok+"  cookie_domain: gh.localhost\n")); err != nil || c.SignIn.CookieDomain != "gh.localhost" {
		t.Fatalf("cookie_domain: %+v %v", c.SignIn, err)
	}
	// The development issuer: accepted by the configuration, refused by
	// serve without --dev (it exists only then).
	dev := "signin:\n  listen: 127.0.0.1:18002\n  issuer: dev\n  key_file: k\n"
	c, err = loadConfig(writeConfig(t, dev))
	if err != nil {
		t.Fatalf("signin.issuer: dev: %v", err)
	}
	if _, err := newSignInServer(c, nil, nil, nil, slog.Default()); err == nil || !strings.Contains(err.Error(), "--dev") {
		t.Fatalf("signin.issuer: dev without --dev: %v, want an error naming --dev", err)
	}
}

// token_exchange.*: off by default; on, every problem names its key and
// fix; the issuer may never be the assertions'.
func TestTokenExchangeConfig(t *testing.T) {
	c, err := loadConfig(writeConfig(t, "log:\n  level: info\n"))
	if err != nil || c.TokenExchange.Enabled() || c.TokenExchange.Lifetime != 5*time.Minute || exchangeAddress(c) != "" {
		t.Fatalf("defaults: %+v %v", c.TokenExchange, err)
	}
	for body, key := range map[string]string{
		"token_exchange:\n  listen: 127.0.0.1:18003\n":                                               "token_exchange.issuer",
		"token_exchange:\n  listen: 127.0.0.1:18003\n  issuer: gatehouse\n":                          "token_exchange.issuer",
		"token_exchange:\n  listen: nowhere\n  issuer: https://gw/.gatehouse/token\n":                "token_exchange.listen",
		"token_exchange:\n  listen: 127.0.0.1:18003\n  issuer: https://gw/t\n  lifetime: 6m\n":       "token_exchange.lifetime",
		"token_exchange:\n  listen: 127.0.0.1:18003\n  issuer: https://gw/t\n  envoy_address: [x]\n": "token_exchange.envoy_address[0]",
		"token_exchange:\n  listen: 127.0.0.1:18003\n  issuer: https://gw/t\n  lifetime: 0s\n":       "token_exchange.lifetime",
	} {
		if _, err := loadConfig(writeConfig(t, body)); err == nil || !strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), "fix") {
			t.Errorf("config %q: error %v does not name %s with a fix", body, err, key)
		}
	}
	c, err = loadConfig(writeConfig(t, "token_exchange:\n  listen: 127.0.0.1:18003\n  envoy_address: [10.0.0.1:18003, 10.0.0.2:18003]\n  issuer: https://gw/t\n"))
	if err != nil || !c.TokenExchange.Enabled() || exchangeAddress(c) != "10.0.0.1:18003,10.0.0.2:18003" || xdsOptions(c).ExchangeAddress != exchangeAddress(c) {
		t.Fatalf("a complete configuration: %+v %v", c.TokenExchange, err)
	}
}

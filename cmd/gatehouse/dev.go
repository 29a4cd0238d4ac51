package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/extauthz"
	"github.com/gatehouse-dev/gatehouse/model"
)

// enableDev turns on the development issuer: only on a loopback admin
// listener, loudly, and trusted as one more issuer.
func enableDev(cfg *config.Config, log *slog.Logger) (*extauthz.DevIssuer, error) {
	host, _, _ := net.SplitHostPort(cfg.Admin.Listen)
	ip := net.ParseIP(host)
	if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("--dev: admin.listen is %s; the development issuer only runs on a loopback address (fix: admin.listen: 127.0.0.1:9090)", cfg.Admin.Listen)
	}
	var key *ecdsa.PrivateKey
	if cfg.Dev.KeyFile != "" {
		k, created, err := devKey(cfg.Dev.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("dev.key_file: %w", err)
		}
		key = k
		if created {
			log.Info("development issuer: created its key; tokens it mints stay valid across restarts", "file", cfg.Dev.KeyFile)
		}
	}
	d, err := extauthz.NewDevIssuer("http://"+cfg.Admin.Listen, key)
	if err != nil {
		return nil, err
	}
	addDevIssuer(cfg, d)
	log.Warn("DEVELOPMENT ISSUER ON (--dev): anyone who can reach " + cfg.Admin.Listen + " can mint tokens for any user; never use --dev in production")
	return d, nil
}

// devKey reads the development issuer's key from path (PEM, EC P-256, PKCS#8
// or SEC 1), or creates it there (mode 0600) when the file does not exist.
func devKey(path string) (key *ecdsa.PrivateKey, created bool, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, false, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return nil, false, err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, false, err
		}
		// O_EXCL: two demos started at once do not overwrite each other's key.
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return devKey(path)
		}
		if err != nil {
			return nil, false, err
		}
		if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
			f.Close()
			return nil, false, err
		}
		return k, true, f.Close()
	}
	if err != nil {
		return nil, false, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, false, fmt.Errorf("%s holds no PEM key (fix: delete it; serve --dev creates a new one)", path)
	}
	var parsed any
	if parsed, err = x509.ParsePKCS8PrivateKey(block.Bytes); err != nil {
		parsed, err = x509.ParseECPrivateKey(block.Bytes)
	}
	k, ok := parsed.(*ecdsa.PrivateKey)
	if err != nil || !ok || k.Curve != elliptic.P256() {
		return nil, false, fmt.Errorf("%s is not an EC P-256 private key (fix: delete it; serve --dev creates a new one)", path)
	}
	return k, false, nil
}

func tokenCmd() *cobra.Command {
	var adminURL string
	var req extauthz.DevTokenRequest
	var user string
	cmd := &cobra.Command{
		Use:   "token --user user:default/alice | --client-id ID",
		Short: "Mint a development token from a gatehouse started with serve --dev",
		Example: `  ALICE=$(gatehouse token --user user:default/alice)
  curl -H "Authorization: Bearer $ALICE" localhost:10000/orders/42
  # a machine token for the Component whose gatehouse.dev/client-id is shop
  gatehouse token --client-id shop
  # extra IdP groups and a short lifetime
  gatehouse token --user user:default/bob --group auditors --ttl 5m
  # a token an MCP route takes: its aud names the MCP API (docs/mcp.md)
  gatehouse token --user user:default/alice --audience api:default/platform-tools`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case user != "":
				req.Subject = user
			case req.ClientID != "":
				req.Subject = "client:" + req.ClientID
			default:
				return fmt.Errorf("give --user user:default/NAME or --client-id ID")
			}
			body, _ := json.Marshal(req)
			c := &http.Client{Timeout: 5 * time.Second}
			resp, err := c.Post(strings.TrimSuffix(adminURL, "/")+"/dev/token", "application/json", bytes.NewReader(body))
			if err != nil {
				return fmt.Errorf("%w (is gatehouse serve --dev running with admin on %s?)", err, adminURL)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode == http.StatusNotFound {
				return fmt.Errorf("the development issuer is off at %s (fix: start gatehouse serve --dev)", adminURL)
			}
			if resp.StatusCode != 200 {
				return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
			}
			var tr struct {
				AccessToken string `json:"access_token"`
			}
			if err := json.Unmarshal(b, &tr); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), tr.AccessToken)
			if w := unknownToCatalog(c, adminURL, user, req); w != "" {
				fmt.Fprintln(cmd.ErrOrStderr(), "gatehouse token: warning:", w)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&adminURL, "admin", defaultAdminURL(), "admin URL of gatehouse serve --dev (default from GATEHOUSE_ADMIN_LISTEN when set)")
	f.StringVar(&user, "user", "", "user entity ref, the token's sub (e.g. user:default/alice)")
	f.StringVar(&req.Email, "email", "", "email claim")
	f.StringSliceVar(&req.Groups, "group", nil, "groups claim entries")
	f.StringSliceVar(&req.Scopes, "scope", nil, "OAuth scopes (the scope claim; GraphQL @requiresScopes)")
	f.StringVar(&req.ClientID, "client-id", "", "client id (a machine token when given without --user)")
	f.DurationVar(&req.TTL, "ttl", time.Hour, "lifetime")
	f.StringSliceVar(&req.Audiences, "audience", nil, "audiences added to gatehouse-dev in aud (an MCP route needs its API's ref: api:default/platform-tools)")
	return cmd
}

// defaultAdminURL is where a local gatehouse's admin listener is: the
// address GATEHOUSE_ADMIN_LISTEN gives serve (make demo sets it when
// DEMO_ADMIN_PORT moves it), else admin.listen's default.
func defaultAdminURL() string {
	host, port, err := net.SplitHostPort(os.Getenv("GATEHOUSE_ADMIN_LISTEN"))
	if err != nil || port == "" {
		return "http://127.0.0.1:9090"
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// unknownToCatalog says why a token for user (or client) will map to nobody
// in the running gatehouse's catalog (GET /debug/model), or "" when it maps
// or the model cannot be read.
func unknownToCatalog(c *http.Client, adminURL, user string, req extauthz.DevTokenRequest) string {
	resp, err := c.Get(strings.TrimSuffix(adminURL, "/") + "/debug/model")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var m struct {
		Directory model.Directory `json:"directory"`
	}
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&m) != nil {
		return ""
	}
	if user == "" {
		for _, cl := range m.Directory.Clients {
			if slices.Contains(cl.ClientIDs, req.ClientID) {
				return ""
			}
		}
		return fmt.Sprintf("no Component has gatehouse.dev/client-id %q, so this token maps to nobody (403 unknown_principal); add the annotation to the Component that should act with it", req.ClientID)
	}
	for _, u := range m.Directory.Users {
		if strings.EqualFold(u.Ref, user) || (req.Email != "" && strings.EqualFold(u.Email, req.Email)) {
			return ""
		}
	}
	return fmt.Sprintf("%s is not a User in gatehouse's catalog, so this token maps to nobody (403 unknown_principal); write a ref such as user:default/alice", user)
}

// addDevIssuer trusts the development issuer. It mints whatever it is
// asked for, so its emails and groups are taken as they come; its machine
// tokens are the ones `gatehouse token --client-id` mints (sub client:ID).
func addDevIssuer(cfg *config.Config, d *extauthz.DevIssuer) {
	cfg.Issuers = append(cfg.Issuers, config.Issuer{
		Name: config.DevIssuerName, IssuerURL: d.Issuer(), Audiences: []string{extauthz.DevAudience}, Algorithms: []string{"ES256"},
		TrustEmail: true, EntityRefSubjects: true, GroupsClaim: "groups", MachineTokenClaims: []string{"sub=client:{client}"},
	})
}

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/extauthz"
)

// enableDev turns on the development issuer: only on a loopback admin
// listener, loudly, and trusted as one more issuer.
func enableDev(cfg *config.Config, log *slog.Logger) (*extauthz.DevIssuer, error) {
	host, _, _ := net.SplitHostPort(cfg.Admin.Listen)
	ip := net.ParseIP(host)
	if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("--dev: admin.listen is %s; the development issuer only runs on a loopback address (fix: admin.listen: 127.0.0.1:9090)", cfg.Admin.Listen)
	}
	d, err := extauthz.NewDevIssuer("http://" + cfg.Admin.Listen)
	if err != nil {
		return nil, err
	}
	addDevIssuer(cfg, d)
	log.Warn("DEVELOPMENT ISSUER ON (--dev): anyone who can reach " + cfg.Admin.Listen + " can mint tokens for any user; never use --dev in production")
	return d, nil
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
  gatehouse token --user user:default/bob --group auditors --ttl 5m`,
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
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&adminURL, "admin", "http://127.0.0.1:9090", "admin URL of gatehouse serve --dev")
	f.StringVar(&user, "user", "", "user entity ref, the token's sub (e.g. user:default/alice)")
	f.StringVar(&req.Email, "email", "", "email claim")
	f.StringSliceVar(&req.Groups, "group", nil, "groups claim entries")
	f.StringVar(&req.ClientID, "client-id", "", "client id (a machine token when given without --user)")
	f.DurationVar(&req.TTL, "ttl", time.Hour, "lifetime")
	return cmd
}

// addDevIssuer trusts the development issuer. It mints whatever it is
// asked for, so its emails and groups are taken as they come; its machine
// tokens are the ones `gatehouse token --client-id` mints (sub client:ID).
func addDevIssuer(cfg *config.Config, d *extauthz.DevIssuer) {
	cfg.Issuers = append(cfg.Issuers, config.Issuer{
		Name: "dev", IssuerURL: d.Issuer(), Audiences: []string{extauthz.DevAudience}, Algorithms: []string{"ES256"},
		TrustEmail: true, GroupsClaim: "groups", MachineTokenClaims: []string{"sub=client:{client}"},
	})
}

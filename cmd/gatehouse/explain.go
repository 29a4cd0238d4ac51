package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	cs "github.com/gatehouse-dev/gatehouse/catalogsync"
	"github.com/gatehouse-dev/gatehouse/extauthz"
)

func explainCmd() *cobra.Command {
	var cfgPath, remote, decisionID string
	var catalogFiles []string
	var req extauthz.ExplainRequest
	var asJSON bool
	var graphql, variables string
	cmd := &cobra.Command{
		Use:   "explain --url URL [--token JWT | --principal REF [--group G]...] [--peer REF --route ID]",
		Short: "Explain whether a request would be allowed, and why (the same Evaluate as Check)",
		Example: `  # a catalog principal, against the catalog of a configuration file
  gatehouse explain --config gatehouse.yaml --principal user:default/bob --method POST --url http://gw/orders/7
  # a real token, asking a running gatehouse (its admin listener)
  gatehouse explain --remote http://127.0.0.1:9090 --token "$JWT" --url http://gw/orders/7
  # a component calling another, as JSON
  gatehouse explain --remote http://127.0.0.1:9090 --principal component:default/shop --url http://gw/orders/7 --json
  # a request without credentials (a public path?), against catalog files
  gatehouse explain --catalog examples/catalog/catalog-info.yaml --url http://gw/orders/healthz
  # a sidecar's inbound route: the mTLS peer component and the user it calls for
  gatehouse explain --catalog ./catalog --peer component:default/checkout --principal user:default/alice \
      --route 'component:default/orders@mesh:/orders/v1' --url http://orders/orders/v1/items
  # a GraphQL API's route: the decision for every field
  gatehouse explain --catalog ./catalog --principal user:default/bob --url http://gw/platform/graphql \
      --graphql 'query { component(name: "orders") { owner deploySecrets } }'
  # a past decision, by the decision_id of a 403 body or an audit record
  gatehouse explain --remote http://127.0.0.1:9090 --decision 7f3c9a1e-…`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if decisionID != "" {
				return explainDecision(cmd.OutOrStdout(), remote, decisionID, asJSON)
			}
			if req.URL == "" {
				return fmt.Errorf("give --url, and --token or --principal (without either: a request without credentials)")
			}
			if graphql != "" {
				body, err := graphqlBody(graphql, variables)
				if err != nil {
					return err
				}
				req.Method, req.Body = "POST", body
			}
			var res *extauthz.ExplainResult
			var err error
			if remote != "" {
				res, err = explainRemote(remote, req)
			} else {
				res, err = explainLocal(cmd.Context(), cfgPath, catalogFiles, req)
			}
			if err != nil {
				return err
			}
			return report(cmd.OutOrStdout(), asJSON, res, func(w io.Writer) { printExplain(w, res) }, res.Decision.Allow)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&cfgPath, "config", "c", "", "configuration file (catalog and issuers)")
	f.StringSliceVar(&catalogFiles, "catalog", nil, "catalog files, directories or globs (overrides catalog.files)")
	f.StringVar(&req.Peer, "peer", "", "the component a sidecar verified by mTLS, on a sidecar's inbound route (with --route)")
	f.StringVar(&req.RouteID, "route", "", "the route id Envoy chose (as Check receives it); default: matched from --url")
	f.StringVar(&remote, "remote", "", "ask a running gatehouse: its admin URL, e.g. http://127.0.0.1:9090")
	f.StringVar(&decisionID, "decision", "", "show a recent decision by its decision_id (with --remote)")
	f.StringVar(&req.Token, "token", "", "a bearer token to verify and map")
	f.StringVar(&req.Principal, "principal", "", "a catalog user or component, e.g. user:default/alice")
	f.StringSliceVar(&req.Groups, "group", nil, "extra IdP group names for --principal")
	f.StringSliceVar(&req.Scopes, "scope", nil, "OAuth scopes a token of --principal would grant (GraphQL @requiresScopes)")
	f.StringVar(&req.Method, "method", "GET", "HTTP method")
	f.StringVar(&req.URL, "url", "", "the request URL, e.g. http://orders.example.com/orders/7")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	f.StringVar(&graphql, "graphql", "", "a GraphQL document, sent as a POST's JSON body (a GraphQL API's route decides per field)")
	f.StringVar(&variables, "variables", "", "the GraphQL variables, a JSON object (with --graphql)")
	return cmd
}

// graphqlBody is the JSON body of a GraphQL POST.
func graphqlBody(query, variables string) (string, error) {
	m := map[string]any{"query": query}
	if variables != "" {
		var v map[string]any
		if err := json.Unmarshal([]byte(variables), &v); err != nil {
			return "", fmt.Errorf("--variables: not a JSON object: %w", err)
		}
		m["variables"] = v
	}
	b, err := json.Marshal(m)
	return string(b), err
}

func explainLocal(ctx context.Context, cfgPath string, catalogFiles []string, req extauthz.ExplainRequest) (*extauthz.ExplainResult, error) {
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		return nil, err
	}
	if len(catalogFiles) > 0 {
		cfg.Catalog.Files = catalogFiles
	}
	if len(cfg.Catalog.Files) == 0 {
		return nil, fmt.Errorf("no catalog: give --catalog, --config with catalog.files, or --remote")
	}
	if len(cfg.Catalog.Files) == 0 {
		return nil, fmt.Errorf("no catalog: give --catalog PATH, --config with catalog.files, or --remote")
	}
	m, _, _ := compileCatalog(&cs.FileSource{Name: "files", Paths: cfg.Catalog.Files})
	var verifier extauthz.TokenVerifier
	if req.Token != "" {
		a, closeFn, err := newAuthzVerifier(ctx, cfg)
		if err != nil {
			return nil, err
		}
		defer closeFn()
		verifier = a
	}
	return extauthz.Explain(ctx, extauthz.NewEngine(m), m, verifier, req)
}

func explainRemote(admin string, req extauthz.ExplainRequest) (*extauthz.ExplainResult, error) {
	body, _ := json.Marshal(req)
	var res extauthz.ExplainResult
	if err := askAdmin(admin, "POST", "/debug/explain", body, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// askAdmin calls a running gatehouse's admin listener and decodes its JSON
// answer into out; errors name the remote and the problem.
func askAdmin(admin, method, path string, body []byte, out any) error {
	const fix = "(fix: give gatehouse's admin URL, admin.listen, e.g. http://127.0.0.1:9090)"
	c := &http.Client{Timeout: 15 * time.Second}
	target := strings.TrimSuffix(admin, "/") + path
	hreq, err := http.NewRequest(method, target, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("--remote %s: %w %s", admin, err, fix)
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(hreq)
	if err != nil {
		return fmt.Errorf("--remote %s: %w %s", admin, err, fix)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	text := strings.TrimSpace(string(b))
	switch {
	case resp.StatusCode == http.StatusMethodNotAllowed || (resp.StatusCode == http.StatusNotFound && strings.HasPrefix(text, "404 page not found")):
		return fmt.Errorf("--remote %s: no such endpoint %s (HTTP %d) %s", admin, target, resp.StatusCode, fix)
	case resp.StatusCode != 200:
		return fmt.Errorf("--remote %s: %s (HTTP %d)", admin, text, resp.StatusCode)
	}
	return json.Unmarshal(b, out)
}

// explainDecision prints a recent decision of a running gatehouse, and the
// explain command that shows every rule it considered.
func explainDecision(w io.Writer, admin, id string, asJSON bool) error {
	if admin == "" {
		return fmt.Errorf("--decision needs --remote: decisions are kept in the memory of the gatehouse that made them (fix: add --remote http://127.0.0.1:9090)")
	}
	var rec extauthz.AuditRecord
	if err := askAdmin(admin, "GET", "/debug/decisions/"+url.PathEscape(id), nil, &rec); err != nil {
		return err
	}
	return report(w, asJSON, rec, func(w io.Writer) { printDecision(w, admin, rec) }, rec.Decision == "allow")
}

// printDecision writes a recorded decision as text.
func printDecision(w io.Writer, admin string, rec extauthz.AuditRecord) {
	fmt.Fprintf(w, "%s (%d, %s) decision %s at %s, model %s\n", strings.ToUpper(rec.Decision), rec.Status, rec.Reason, rec.DecisionID, rec.Time.Format(time.RFC3339), rec.Model)
	fmt.Fprintf(w, "  request:   %s %s%s\n", rec.Method, rec.Host, rec.Path)
	if rec.RouteID != "" {
		fmt.Fprintf(w, "  route:     %s\n", rec.RouteID)
	}
	if rec.Principal != "" {
		fmt.Fprintf(w, "  principal: %s (%s) groups: %s\n", rec.Principal, rec.Kind, strings.Join(rec.Groups, ", "))
	}
	if rec.Rule != "" {
		fmt.Fprintf(w, "  matched:   %s\n", rec.Rule)
	}
	again := fmt.Sprintf("gatehouse explain --remote %s --method %s --url http://%s%s", admin, rec.Method, rec.Host, rec.Path)
	if rec.Principal != "" {
		again += " --principal " + rec.Principal
	}
	fmt.Fprintf(w, "  every rule, against the current catalog: %s\n", again)
}

// report prints v as indented JSON, or as text, and exits 1 unless the
// request is allowed (with JSON as with text: scripts test the exit code).
func report(w io.Writer, asJSON bool, v any, text func(io.Writer), allowed bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			return err
		}
	} else {
		text(w)
	}
	if !allowed {
		return exitCode(1)
	}
	return nil
}

// explainHandler serves POST /debug/explain from the running engine.
func explainHandler(srv *extauthz.Server) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req extauthz.ExplainRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
			http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
			return
		}
		eng, m := srv.Engine(), srv.Model()
		if eng == nil {
			http.Error(w, "not ready: no catalog compiled yet", http.StatusServiceUnavailable)
			return
		}
		res, err := extauthz.Explain(r.Context(), eng, m, srv.Verifier(), req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(res)
	})
}

func printExplain(w io.Writer, res *extauthz.ExplainResult) {
	verdict := "DENY"
	if res.Decision.Allow {
		verdict = "ALLOW"
	}
	fmt.Fprintf(w, "%s (%d, %s)\n", verdict, res.Decision.Status, res.Decision.Reason)
	fmt.Fprintf(w, "  request:   %s%s\n", res.Host, res.Path)
	if res.Route != nil {
		fmt.Fprintf(w, "  route:     %s -> %s\n", res.Route.ID, res.Route.Cluster)
	}
	if res.Principal != nil {
		fmt.Fprintf(w, "  principal: %s (%s) groups: %s\n", res.Principal.Name(), res.Principal.Kind, strings.Join(res.Principal.Groups, ", "))
		if len(res.Principal.Scopes) > 0 {
			fmt.Fprintf(w, "  scopes:    %s\n", strings.Join(res.Principal.Scopes, " "))
		}
		if res.Principal.Unmatched != "" {
			fmt.Fprintf(w, "  unmapped:  %s\n", res.Principal.Unmatched)
		}
	} else if res.Route != nil && !strings.HasPrefix(res.Decision.Reason, "invalid_token") {
		fmt.Fprintln(w, "  principal: none (a request without credentials)")
	}
	for _, p := range res.Decision.Principals {
		verdict := "denied"
		if p.Allow {
			verdict = "allowed"
		}
		fmt.Fprintf(w, "  %-9s  %s %s (%s)\n", p.Role+":", p.Ref, verdict, p.Reason)
	}
	if res.Decision.Rule != "" {
		fmt.Fprintf(w, "  matched:   %s\n", res.Decision.Rule)
	}
	if g := res.Decision.GraphQL; g != nil {
		fmt.Fprintf(w, "  graphql:   %s %s, %d fields, document %s, mode %s\n", g.OperationType, g.OperationName, g.Fields, g.DocumentHash, g.Mode)
		for _, d := range g.Denied {
			fmt.Fprintf(w, "    denied %s: %s\n", d.Field, d.Rule)
		}
		if g.WouldDeny {
			fmt.Fprintln(w, "    dry-run: the request passes; in reject mode it would be refused")
		}
		if g.Mode == "filter" && res.Decision.Allow && len(g.Denied) > 0 {
			fmt.Fprintln(w, "    filter: the denied fields are removed before the upstream; the answer has null and an error at each")
		}
		for _, e := range g.Errors {
			fmt.Fprintf(w, "    error %s: %s\n", e.Extensions["code"], e.Message)
		}
	}
	fmt.Fprintln(w, "  considered:")
	for _, s := range res.Decision.Steps {
		mark := "-"
		if s.Matched {
			mark = "+"
		}
		fmt.Fprintf(w, "    %s %s: %s\n", mark, s.Rule, s.Why)
	}
	printMissing(w, res)
	fmt.Fprintf(w, "  model:     %s\n", res.ModelVersion)
}

// printMissing prints what explain found would allow a refused principal.
func printMissing(w io.Writer, res *extauthz.ExplainResult) {
	if len(res.Missing) == 0 {
		return
	}
	var ref string
	for _, p := range res.Decision.Principals {
		if !p.Allow {
			ref = p.Ref
			break
		}
	}
	fmt.Fprintf(w, "  missing:   %s is allowed by none of the rules; any one of these would allow it:\n", ref)
	for _, m := range res.Missing {
		fmt.Fprintf(w, "    - %s\n", m)
	}
}

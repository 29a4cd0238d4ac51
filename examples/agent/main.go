// Command agent is an AI agent's MCP client, built with the official Go
// MCP SDK (github.com/modelcontextprotocol/go-sdk): it obtains its token
// (client credentials from the IdP, or a token it is given, such as one
// exchanged for a person) and calls an MCP server's tools through
// gatehouse and Envoy (docs/mcp.md).
//
//	agent --url http://127.0.0.1:10000/tools/mcp \
//	      --token-url http://idp/realms/gatehouse/protocol/openid-connect/token \
//	      --client-id copilot --client-secret copilot-secret \
//	      --list --call list_components --call 'deploy={"component":"orders"}'
//
// For a person, it exchanges the person's token and its own for a
// delegated one (RFC 8693, gatehouse's /.gatehouse/token; docs/agents.md):
//
//	agent --url … --token-url … --client-id copilot --client-secret … \
//	      --exchange-url http://127.0.0.1:10000/.gatehouse/token \
//	      --subject-token "$ALICE" --resource api:default/platform-tools --call …
//
// --actor-token gives the agent's own token instead of --token-url and the
// client secret (make demo: gatehouse token --client-id copilot).
//
// It prints one JSON line per action: {"action":"list","tools":[...]},
// {"action":"call","tool":...,"text":...} or {..."error":...}; a refused
// tool is an error line (the SDK surfaces gatehouse's JSON-RPC error), not
// a failure of the agent. It exits 1 when it cannot connect.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

type calls []string

func (c *calls) String() string     { return strings.Join(*c, ",") }
func (c *calls) Set(v string) error { *c = append(*c, v); return nil }

func main() {
	var endpoint, token, tokenURL, clientID, clientSecret, exchangeURL, subjectToken, actorToken, resource string
	var list bool
	var toCall calls
	flag.StringVar(&endpoint, "url", "", "the MCP endpoint (through the gateway), e.g. http://127.0.0.1:10000/tools/mcp")
	flag.StringVar(&token, "token", "", "a bearer token to use as is (e.g. one exchanged for a person); default: client credentials")
	flag.StringVar(&tokenURL, "token-url", "", "the IdP's token endpoint (client credentials)")
	flag.StringVar(&clientID, "client-id", os.Getenv("AGENT_CLIENT_ID"), "the agent's OAuth client id")
	flag.StringVar(&clientSecret, "client-secret", os.Getenv("AGENT_CLIENT_SECRET"), "the agent's OAuth client secret")
	flag.StringVar(&exchangeURL, "exchange-url", "", "gatehouse's token exchange (…/.gatehouse/token): act for --subject-token")
	flag.StringVar(&subjectToken, "subject-token", "", "the person's token the agent acts for (with --exchange-url)")
	flag.StringVar(&actorToken, "actor-token", "", "the agent's own client-credentials token for the exchange (default: client credentials from --token-url)")
	flag.StringVar(&resource, "resource", "", "the catalog entity the exchanged token is for (RFC 8707), e.g. api:default/platform-tools")
	flag.BoolVar(&list, "list", false, "list the tools")
	flag.Var(&toCall, "call", "call a tool: NAME or NAME={json arguments} (repeatable)")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if exchangeURL != "" {
		own, err := actorToken, error(nil)
		if own == "" {
			own, err = clientCredentials(ctx, tokenURL, clientID, clientSecret)
		}
		if err == nil {
			token, err = exchange(ctx, exchangeURL, subjectToken, own, resource)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "agent:", err)
			os.Exit(1)
		}
	}
	if err := run(ctx, os.Stdout, endpoint, token, tokenURL, clientID, clientSecret, list, toCall); err != nil {
		fmt.Fprintln(os.Stderr, "agent:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out io.Writer, endpoint, token, tokenURL, clientID, clientSecret string, list bool, toCall []string) error {
	if endpoint == "" {
		return errors.New("give --url")
	}
	if token == "" {
		if tokenURL == "" || clientID == "" {
			return errors.New("give --token, or --token-url with --client-id and --client-secret")
		}
		var err error
		if token, err = clientCredentials(ctx, tokenURL, clientID, clientSecret); err != nil {
			return err
		}
	}
	httpClient := &http.Client{Timeout: 30 * time.Second, Transport: bearer{token: token, next: http.DefaultTransport}}
	client := mcp.NewClient(&mcp.Implementation{Name: "gatehouse-example-agent", Version: "1.0.0"}, nil)
	session, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: httpClient, DisableStandaloneSSE: true, MaxRetries: -1}, nil)
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", endpoint, err)
	}
	defer session.Close()
	enc := json.NewEncoder(out)
	if list {
		res, err := session.ListTools(ctx, nil)
		line := map[string]any{"action": "list"}
		if err != nil {
			line["error"] = err.Error()
		} else {
			names := []string{}
			for _, t := range res.Tools {
				names = append(names, t.Name)
			}
			line["tools"] = names
		}
		enc.Encode(line)
	}
	for _, c := range toCall {
		name, rawArgs, _ := strings.Cut(c, "=")
		args := map[string]any{}
		if rawArgs != "" {
			if err := json.Unmarshal([]byte(rawArgs), &args); err != nil {
				return fmt.Errorf("--call %s: arguments are not a JSON object: %w", name, err)
			}
		}
		line := map[string]any{"action": "call", "tool": name}
		res, err := session.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
		switch {
		case err != nil:
			line["error"] = err.Error()
		case res.IsError:
			line["error"] = "tool error: " + text(res)
		default:
			line["text"] = text(res)
		}
		enc.Encode(line)
	}
	return nil
}

func text(res *mcp.CallToolResult) string {
	var parts []string
	for _, c := range res.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			parts = append(parts, t.Text)
		}
	}
	return strings.Join(parts, "\n")
}

// bearer adds the agent's token to every request of the MCP transport.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// clientCredentials is the agent's own token (RFC 6749 §4.4).
func clientCredentials(ctx context.Context, tokenURL, id, secret string) (string, error) {
	if tokenURL == "" || id == "" {
		return "", errors.New("give --token-url with --client-id and --client-secret")
	}
	return postToken(ctx, tokenURL, url.Values{"grant_type": {"client_credentials"}}, func(r *http.Request) {
		r.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	})
}

// exchange trades the person's token and the agent's own for a token that
// acts for the person (RFC 8693).
func exchange(ctx context.Context, exchangeURL, subject, actor, resource string) (string, error) {
	if subject == "" || resource == "" {
		return "", errors.New("--exchange-url needs --subject-token and --resource")
	}
	const at = "urn:ietf:params:oauth:token-type:access_token"
	form := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token": {subject}, "subject_token_type": {at}, "actor_token": {actor}, "actor_token_type": {at}, "resource": {resource}}
	return postToken(ctx, exchangeURL, form, nil)
}

// postToken posts a token request and returns the access token.
func postToken(ctx context.Context, endpoint string, form url.Values, auth func(*http.Request)) (string, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if auth != nil {
		auth(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("token endpoint %s: %w", endpoint, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var tr struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
	}
	if json.Unmarshal(b, &tr) != nil || resp.StatusCode != 200 || tr.AccessToken == "" {
		return "", fmt.Errorf("token endpoint %s answered %d %s", endpoint, resp.StatusCode, tr.Error)
	}
	return tr.AccessToken, nil
}

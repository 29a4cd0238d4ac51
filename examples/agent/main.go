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
	var endpoint, token, tokenURL, clientID, clientSecret string
	var list bool
	var toCall calls
	flag.StringVar(&endpoint, "url", "", "the MCP endpoint (through the gateway), e.g. http://127.0.0.1:10000/tools/mcp")
	flag.StringVar(&token, "token", "", "a bearer token to use as is (e.g. one exchanged for a person); default: client credentials")
	flag.StringVar(&tokenURL, "token-url", "", "the IdP's token endpoint (client credentials)")
	flag.StringVar(&clientID, "client-id", os.Getenv("AGENT_CLIENT_ID"), "the agent's OAuth client id")
	flag.StringVar(&clientSecret, "client-secret", os.Getenv("AGENT_CLIENT_SECRET"), "the agent's OAuth client secret")
	flag.BoolVar(&list, "list", false, "list the tools")
	flag.Var(&toCall, "call", "call a tool: NAME or NAME={json arguments} (repeatable)")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
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
	form := url.Values{"grant_type": {"client_credentials"}}
	req, err := http.NewRequestWithContext(ctx, "POST", tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("token endpoint: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var tr struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
	}
	if json.Unmarshal(b, &tr) != nil || resp.StatusCode != 200 || tr.AccessToken == "" {
		return "", fmt.Errorf("token endpoint answered %d %s", resp.StatusCode, tr.Error)
	}
	return tr.AccessToken, nil
}

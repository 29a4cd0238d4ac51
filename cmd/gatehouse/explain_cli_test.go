package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func runExplain(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := explainCmd()
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

// explain takes --catalog as serve does, explains a request without
// credentials, and exits 1 on DENY with --json as without it.
func TestExplainCatalogAnonymousAndJSONExit(t *testing.T) {
	cat := repoFile(t, "examples/catalog/catalog-info.yaml")
	out, err := runExplain(t, "--catalog", cat, "--url", "http://gw.example.com/orders/7")
	if ec, ok := err.(exitCode); !ok || ec != 1 || !strings.HasPrefix(out, "DENY (401, no_token)") || !strings.Contains(out, "principal: none (a request without credentials)") {
		t.Errorf("anonymous: %v\n%s", err, out)
	}
	out, err = runExplain(t, "--catalog", cat, "--json", "--principal", "user:default/bob", "--url", "http://gw.example.com/orders/7")
	var res struct {
		Decision struct{ Allow bool } `json:"decision"`
	}
	if ec, ok := err.(exitCode); !ok || ec != 1 || json.Unmarshal([]byte(out), &res) != nil || res.Decision.Allow {
		t.Errorf("--json DENY: exit %v\n%s", err, out)
	}
	if _, err := runExplain(t, "--catalog", cat, "--json", "--principal", "user:default/alice", "--url", "http://gw.example.com/orders/7"); err != nil {
		t.Errorf("--json ALLOW: %v", err)
	}
}

// --remote errors name the remote and the problem, with the HTTP status at
// the end, not a status line first; a wrong URL gets a fix.
func TestExplainRemoteErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/debug/explain" {
			http.NotFound(w, r)
			return
		}
		http.Error(w, `url "x": give an absolute URL such as http://orders.example.com/orders/7`, http.StatusBadRequest)
	}))
	defer srv.Close()
	_, err := runExplain(t, "--remote", srv.URL, "--url", "x")
	if want := "--remote " + srv.URL + `: url "x": give an absolute URL such as http://orders.example.com/orders/7 (HTTP 400)`; err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
	_, err = runExplain(t, "--remote", srv.URL+"/admin", "--url", "http://gw/x")
	if err == nil || !strings.Contains(err.Error(), "no explain endpoint") || !strings.Contains(err.Error(), "fix: give gatehouse's admin URL") {
		t.Errorf("wrong URL: %v", err)
	}
}

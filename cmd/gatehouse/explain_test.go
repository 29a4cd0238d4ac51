package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

// explain uses the same engine as Check, offline, on the example catalog.
func TestExplainOffline(t *testing.T) {
	cfg := writeConfig(t, "catalog:\n  files: ["+repoFile(t, "examples/catalog/catalog-info.yaml")+"]\n")
	run := func(args ...string) (string, error) {
		cmd := explainCmd()
		cmd.SilenceUsage, cmd.SilenceErrors = true, true
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetArgs(append([]string{"--config", cfg}, args...))
		err := cmd.Execute()
		return out.String(), err
	}
	out, err := run("--principal", "user:default/alice", "--method", "POST", "--url", "http://gw.example.com/orders/7")
	if err != nil || !strings.HasPrefix(out, "ALLOW (200, owner)") || !strings.Contains(out, "route:     component:default/orders@*/orders") {
		t.Fatalf("alice: %v\n%s", err, out)
	}
	out, err = run("--principal", "user:default/bob", "--url", "http://gw.example.com/orders/7")
	if err == nil || !strings.HasPrefix(out, "DENY (403, no_matching_rule)") || !strings.Contains(out, "- owner group:default/payments: the caller is not a member") {
		t.Fatalf("bob: %v\n%s", err, out)
	}
	out, _ = run("--principal", "user:default/bob", "--url", "http://gw.example.com/nowhere")
	if !strings.HasPrefix(out, "DENY (404, no_route)") {
		t.Fatalf("no route:\n%s", out)
	}
}

func repoFile(t *testing.T, rel string) string {
	t.Helper()
	abs, err := filepath.Abs(filepath.Join("..", "..", rel))
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

package extauthz

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/gatehouse-dev/gatehouse/internal/testcatalog"
	"github.com/gatehouse-dev/gatehouse/model"
)

const mcpAPI = "api:default/platform-tools"

// issuerVerifier is fakeVerifier that names its issuers (for the
// resource metadata).
type issuerVerifier struct{ *fakeVerifier }

func (issuerVerifier) Issuers() []string { return []string{"https://idp.example.com/realms/r"} }

// mcpServer is a Check server on testcatalog.PlatformMCP; every token's
// aud names the MCP API but "alice-other" (another audience) and
// "bob-url" (the route's URL).
func mcpServer(t testing.TB) (*Server, *fakeVerifier, *auditSink) {
	t.Helper()
	m := testcatalog.Must(t, testcatalog.PlatformMCP)
	exp := time.Now().Add(time.Hour)
	aud := []string{"gatehouse", mcpAPI}
	v := &fakeVerifier{ids: map[string]*Identity{
		"alice":       {Subject: "a1", Email: "alice@example.com", EmailVerified: true, Expiry: exp, Audiences: aud},
		"bob":         {Subject: "b1", Email: "bob@example.com", EmailVerified: true, Expiry: exp, Audiences: aud},
		"carol":       {Subject: "c1", Email: "carol@example.com", EmailVerified: true, Expiry: exp, Audiences: aud},
		"copilot":     {Subject: "svc-c", ClientID: "copilot", Machine: true, Expiry: exp, Audiences: aud},
		"mallory":     {Subject: "m1", Email: "mallory@example.com", EmailVerified: true, Expiry: exp, Audiences: aud},
		"alice-other": {Subject: "a1", Email: "alice@example.com", EmailVerified: true, Expiry: exp, Audiences: []string{"gatehouse", "api:default/other"}},
		"bob-url":     {Subject: "b1", Email: "bob@example.com", EmailVerified: true, Expiry: exp, Audiences: []string{"https://gw.example.com/tools/mcp/"}},
	}}
	signer, err := NewSigner(SignerConfig{Issuer: "gatehouse-test", Lifetime: 30 * time.Second, Rotate: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	sink := &auditSink{ch: make(chan AuditRecord, 10000)}
	audit := NewAudit(sink, 10000)
	t.Cleanup(audit.Close)
	srv := NewServer(Options{CacheSize: 1000, CacheTTL: time.Minute}, issuerVerifier{v}, signer, audit, nil)
	srv.SetModel(m)
	return srv, v, sink
}

func mcpReq(token, route, body string, headers map[string]string) *authv3.CheckRequest {
	if route == "" {
		route = testcatalog.PlatformMCPRoute
	}
	h := map[string]string{model.RouteHeader: route}
	if token != "" {
		h["authorization"] = "Bearer " + token
	}
	method := "POST"
	if body == "" {
		method = "GET"
	}
	for k, v := range headers {
		if k == ":method" {
			method = v
			continue
		}
		h[k] = v
	}
	path := "/tools/mcp"
	if strings.HasSuffix(route, "#oauth-protected-resource") {
		path = model.ResourceMetadataPrefix + "/tools/mcp"
	}
	req := checkReq("", method, path, h)
	req.Attributes.Request.Http.Body = body
	req.Attributes.Request.Http.Scheme = "https"
	return req
}

func callTool(id any, tool string) string {
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": map[string]any{"name": tool, "arguments": map[string]any{}}})
	return string(b)
}

func rpc(id any, method string) string {
	m := map[string]any{"jsonrpc": "2.0", "method": method}
	if id != nil {
		m["id"] = id
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// checkMCP is the HTTP status Check answers (200 for allowed requests and
// for refused tools, which are JSON-RPC errors), the body, and the audit
// record.
func checkMCP(t *testing.T, srv *Server, sink *auditSink, token, body string, headers map[string]string) (int, string, AuditRecord) {
	t.Helper()
	resp, err := srv.Check(context.Background(), mcpReq(token, "", body, headers))
	if err != nil {
		t.Fatal(err)
	}
	rec := nextRecord(t, sink)
	if resp.GetOkResponse() != nil {
		return 200, "", rec
	}
	d := resp.GetDeniedResponse()
	return int(d.GetStatus().GetCode()), d.GetBody(), rec
}

// Who may call what: a ruled tool needs its rule and the route; an
// unruled tool and every other method the route alone.
func TestMCPToolDecisions(t *testing.T) {
	srv, _, sink := mcpServer(t)
	cases := []struct {
		token, body string
		allow       bool
		reason      string
	}{
		{"alice", callTool(1, "deploy"), true, "owner"},                      // owner, deploy: [owners]
		{"alice", callTool(1, "list_components"), true, "owner"},             // unruled
		{"alice", callTool(1, "read_secret_ref"), false, "tool_forbidden"},   // owner, but not sre
		{"alice", callTool(1, "purge_admin"), true, "owner"},                 // *_admin: [alice]
		{"bob", callTool(1, "list_components"), true, "rule"},                // route by access rule
		{"bob", callTool(1, "deploy"), false, "tool_forbidden"},              // not an owner
		{"bob", callTool(1, "purge_admin"), false, "tool_forbidden"},         // not alice
		{"carol", callTool(1, "read_secret_ref"), true, "rule"},              // sre, route by rule
		{"carol", callTool(1, "read_secret_"), true, "rule"},                 // * matches nothing too
		{"carol", callTool(1, "deploy"), false, "tool_forbidden"},            // not an owner
		{"copilot", callTool(1, "list_components"), true, "consumer"},        // consumer
		{"copilot", callTool(1, "deploy"), false, "agent_limit"},             // an agent: read-only tools only
		{"copilot", callTool(1, "read_secret_ref"), false, "tool_forbidden"}, // read-only, but not sre
		{"mallory", callTool(1, "list_components"), false, "unknown_principal"},
		{"bob", rpc(1, "tools/list"), true, "rule"},
		{"bob", rpc(1, "initialize"), true, "rule"},
		{"bob", rpc(nil, "notifications/initialized"), true, "rule"},
		{"bob", rpc(2, "ping"), true, "rule"},
		{"bob", `{"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"uri":"secret://x"}}`, true, "rule"},
		{"bob", `{"jsonrpc":"2.0","id":7,"result":{}}`, true, "rule"}, // a response to the server
		{"bob", "", true, "rule"},                                     // GET: the server's stream
		{"bob", "[" + callTool(1, "list_components") + "," + callTool(2, "deploy") + "]", false, "tool_forbidden"},
		{"alice", "[" + callTool(1, "list_components") + "," + callTool(2, "deploy") + "]", true, "owner"},
		{"", callTool(1, "list_components"), false, "no_token"},
		{"alice-other", callTool(1, "list_components"), false, "invalid_token:wrong_audience"},
		{"bob-url", callTool(1, "list_components"), true, "rule"}, // the route's URL as audience
	}
	for i, c := range cases {
		status, body, rec := checkMCP(t, srv, sink, c.token, c.body, nil)
		allowed := status == 200 && body == ""
		if allowed != c.allow || rec.Reason != c.reason {
			t.Errorf("case %d %s %.60s: status %d reason %q body %s, want allow=%v reason %q", i, c.token, c.body, status, rec.Reason, body, c.allow, c.reason)
		}
		if !c.allow && (c.reason == "tool_forbidden" || c.reason == "agent_limit") && (status != 200 || !strings.Contains(body, `"code":-32001`)) {
			t.Errorf("case %d: a refused tool is a JSON-RPC error with HTTP 200, got %d %s", i, status, body)
		}
	}
}

// A refused call is a JSON-RPC error with the request's id (as sent:
// string, number, huge number), a batch an array of them; the decision
// is cached by tool, never by id, and the cached answer carries the new
// request's id.
func TestMCPDeniedAnswerIsJSONRPC(t *testing.T) {
	srv, v, sink := mcpServer(t)
	for _, id := range []string{`1`, `"abc"`, `12345678901234567890123456789`, `-0.5e10`, `null`} {
		body := `{"jsonrpc":"2.0","id":` + id + `,"method":"tools/call","params":{"name":"deploy"}}`
		status, out, rec := checkMCP(t, srv, sink, "bob", body, nil)
		var e struct {
			JSONRPC string          `json:"jsonrpc"`
			ID      json.RawMessage `json:"id"`
			Error   struct {
				Code    int               `json:"code"`
				Message string            `json:"message"`
				Data    map[string]string `json:"data"`
			} `json:"error"`
		}
		if err := json.Unmarshal([]byte(out), &e); err != nil || status != 200 || string(e.ID) != id || e.Error.Code != rpcForbidden ||
			!strings.Contains(e.Error.Message, "deploy") || e.Error.Data["decision_id"] == "" {
			t.Errorf("id %s: %d %s", id, status, out)
		}
		if strings.Contains(out, "owners") || strings.Contains(out, "payments") {
			t.Errorf("the answer names the policy: %s", out)
		}
		if rec.MCP == nil || rec.MCP.Tool != "deploy" || rec.MCP.DeniedTool != "deploy" || rec.Rule == "" {
			t.Errorf("audit %+v %+v", rec, rec.MCP)
		}
	}
	if c := v.calls.Load(); c != 1 {
		t.Errorf("the token was verified %d times for one tool: the cache must not key on ids", c)
	}
	// A batch: an array with an error for each request (not the notification).
	body := "[" + callTool("a", "list_components") + "," + rpc(nil, "notifications/progress") + "," + callTool(9, "deploy") + "]"
	status, out, _ := checkMCP(t, srv, sink, "bob", body, nil)
	var errs []struct {
		ID json.RawMessage `json:"id"`
	}
	if err := json.Unmarshal([]byte(out), &errs); err != nil || status != 200 || len(errs) != 2 || string(errs[0].ID) != `"a"` || string(errs[1].ID) != `9` {
		t.Errorf("batch: %d %s", status, out)
	}
	// The route refuses the caller altogether: 403, still JSON-RPC.
	status, out, _ = checkMCP(t, srv, sink, "mallory", callTool(5, "list_components"), nil)
	if status != 403 || !strings.Contains(out, `"id":5`) || !strings.Contains(out, `"jsonrpc":"2.0"`) {
		t.Errorf("route denial: %d %s", status, out)
	}
}

// 401 on an MCP route names the resource metadata (RFC 9728), which
// Check serves on the route's well-known path without credentials.
func TestMCPResourceMetadata(t *testing.T) {
	srv, _, sink := mcpServer(t)
	resp, _ := srv.Check(context.Background(), mcpReq("", "", callTool(1, "deploy"), nil))
	d := resp.GetDeniedResponse()
	want := `resource_metadata="https://gw.example.com/.well-known/oauth-protected-resource/tools/mcp"`
	found := false
	for _, h := range d.GetHeaders() {
		if h.GetHeader().GetKey() == "www-authenticate" && strings.HasPrefix(h.GetHeader().GetValue(), "Bearer ") && strings.Contains(h.GetHeader().GetValue(), want) {
			found = true
		}
	}
	if d.GetStatus().GetCode() != 401 || !found {
		t.Fatalf("401 challenge: %v", d)
	}
	nextRecord(t, sink)
	for _, tok := range []string{"alice-other"} {
		resp, _ = srv.Check(context.Background(), mcpReq(tok, "", callTool(1, "deploy"), nil))
		if d := resp.GetDeniedResponse(); d.GetStatus().GetCode() != 401 || !strings.Contains(d.String(), "resource_metadata") {
			t.Errorf("wrong audience: %v", d)
		}
		nextRecord(t, sink)
	}
	resp, _ = srv.Check(context.Background(), mcpReq("", testcatalog.PlatformMCPRoute+"#oauth-protected-resource", "", nil))
	d = resp.GetDeniedResponse()
	var doc ResourceMetadata
	if err := json.Unmarshal([]byte(d.GetBody()), &doc); err != nil || d.GetStatus().GetCode() != 200 ||
		doc.Resource != "https://gw.example.com/tools/mcp" || len(doc.AuthorizationServers) != 1 || doc.AuthorizationServers[0] != "https://idp.example.com/realms/r" ||
		doc.BearerMethodsSupported[0] != "header" {
		t.Fatalf("metadata: %d %s", d.GetStatus().GetCode(), d.GetBody())
	}
}

// The mirror headers of newer revisions must agree with the body.
func TestMCPHeaders(t *testing.T) {
	srv, _, sink := mcpServer(t)
	cases := []struct {
		headers map[string]string
		body    string
		ok      bool
	}{
		{map[string]string{"mcp-method": "tools/call", "mcp-name": "list_components"}, callTool(1, "list_components"), true},
		{map[string]string{"mcp-method": "tools/call", "mcp-name": "list_components"}, callTool(1, "deploy"), false}, // a forbidden tool behind an allowed name
		{map[string]string{"mcp-method": "tools/list"}, callTool(1, "list_components"), false},
		{map[string]string{"mcp-name": "deploy"}, callTool(1, "list_components"), false},
		{map[string]string{"mcp-method": "tools/call"}, "[" + callTool(1, "list_components") + "]", false},
		{map[string]string{"mcp-protocol-version": "2026-07-28"}, callTool(1, "list_components"), false}, // required from then on
		{map[string]string{"mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call"}, callTool(1, "list_components"), false},
		{map[string]string{"mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call", "mcp-name": "list_components"}, callTool(1, "list_components"), true},
		{map[string]string{"mcp-protocol-version": "2025-06-18"}, "[" + callTool(1, "list_components") + "]", false}, // no batches after 2025-03-26
		{map[string]string{"mcp-protocol-version": "2025-03-26"}, "[" + callTool(1, "list_components") + "]", true},
		{map[string]string{"mcp-method": "tools/call", "mcp-name": "=?base64?bGlzdF9jb21wb25lbnRz?="}, callTool(1, "list_components"), true}, // base64 form
		{map[string]string{"mcp-method": "tools/call", "mcp-name": "=?base64?ZGVwbG95?="}, callTool(1, "list_components"), false},            // "deploy"
		{map[string]string{"mcp-method": "tools/call", "mcp-name": "=?base64?!!?="}, callTool(1, "list_components"), false},
	}
	for i, c := range cases {
		status, body, rec := checkMCP(t, srv, sink, "bob", c.body, c.headers)
		if (status == 200 && body == "") != c.ok {
			t.Errorf("case %d: %d %s (%s)", i, status, body, rec.Reason)
		}
		if !c.ok && (status != 400 || !strings.Contains(body, `"jsonrpc":"2.0"`)) {
			t.Errorf("case %d: want 400 with a JSON-RPC error, got %d %s", i, status, body)
		}
	}
}

// Hostile bodies: refused with 400 and a JSON-RPC error, never allowed
// as something else.
func TestMCPInspectHostile(t *testing.T) {
	long := strings.Repeat("9", 200)
	cases := []struct{ name, body string }{
		{"empty", ""},
		{"spaces", "   "},
		{"not json", "tools/call deploy"},
		{"string", `"tools/call"`},
		{"number", `1`},
		{"trailing", callTool(1, "list_components") + `{"x":1}`},
		{"trailing garbage", callTool(1, "list_components") + `]`},
		{"truncated", callTool(1, "list_components")[:30]},
		{"duplicate method", `{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"deploy"}}`},
		{"duplicate name", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_components","name":"deploy"}}`},
		{"duplicate id", `{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}`},
		{"case twin method", `{"jsonrpc":"2.0","id":1,"method":"tools/list","Method":"tools/call","params":{"name":"deploy"}}`},
		{"case twin name", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_components","NAME":"deploy"}}`},
		{"kelvin twin", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_components","nAme":"deploy"}}`},
		{"escaped dup", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_components","n\u0061me":"deploy"}}`},
		{"no jsonrpc", `{"id":1,"method":"tools/call","params":{"name":"list_components"}}`},
		{"jsonrpc 1", `{"jsonrpc":"1.0","id":1,"method":"ping"}`},
		{"jsonrpc number", `{"jsonrpc":2.0,"id":1,"method":"ping"}`},
		{"object id", `{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}`},
		{"array id", `{"jsonrpc":"2.0","id":[1],"method":"ping"}`},
		{"bool id", `{"jsonrpc":"2.0","id":true,"method":"ping"}`},
		{"huge id", `{"jsonrpc":"2.0","id":` + long + `,"method":"ping"}`},
		{"method number", `{"jsonrpc":"2.0","id":1,"method":5}`},
		{"method empty", `{"jsonrpc":"2.0","id":1,"method":""}`},
		{"method and result", `{"jsonrpc":"2.0","id":1,"method":"ping","result":{}}`},
		{"neither", `{"jsonrpc":"2.0","id":1}`},
		{"params string", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":"deploy"}`},
		{"params array", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":["deploy"]}`},
		{"params null", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":null}`},
		{"no params", `{"jsonrpc":"2.0","id":1,"method":"tools/call"}`},
		{"name number", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":1}}`},
		{"name empty", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":""}}`},
		{"name long", callTool(1, strings.Repeat("a", 129))},
		{"invalid utf8", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"de\xffploy\"}}"},
		{"empty batch", `[]`},
		{"nested batch", `[[` + callTool(1, "deploy") + `]]`},
		{"batch of numbers", `[1,2]`},
		{"batch too long", "[" + strings.TrimSuffix(strings.Repeat(rpc(1, "ping")+",", 21), ",") + "]"},
		{"read without uri", `{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{}}`},
	}
	srv, _, sink := mcpServer(t)
	for _, c := range cases {
		in := inspectMCP("POST", nil, []byte(c.body))
		if in.deny == nil || in.deny.Status != 400 || in.deny.MCP == nil || in.deny.MCP.code == 0 {
			t.Errorf("%s: not refused: %+v", c.name, in)
			continue
		}
		// Through Check, for the owner (who may call anything but
		// read_secret_*): still refused, with a JSON-RPC error.
		status, body, _ := checkMCP(t, srv, sink, "alice", c.body, map[string]string{":method": "POST"})
		var e struct {
			JSONRPC string `json:"jsonrpc"`
			Error   struct {
				Code int `json:"code"`
			} `json:"error"`
		}
		if status != 400 || json.Unmarshal([]byte(body), &e) != nil || e.JSONRPC != "2.0" || e.Error.Code == 0 {
			t.Errorf("%s: Check answered %d %s", c.name, status, body)
		}
	}
	// What is read: escapes decoded, so an escaped name is the tool itself.
	in := inspectMCP("POST", nil, []byte(`{"jsonrpc":"2.0","id":1,"method":"tools\/call","params":{"name":"d\u0065ploy","arguments":{"name":"x"}}}`))
	if in.deny != nil || len(in.msgs) != 1 || in.msgs[0].method != "tools/call" || in.msgs[0].name != "deploy" {
		t.Fatalf("escapes: %+v %+v", in, in.deny)
	}
}

// FuzzMCPCheck: whatever the body, Check never panics, and bob (route
// allowed, no tool rule for him) is never let through with a body that
// any JSON reading (exact names, or Go's case-insensitive last-wins
// decoding) takes for a tools/call of deploy.
func FuzzMCPCheck(f *testing.F) {
	for _, s := range []string{
		callTool(1, "deploy"), callTool(1, "list_components"), rpc(1, "tools/list"),
		"[" + callTool(1, "list_components") + "," + callTool(2, "deploy") + "]",
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_components","NAME":"deploy"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/list","Method":"tools/call","params":{"name":"deploy"}}`,
		`{"jsonrpc":"2.0","id":1e400,"method":"ping"}`, `[]`, `{}`, ``,
	} {
		f.Add(s, "", "")
	}
	f.Add(callTool(1, "deploy"), "tools/call", "list_components")
	srv, _, sink := mcpServer(f)
	go func() {
		for range sink.ch {
		}
	}()
	f.Fuzz(func(t *testing.T, body, hm, hn string) {
		h := map[string]string{}
		if hm != "" {
			h["mcp-method"] = hm
		}
		if hn != "" {
			h["mcp-name"] = hn
		}
		resp, err := srv.Check(context.Background(), mcpReq("bob", "", body, h))
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetOkResponse() == nil {
			return
		}
		if callsDeploy([]byte(body)) {
			t.Fatalf("bob was allowed a body that calls deploy: %q", body)
		}
	})
}

// callsDeploy: some message of body, read by encoding/json (which
// matches names without case and keeps the last duplicate) or as exact
// maps, is a tools/call of deploy.
func callsDeploy(body []byte) bool {
	type msg struct {
		Method string `json:"method"`
		Params struct {
			Name string `json:"name"`
		} `json:"params"`
	}
	var one msg
	var many []msg
	check := func(m msg) bool { return m.Method == "tools/call" && m.Params.Name == "deploy" }
	if json.Unmarshal(body, &one) == nil && check(one) {
		return true
	}
	if json.Unmarshal(body, &many) == nil {
		for _, m := range many {
			if check(m) {
				return true
			}
		}
	}
	return false
}

// The cache key depends on the tools, not the ids: a thousand calls of
// one tool verify the token once.
func TestMCPCacheKey(t *testing.T) {
	srv, v, sink := mcpServer(t)
	for i := 0; i < 50; i++ {
		status, body, _ := checkMCP(t, srv, sink, "bob", callTool(i, "list_components"), nil)
		if status != 200 || body != "" {
			t.Fatalf("call %d: %d %s", i, status, body)
		}
	}
	status, body, _ := checkMCP(t, srv, sink, "bob", callTool(51, "deploy"), nil)
	if status != 200 || !strings.Contains(body, `"id":51`) {
		t.Fatalf("another tool after cached calls: %d %s", status, body)
	}
	if c := v.calls.Load(); c != 2 {
		t.Errorf("verified %d times, want 2 (one per tool)", c)
	}
}

// explain --mcp-tool: the same decision, with the tool's rule in the steps.
func TestMCPExplain(t *testing.T) {
	m := testcatalog.Must(t, testcatalog.PlatformMCP)
	e := NewEngine(m)
	for _, c := range []struct {
		who, tool string
		allow     bool
	}{{"user:default/bob", "deploy", false}, {"user:default/alice", "deploy", true}, {"user:default/bob", "list_components", true}} {
		res, err := Explain(context.Background(), e, m, nil, ExplainRequest{Principal: c.who, Method: "POST", URL: "http://gw/tools/mcp", Body: callTool(1, c.tool)})
		if err != nil {
			t.Fatal(err)
		}
		if res.Decision.Allow != c.allow || res.Decision.MCP == nil || res.Decision.MCP.Tool != c.tool {
			t.Errorf("%s %s: %+v", c.who, c.tool, res.Decision)
		}
		found := false
		for _, s := range res.Decision.Steps {
			if s.Rule == "mcp tool "+c.tool {
				found = true
			}
		}
		if !found {
			t.Errorf("%s %s: no tool step in %+v", c.who, c.tool, res.Decision.Steps)
		}
	}
}

// tools/list answers keep the tools every principal may call: bob (route
// by rule) loses deploy and *_admin and read_secret_*; alice with the
// agent copilot keeps only what both may (the agent is limited to
// read-only tools); JSON and SSE answers alike; an unreadable answer is
// replaced, never passed on.
func TestMCPToolsListFilter(t *testing.T) {
	m := testcatalog.Must(t, testcatalog.PlatformMCP)
	e := NewEngine(m)
	principal := func(ref string) *Principal {
		p := e.principalByRef(ref, nil)
		if p == nil {
			t.Fatalf("no %s", ref)
		}
		return p
	}
	list := `{"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"list_components","inputSchema":{}},{"name":"deploy"},{"name":"read_secret_ref"},{"name":"purge_admin"},{"name":"whoami"}],"nextCursor":"x"}}`
	filter := func(sub *Subject, method, body string) ResponseFilter {
		req, denied := e.request(testcatalog.PlatformMCPRoute, method, "/tools/mcp", "gw")
		if denied != nil {
			t.Fatal(denied)
		}
		req.Body = []byte(body)
		out := mcpFilter{}.FilterRequest(FilterInput{Request: &req, Subject: sub})
		if method == "GET" {
			if out.Immediate == nil || out.Immediate.Status != 405 {
				t.Fatalf("GET: %+v", out)
			}
			return nil
		}
		return out.Response
	}
	names := func(t *testing.T, body []byte) string {
		var r struct {
			ID     int `json:"id"`
			Result struct {
				Tools []struct {
					Name string `json:"name"`
				} `json:"tools"`
				NextCursor string `json:"nextCursor"`
			} `json:"result"`
		}
		if err := json.Unmarshal(body, &r); err != nil || r.ID != 7 || r.Result.NextCursor != "x" {
			t.Fatalf("filtered answer %s: %v", body, err)
		}
		var out []string
		for _, tl := range r.Result.Tools {
			out = append(out, tl.Name)
		}
		return strings.Join(out, ",")
	}
	bob := &Subject{User: principal("user:default/bob"), Auth: AuthBearer}
	f := filter(bob, "POST", rpc(7, "tools/list"))
	if got := names(t, f.FilterResponse(200, map[string]string{"content-type": "application/json"}, []byte(list))); got != "list_components,whoami" {
		t.Errorf("bob: %s", got)
	}
	alice := &Subject{User: principal("user:default/alice"), Auth: AuthBearer}
	f = filter(alice, "POST", rpc(7, "tools/list"))
	if got := names(t, f.FilterResponse(200, map[string]string{"content-type": "application/json"}, []byte(list))); got != "list_components,deploy,purge_admin,whoami" {
		t.Errorf("alice: %s", got)
	}
	both := &Subject{User: principal("user:default/alice"), Actor: principal("component:default/copilot"), Auth: AuthBearer}
	f = filter(both, "POST", rpc(7, "tools/list"))
	sse := "event: message\ndata: " + list + "\n\n"
	out := f.FilterResponse(200, map[string]string{"content-type": "text/event-stream"}, []byte(sse))
	data, ok := strings.CutPrefix(strings.Split(string(out), "\n")[1], "data: ")
	if !ok {
		t.Fatalf("SSE: %q", out)
	}
	if got := names(t, []byte(data)); got != "list_components,whoami" { // read_secret_ref: copilot may, alice may not
		t.Errorf("alice with copilot: %s", got)
	}
	// Other answers untouched; no filter for other methods.
	if f := filter(bob, "POST", callTool(1, "list_components")); f != nil {
		t.Error("a tools/call got a response filter")
	}
	filter(bob, "GET", "")
	for _, bad := range []string{`not json`, `{"jsonrpc":"2.0","id":7,"result":{"tools":"x"}}`, `{"jsonrpc":"2.0","id":7,"result":{"tools":[{"nom":"deploy"}]}}`,
		`{"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"deploy","name":"whoami"}]}}`, `{"jsonrpc":"2.0","id":8,"id":7,"result":{"tools":[{"name":"deploy"}]}}`,
		`{"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"whoami","Name":"deploy"}]}}`, `{"jsonrpc":"2.0","ID":7,"id":8,"result":{"tools":[{"name":"deploy"}]}}`} {
		out := filter(bob, "POST", rpc(7, "tools/list")).FilterResponse(200, map[string]string{"content-type": "application/json"}, []byte(bad))
		if !strings.Contains(string(out), `"code":-32603`) || strings.Contains(string(out), "deploy") {
			t.Errorf("unreadable %q: %s", bad, out)
		}
	}
	// An error answer, or another id, passes as it is.
	other := `{"jsonrpc":"2.0","id":8,"result":{"tools":[{"name":"deploy"}]}}`
	if out := filter(bob, "POST", rpc(7, "tools/list")).FilterResponse(200, map[string]string{"content-type": "application/json"}, []byte(other)); !strings.Contains(string(out), "deploy") {
		t.Errorf("another id: %s", out)
	}
}

// gatehouse.dev/assertion-header: authorization sends the assertion as the
// upstream's bearer token in place of the caller's (Backstage's MCP actions
// server verifies it with externalAccess jwks).
func TestAssertionAsBearer(t *testing.T) {
	src := strings.Replace(testcatalog.PlatformMCP, "    gatehouse.dev/path-prefix: /tools\n", "    gatehouse.dev/path-prefix: /tools\n    gatehouse.dev/assertion-header: authorization\n", 1)
	srv, _, sink := mcpServer(t)
	srv.SetModel(testcatalog.Must(t, src))
	resp, _ := srv.Check(context.Background(), mcpReq("bob", "", callTool(1, "list_components"), nil))
	nextRecord(t, sink)
	ok := resp.GetOkResponse()
	if ok == nil {
		t.Fatalf("denied: %v", resp.GetDeniedResponse())
	}
	hs := map[string]string{}
	for _, h := range ok.GetHeaders() {
		hs[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
	}
	if a := hs[model.AssertionHeader]; a == "" || hs["authorization"] != "Bearer "+a || strings.Contains(hs["authorization"], "bob") {
		t.Fatalf("headers: %v", hs)
	}
	// Without the annotation the caller's Authorization is removed and none is set.
	srv, _, sink = mcpServer(t)
	resp, _ = srv.Check(context.Background(), mcpReq("bob", "", callTool(1, "list_components"), nil))
	nextRecord(t, sink)
	for _, h := range resp.GetOkResponse().GetHeaders() {
		if h.GetHeader().GetKey() == "authorization" {
			t.Fatal("authorization set without the annotation")
		}
	}
	if !slices.Contains(resp.GetOkResponse().GetHeadersToRemove(), "authorization") {
		t.Fatal("the caller's token is not removed")
	}
}

// FuzzMCPToolsListFilter: whatever the upstream answers, the filter never
// panics and never lets through, in an answer a JSON reader takes for the
// tools/list result (JSON or an SSE data line), a tool bob may not call.
func FuzzMCPToolsListFilter(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"list_components"},{"name":"deploy"}]}}`,
		`[{"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"deploy"}]}}]`,
		`{"jsonrpc":"2.0","id":7.0,"result":{"tools":[{"name":"deploy"}]}}`,
		`{"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"deploy","name":"whoami"}]}}`,
		`{"jsonrpc":"2.0","id":7,"result":{"tools":[{"Name":"deploy"}]}}`,
		`{"id":7,"id":8,"result":{"tools":[{"name":"deploy"}]}}`,
		"data: {\"id\":7,\"result\":{\"tools\":[{\"name\":\"deploy\"}]}}\n\n", `null`, ``,
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	m := testcatalog.Must(f, testcatalog.PlatformMCP)
	e := NewEngine(m)
	bob := &Subject{User: e.principalByRef("user:default/bob", nil), Auth: AuthBearer}
	f.Fuzz(func(t *testing.T, body string, sse bool) {
		req, _ := e.request(testcatalog.PlatformMCPRoute, "POST", "/tools/mcp", "gw")
		req.Body = []byte(rpc(7, "tools/list"))
		rf := mcpFilter{}.FilterRequest(FilterInput{Request: &req, Subject: bob}).Response
		ct := "application/json"
		if sse {
			ct = "text/event-stream"
		}
		out := rf.FilterResponse(200, map[string]string{"content-type": ct}, []byte(body))
		if out == nil {
			out = []byte(body)
		}
		check := func(data []byte) {
			type answer struct {
				ID     json.RawMessage `json:"id"`
				Result struct {
					Tools []struct {
						Name string `json:"name"`
					} `json:"tools"`
				} `json:"result"`
			}
			var one answer
			var many []answer
			var all []answer
			if json.Unmarshal(data, &one) == nil {
				all = append(all, one)
			}
			if json.Unmarshal(data, &many) == nil {
				all = append(all, many...)
			}
			for _, a := range all {
				if canonicalID(string(a.ID)) != "7" {
					continue
				}
				for _, tl := range a.Result.Tools {
					if tl.Name == "deploy" || strings.HasSuffix(tl.Name, "_admin") || strings.HasPrefix(tl.Name, "read_secret_") {
						t.Fatalf("bob sees %q in %q (from %q)", tl.Name, data, body)
					}
				}
			}
		}
		if sse {
			for _, l := range strings.Split(string(out), "\n") {
				if d, ok := strings.CutPrefix(l, "data:"); ok {
					check([]byte(strings.TrimSpace(d)))
				}
			}
			return
		}
		check(out)
	})
}

func TestMCPToolsListFilterIDForms(t *testing.T) {
	e := NewEngine(testcatalog.Must(t, testcatalog.PlatformMCP))
	bob := &Subject{User: e.principalByRef("user:default/bob", nil), Auth: AuthBearer}
	req, _ := e.request(testcatalog.PlatformMCPRoute, "POST", "/tools/mcp", "gw")
	req.Body = []byte(rpc(7, "tools/list"))
	rf := mcpFilter{}.FilterRequest(FilterInput{Request: &req, Subject: bob}).Response
	for _, id := range []string{`7`, `"7"`, `7.0`, `7e0`} {
		out := rf.FilterResponse(200, map[string]string{"content-type": "application/json"}, []byte(`{"jsonrpc":"2.0","id":`+id+`,"result":{"tools":[{"name":"deploy"},{"name":"whoami"}]}}`))
		if out == nil || strings.Contains(string(out), "deploy") {
			t.Errorf("id %s: %s", id, out)
		}
	}
}

// An answer whose headers never reached the filter (status 0: a route
// without ExtProcResponseHeaders) is not passed through unfiltered.
func TestMCPToolsListFilterWithoutHeaders(t *testing.T) {
	e := NewEngine(testcatalog.Must(t, testcatalog.PlatformMCP))
	bob := &Subject{User: e.principalByRef("user:default/bob", nil), Auth: AuthBearer}
	req, _ := e.request(testcatalog.PlatformMCPRoute, "POST", "/tools/mcp", "gw")
	req.Body = []byte(rpc(7, "tools/list"))
	rf := mcpFilter{}.FilterRequest(FilterInput{Request: &req, Subject: bob}).Response
	answer := `event: message` + "\n" + `data: {"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"deploy"},{"name":"whoami"}]}}` + "\n\n"
	out := rf.FilterResponse(0, nil, []byte(answer))
	if out == nil || strings.Contains(string(out), "deploy") || !strings.Contains(string(out), "-32603") {
		t.Fatalf("without headers: %s", out)
	}
	if out := rf.FilterResponse(200, map[string]string{"content-type": "text/event-stream"}, []byte(answer)); out == nil || strings.Contains(string(out), "deploy") || !strings.Contains(string(out), "whoami") {
		t.Fatalf("event stream: %s", out)
	}
}

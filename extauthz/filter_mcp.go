package extauthz

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/gatehouse-dev/gatehouse/model"
)

// The MCP body filter (docs/mcp.md, "tools/list"): on MCP routes served
// through ext_proc, the answer to a tools/list keeps only the tools every
// principal of the request (person and agent) may call: the same tool
// rules, agent limits and route criteria as a tools/call of each. Other
// requests and answers pass untouched. An answer it cannot read is
// replaced by a JSON-RPC error (never passed on unfiltered).
func init() { RegisterBodyFilter(model.InspectorMCP, mcpFilter{}) }

type mcpFilter struct{}

func (mcpFilter) FilterRequest(in FilterInput) FilterOutput {
	req := in.Request
	if req.policy == nil || req.policy.MCP == nil || in.Subject == nil {
		return FilterOutput{}
	}
	if req.Method == "GET" {
		// The server's standalone stream: answers on MCP routes are
		// buffered (tools/list is rewritten), so a stream that never ends
		// cannot be relayed; 405 is the MCP answer for "no such stream",
		// which clients handle.
		return FilterOutput{Immediate: &FilterAnswer{Status: 405, ContentType: "application/json",
			Body: []byte(`{"error":"method_not_allowed","detail":"the gateway does not relay the server's standalone SSE stream"}` + "\n")}}
	}
	m := mcpOf(req)
	ids := map[string]bool{}
	for _, msg := range m.msgs {
		if msg.method == "tools/list" && msg.id != "" {
			ids[canonicalID(msg.id)] = true
		}
	}
	if len(ids) == 0 {
		return FilterOutput{}
	}
	return FilterOutput{Response: &toolsListFilter{rp: req.policy, sub: in.Subject, ids: ids}}
}

// toolsListFilter rewrites the answer to one request's tools/list
// messages (by id).
type toolsListFilter struct {
	rp  *routePolicy
	sub *Subject
	ids map[string]bool
}

// allowed: every principal of the subject may call the tool.
func (f *toolsListFilter) allowed(tool string) bool {
	ops := []Operation{{Kind: model.InspectorMCP, Method: "tools/call", Name: tool, HTTPMethod: "POST", Path: f.rp.MCP.Prefix, ReadOnly: toolMatches(f.rp.MCP.ReadOnly, tool)}}
	n := 0
	for _, pr := range f.sub.chain() {
		if pr.p == nil {
			continue
		}
		n++
		if mcpVerdict(f.rp, pr.p, ops, false, nil).outcome != allowed {
			return false
		}
	}
	return n > 0
}

func (f *toolsListFilter) FilterResponse(status int, headers map[string]string, body []byte) []byte {
	switch {
	case status == 0:
		// The answer's headers never came (a route configured without
		// ExtProcResponseHeaders): whether it is JSON or an event stream
		// is unknown, so nothing of it passes.
		return f.unreadable()
	case status != 200:
		return nil
	}
	if strings.HasPrefix(strings.ToLower(headers["content-type"]), "text/event-stream") {
		return f.filterSSE(body)
	}
	out, ok := f.filterJSON(body)
	if !ok {
		return f.unreadable()
	}
	return out
}

// filterSSE rewrites the data of each event (one JSON-RPC message per
// event, on one data line as the MCP SDKs write them).
func (f *toolsListFilter) filterSSE(body []byte) []byte {
	lines := bytes.Split(body, []byte("\n"))
	for i, l := range lines {
		rest, found := bytes.CutPrefix(l, []byte("data:"))
		if !found {
			continue
		}
		data := bytes.TrimSpace(rest)
		if len(data) == 0 || data[0] != '{' && data[0] != '[' {
			continue
		}
		out, ok := f.filterJSON(data)
		if !ok {
			return f.unreadable()
		}
		lines[i] = append([]byte("data: "), out...)
	}
	return bytes.Join(lines, []byte("\n"))
}

// filterJSON filters a JSON-RPC answer or a batch of them.
func (f *toolsListFilter) filterJSON(body []byte) ([]byte, bool) {
	t := bytes.TrimSpace(body)
	if !jsontext.Value(t).IsValid() {
		// Not JSON, invalid UTF-8, or a name twice in an object: a client
		// could read another id or tool name than this filter does.
		return nil, false
	}
	if len(t) > 0 && t[0] == '[' {
		var batch []json.RawMessage
		if json.Unmarshal(t, &batch) != nil {
			return nil, false
		}
		for i, m := range batch {
			out, ok := f.filterMessage(m)
			if !ok {
				return nil, false
			}
			batch[i] = out
		}
		b, err := json.Marshal(batch)
		return b, err == nil
	}
	return f.filterMessage(t)
}

// filterMessage filters the tools of one answer whose id is a tools/list
// of the request; any other message is returned as it is.
func (f *toolsListFilter) filterMessage(m json.RawMessage) (json.RawMessage, bool) {
	var msg map[string]json.RawMessage
	if json.Unmarshal(m, &msg) != nil || hasCaseTwin(msg, "jsonrpc", "id", "result", "error") {
		return nil, false
	}
	id, ok := msg["id"]
	if !ok || !f.ids[canonicalID(string(id))] {
		return m, true
	}
	res, ok := msg["result"]
	if !ok {
		return m, true // an error answer
	}
	var result map[string]json.RawMessage
	var tools []json.RawMessage
	if json.Unmarshal(res, &result) != nil || hasCaseTwin(result, "tools") || json.Unmarshal(result["tools"], &tools) != nil {
		return nil, false
	}
	kept := make([]json.RawMessage, 0, len(tools))
	for _, t := range tools {
		var tool map[string]json.RawMessage
		var name string
		if json.Unmarshal(t, &tool) != nil || hasCaseTwin(tool, "name") || json.Unmarshal(tool["name"], &name) != nil || name == "" {
			return nil, false
		}
		if f.allowed(name) {
			kept = append(kept, t)
		}
	}
	var err error
	if result["tools"], err = json.Marshal(kept); err != nil {
		return nil, false
	}
	if msg["result"], err = json.Marshal(result); err != nil {
		return nil, false
	}
	out, err := json.Marshal(msg)
	return out, err == nil
}

// hasCaseTwin: a member name that differs from one of names only in case
// (a client decoding without case could read it instead).
func hasCaseTwin(m map[string]json.RawMessage, names ...string) bool {
	for k := range m {
		if caseTwin(k, names) != "" {
			return true
		}
	}
	return false
}

// unreadable replaces an answer gatehouse could not filter.
func (f *toolsListFilter) unreadable() []byte {
	b, _ := json.Marshal(rpcError{JSONRPC: "2.0", ID: json.RawMessage("null"), Error: rpcErrorBody{Code: -32603, Message: "gatehouse: the tools/list answer could not be filtered"}})
	return b
}

// canonicalID is an id in one form, so the answer's id matches the
// request's however a client compares them: a string's text, a number's
// text as encoding/json writes it (7 and "7" are the same here: a lenient
// client must not find an unfiltered answer under either).
func canonicalID(raw string) string {
	var v any
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.UseNumber()
	if dec.Decode(&v) != nil {
		return raw
	}
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		// 7, 7.0 and 7e0 alike (ids that differ beyond float precision
		// compare equal: more answers filtered, never fewer).
		if f, err := strconv.ParseFloat(string(x), 64); err == nil {
			return strconv.FormatFloat(f, 'g', -1, 64)
		}
	}
	b, _ := json.Marshal(v)
	return string(b)
}

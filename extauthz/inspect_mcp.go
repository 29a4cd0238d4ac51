package extauthz

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/gatehouse-dev/gatehouse/internal/clip"
	"github.com/gatehouse-dev/gatehouse/model"
)

// The MCP inspector (docs/mcp.md): reads the JSON-RPC message (or batch)
// a client POSTs to an MCP route and yields one Operation per message:
// Method the JSON-RPC method, Name the tool of a tools/call. The
// Mcp-Method and Mcp-Name headers of newer protocol revisions must agree
// with the body. Anything it cannot read is refused (400) with a
// JSON-RPC error; nothing is guessed. Duplicate member names anywhere in
// the message, invalid UTF-8 and trailing data are refused: a server that
// reads the last "name" while gatehouse read the first would run another
// tool than the one decided.

// JSON-RPC and MCP error codes of the answers gatehouse gives.
const (
	rpcParseError     = -32700
	rpcInvalidRequest = -32600
	rpcInvalidParams  = -32602
	// rpcForbidden: the caller may not do this (an implementation-defined
	// server error, -32000 to -32099).
	rpcForbidden = -32001
	// rpcHeaderMismatch: the Mcp-Method/Mcp-Name headers disagree with the
	// body, or a required one is missing (MCP 2026-07-28, SEP-2243).
	rpcHeaderMismatch = -32020
)

// Bounds of what the inspector reads.
const (
	maxMCPBatch   = 20
	maxRPCIDBytes = 128
	maxMCPMethod  = 128
	maxToolBytes  = 128
)

// Protocol revisions whose rules differ: batches were removed after
// 2025-03-26; the mirror headers are required from 2026-07-28 on.
const (
	mcpLastBatchRevision = "2025-03-26"
	mcpHeadersRevision   = "2026-07-28"
)

// mcpMessage is one JSON-RPC message as the inspector read it.
type mcpMessage struct {
	id     string // the raw JSON id ("" for a notification or a response)
	method string // "" for a response to the server
	name   string // params.name (tools/call, prompts/get) or params.uri (resources/read)
}

// mcpInspected is a request's messages, or the denial of a body that
// cannot be read; key is what the decision depends on (the methods and
// names, never the ids), for the decision cache.
type mcpInspected struct {
	msgs  []mcpMessage
	batch bool
	deny  *Result
	key   string
}

type mcpInspector struct{}

func (mcpInspector) Operations(req Request) ([]Operation, *Result) {
	return mcpOperations(&req)
}

// MCPInfo is what an MCP request asked and what became of it: the audit
// record's mcp part, explain's, and what a JSON-RPC denial answers.
type MCPInfo struct {
	Method string `json:"method,omitempty"`
	Tool   string `json:"tool,omitempty"`
	// Messages: more than 1 in a batch.
	Messages int `json:"messages,omitempty"`
	// DeniedTool: the tool whose rule refused the request.
	DeniedTool string `json:"denied_tool,omitempty"`
	ids        []string
	batch      bool
	code       int
	message    string
}

// mcpOf inspects req once (Check does it before the cache; explain when
// Evaluate asks).
func mcpOf(req *Request) *mcpInspected {
	if req.mcp == nil {
		req.mcp = inspectMCP(req.Method, req.Headers, req.Body)
	}
	return req.mcp
}

// mcpOperations are the operations of an MCP request, or its denial.
func mcpOperations(req *Request) ([]Operation, *Result) {
	in := mcpOf(req)
	if in.deny != nil {
		return nil, in.deny
	}
	ops := make([]Operation, 0, max(len(in.msgs), 1))
	if len(in.msgs) == 0 { // GET (the server's stream), DELETE (end of session)
		return append(ops, Operation{Kind: model.InspectorMCP, HTTPMethod: req.Method, Path: req.Path}), nil
	}
	for _, m := range in.msgs {
		op := Operation{Kind: model.InspectorMCP, Method: m.method, HTTPMethod: req.Method, Path: req.Path}
		if m.method == "tools/call" {
			op.Name = m.name
			op.ReadOnly = req.policy != nil && req.policy.MCP != nil && toolMatches(req.policy.MCP.ReadOnly, m.name)
		}
		ops = append(ops, op)
	}
	return ops, nil
}

// info is the MCPInfo of the inspected request (its ids, for the answer).
func (in *mcpInspected) info() *MCPInfo {
	i := &MCPInfo{Messages: len(in.msgs), batch: in.batch}
	if len(in.msgs) > 0 {
		i.Method = in.msgs[0].method
		if i.Method == "tools/call" {
			i.Tool = in.msgs[0].name
		}
	}
	for _, m := range in.msgs {
		if m.id != "" {
			i.ids = append(i.ids, m.id)
		}
	}
	return i
}

// inspectMCP reads an MCP request. Without a body (GET, DELETE) there is
// no message: the route decides.
func inspectMCP(method string, headers map[string]string, body []byte) *mcpInspected {
	in := &mcpInspected{}
	version := headers["mcp-protocol-version"]
	if method != "POST" {
		in.key = method
		return in
	}
	bad := func(code int, why string) *mcpInspected {
		in.msgs = nil
		in.deny = &Result{Status: 400, Reason: "bad_mcp_request", Steps: []Step{{Rule: "mcp", Why: why}},
			MCP: &MCPInfo{code: code, message: why}}
		in.key = "bad\x00" + hashHex(body)
		return in
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return bad(rpcParseError, "the body is empty; a POST to an MCP route carries a JSON-RPC message")
	}
	dec := getDecoder(body)
	defer putDecoder(dec)
	switch dec.PeekKind() {
	case '{':
		m, why := readRPCMessage(dec)
		if why != "" {
			return bad(rpcCode(why), why)
		}
		in.msgs = []mcpMessage{m}
	case '[':
		if version > mcpLastBatchRevision {
			return bad(rpcInvalidRequest, "protocol revision "+clip.String(version, 100)+" has no batches")
		}
		in.batch = true
		if _, err := dec.ReadToken(); err != nil {
			return bad(rpcParseError, "the body is not JSON")
		}
		for dec.PeekKind() != ']' {
			if dec.PeekKind() != '{' {
				return bad(rpcInvalidRequest, "a batch holds JSON-RPC message objects only")
			}
			if len(in.msgs) == maxMCPBatch {
				return bad(rpcInvalidRequest, "a batch holds at most 20 messages")
			}
			m, why := readRPCMessage(dec)
			if why != "" {
				return bad(rpcCode(why), why)
			}
			in.msgs = append(in.msgs, m)
		}
		if _, err := dec.ReadToken(); err != nil {
			return bad(rpcParseError, "the body is not JSON")
		}
		if len(in.msgs) == 0 {
			return bad(rpcInvalidRequest, "an empty batch")
		}
	default:
		return bad(rpcParseError, "the body is not a JSON-RPC message (an object) or a batch (an array)")
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		return bad(rpcParseError, "data after the JSON-RPC message")
	}
	if why := mirrorHeaders(in, headers, version); why != "" {
		in.deny = &Result{Status: 400, Reason: "mcp_header_mismatch", Steps: []Step{{Rule: "mcp", Why: why}},
			MCP: &MCPInfo{code: rpcHeaderMismatch, message: why}}
		in.deny.MCP.ids = in.info().ids
	}
	var k strings.Builder
	k.WriteString("POST")
	for _, m := range in.msgs {
		k.WriteString("\x00" + m.method + "\x01" + m.name)
	}
	in.key = k.String()
	return in
}

// mirrorHeaders: Mcp-Method and Mcp-Name, when sent, must be the body's
// method and name (one message only); from revision 2026-07-28 on,
// Mcp-Method is required, and Mcp-Name where the body names a target.
func mirrorHeaders(in *mcpInspected, headers map[string]string, version string) string {
	hm, hasM := headers["mcp-method"]
	hn, hasN := headers["mcp-name"]
	hm, okM := headerText(hm)
	hn, okN := headerText(hn)
	if !okM || !okN {
		return "Mcp-Method/Mcp-Name is not valid =?base64?…?= text"
	}
	if !hasM && !hasN {
		if version >= mcpHeadersRevision && len(in.msgs) == 1 && in.msgs[0].method != "" {
			return "protocol revision " + clip.String(version, 100) + " requires the Mcp-Method header"
		}
		return ""
	}
	if len(in.msgs) != 1 || in.batch {
		return "Mcp-Method/Mcp-Name describe one message; the body is a batch"
	}
	m := in.msgs[0]
	switch {
	case hasM && hm != m.method:
		return "Mcp-Method " + clip.String(hm, 100) + " disagrees with the body's method " + clip.String(m.method, 100)
	case !hasM && version >= mcpHeadersRevision:
		return "protocol revision " + clip.String(version, 100) + " requires the Mcp-Method header"
	case hasN && hn != m.name:
		return "Mcp-Name " + clip.String(hn, 100) + " disagrees with the body's name " + clip.String(m.name, 100)
	case !hasN && m.name != "" && version >= mcpHeadersRevision:
		return "protocol revision " + clip.String(version, 100) + " requires the Mcp-Name header for " + m.method
	}
	return ""
}

// headerText is a mirror header's value: as sent, or decoded from the
// =?base64?…?= form that carries non-ASCII text.
func headerText(v string) (string, bool) {
	const pre, suf = "=?base64?", "?="
	if !strings.HasPrefix(v, pre) || !strings.HasSuffix(v, suf) || len(v) < len(pre)+len(suf) {
		return v, true
	}
	b, err := base64.StdEncoding.DecodeString(v[len(pre) : len(v)-len(suf)])
	if err != nil || !utf8.Valid(b) {
		return "", false
	}
	return string(b), true
}

// Reasons readRPCMessage gives, by JSON-RPC code.
func rpcCode(why string) int {
	switch {
	case strings.HasPrefix(why, "params"):
		return rpcInvalidParams
	case strings.HasPrefix(why, "not JSON"):
		return rpcParseError
	}
	return rpcInvalidRequest
}

var errNotRPC = errors.New("not a JSON-RPC message")

// readRPCMessage reads one message object: jsonrpc "2.0", an id that is a
// string, number or null, a method, and the params it needs.
func readRPCMessage(dec *pooledDecoder) (mcpMessage, string) {
	var m mcpMessage
	var params jsontext.Value
	version, hasMethod, hasResult := "", false, false
	if _, err := dec.ReadToken(); err != nil {
		return m, "not JSON"
	}
	for dec.PeekKind() != '}' {
		nameTok, err := dec.ReadToken()
		if err != nil {
			return m, "not JSON: " + jsonWhy(err)
		}
		name := nameTok.String()
		val, err := dec.ReadValue()
		if err != nil {
			return m, "not JSON: " + jsonWhy(err)
		}
		if why := caseTwin(name, rpcMembers); why != "" {
			return m, why
		}
		switch name {
		case "jsonrpc":
			if val.Kind() != '"' {
				return m, "jsonrpc is not \"2.0\""
			}
			version = unquote(val)
		case "id":
			switch k := val.Kind(); {
			case k != '"' && k != '0' && k != 'n':
				return m, "the id is not a string, a number or null"
			case len(val) > maxRPCIDBytes:
				return m, "the id is longer than 128 bytes"
			}
			m.id = string(val)
		case "method":
			if val.Kind() != '"' {
				return m, "the method is not a string"
			}
			m.method, hasMethod = unquote(val), true
			if m.method == "" || len(m.method) > maxMCPMethod {
				return m, "the method is empty or longer than 128 bytes"
			}
		case "params":
			params = slices.Clone(val) // val is the decoder's until its next read
		case "result", "error":
			hasResult = true
		}
	}
	if _, err := dec.ReadToken(); err != nil {
		return m, "not JSON"
	}
	switch {
	case version != "2.0":
		return m, "jsonrpc is not \"2.0\""
	case hasMethod == hasResult:
		return m, "a message is a request or notification (method) or a response (result or error)"
	case hasResult:
		return m, "" // a response to a request of the server
	}
	if why := readParams(&m, params); why != "" {
		return m, why
	}
	return m, ""
}

// readParams reads what the decision needs from params: the tool of a
// tools/call, the prompt of prompts/get, the URI of resources/read.
func readParams(m *mcpMessage, params jsontext.Value) string {
	key := ""
	switch m.method {
	case "tools/call", "prompts/get":
		key = "name"
	case "resources/read":
		key = "uri"
	}
	if params == nil {
		if key != "" {
			return "params of " + m.method + " are missing"
		}
		return ""
	}
	if k := params.Kind(); k != '{' {
		if key != "" || k != '[' {
			return "params of " + m.method + " are not an object"
		}
		return ""
	}
	if key == "" {
		return ""
	}
	dec := getDecoder(params)
	defer putDecoder(dec)
	if _, err := dec.ReadToken(); err != nil {
		return "params: not JSON"
	}
	found := false
	for dec.PeekKind() != '}' {
		tok, err := dec.ReadToken()
		if err != nil {
			return "params: not JSON"
		}
		name := tok.String()
		val, err := dec.ReadValue()
		if err != nil {
			return "params: not JSON"
		}
		if why := caseTwin(name, []string{key}); why != "" {
			return "params: " + why
		}
		if name != key {
			continue
		}
		if val.Kind() != '"' {
			return "params." + key + " of " + m.method + " is not a string"
		}
		m.name, found = unquote(val), true
	}
	switch {
	case !found || m.name == "":
		return "params." + key + " of " + m.method + " is missing or empty"
	case key == "name" && len(m.name) > maxToolBytes:
		return "params.name of " + m.method + " is longer than 128 bytes"
	}
	return ""
}

// rpcMembers are the members of a JSON-RPC message.
var rpcMembers = []string{"jsonrpc", "id", "method", "params", "result", "error"}

// caseTwin refuses a member name that differs only in case from one the
// decision reads ("Method", "NAME"): a server whose JSON decoder matches
// names without case (Go's encoding/json does) could read it instead.
func caseTwin(name string, known []string) string {
	for _, k := range known {
		if name != k && strings.EqualFold(name, k) {
			return "member " + clip.String(name, 100) + " differs from " + k + " only in case"
		}
	}
	return ""
}

// pooledDecoder is a decoder and its reader, reused: a decoder keeps the
// name sets it checks duplicates with, most of an inspection's
// allocations otherwise.
type pooledDecoder struct {
	*jsontext.Decoder
	r bytes.Reader
}

var decoders = sync.Pool{New: func() any {
	d := &pooledDecoder{}
	d.Decoder = jsontext.NewDecoder(&d.r)
	return d
}}

func getDecoder(b []byte) *pooledDecoder {
	d := decoders.Get().(*pooledDecoder)
	d.r.Reset(b)
	d.Decoder.Reset(&d.r)
	return d
}

func putDecoder(d *pooledDecoder) {
	d.r.Reset(nil)
	d.Decoder.Reset(&d.r)
	decoders.Put(d)
}

// unquote is a JSON string value's text (the decoder validated it).
func unquote(v jsontext.Value) string {
	if len(v) >= 2 && bytes.IndexByte(v, '\\') < 0 {
		return string(v[1 : len(v)-1]) // no escapes: the text itself
	}
	b, err := jsontext.AppendUnquote(nil, v)
	if err != nil {
		return ""
	}
	return string(b)
}

// jsonWhy is a decoder error in a few words (no input echoed).
func jsonWhy(err error) string {
	var se *jsontext.SyntacticError
	if errors.As(err, &se) {
		if errors.Is(se.Err, jsontext.ErrDuplicateName) {
			return "a member name appears twice"
		}
		return "syntax error"
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return "truncated"
	}
	return errNotRPC.Error()
}

func hashHex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:16])
}

package extauthz

import (
	"encoding/json"
	"net"
	"strconv"
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"

	"github.com/gatehouse-dev/gatehouse/internal/clip"
	"github.com/gatehouse-dev/gatehouse/model"
)

// rpcError is a JSON-RPC error response.
type rpcError struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Error   rpcErrorBody    `json:"error"`
}

type rpcErrorBody struct {
	Code    int               `json:"code"`
	Message string            `json:"message"`
	Data    map[string]string `json:"data,omitempty"`
}

// denyMCP answers a refused MCP request as MCP clients expect: a JSON-RPC
// error for each request of the body, with its id (null when there is
// none, or the body could not be read), in a batch when the body was one.
// A refused tool (the caller may use the route, not the tool) is answered
// with HTTP 200, so the client's session goes on and the SDK hands the
// error to the caller; a request the route refuses keeps its HTTP status
// (403, 400, 404, 503). The message names the tool and the decision id,
// nothing of the policy.
func (s *Server) denyMCP(rec *AuditRecord, r *Result) *authv3.CheckResponse {
	rec.Decision, rec.Status, rec.Reason, rec.Rule = "deny", r.Status, r.Reason, r.Rule
	m := r.MCP
	code, msg, httpStatus := rpcForbidden, "gatehouse: forbidden", r.Status
	switch {
	case m.code != 0:
		code, msg = m.code, "gatehouse: "+m.message
	case m.DeniedTool != "" && (r.Reason == "tool_forbidden" || r.Reason == "agent_limit"):
		msg, httpStatus = "gatehouse: you may not call tool "+clip.String(m.DeniedTool, 100), 200
	}
	data := map[string]string{"decision_id": rec.DecisionID, "reason": r.Reason}
	var errs []rpcError
	for _, id := range m.ids {
		errs = append(errs, rpcError{JSONRPC: "2.0", ID: json.RawMessage(id), Error: rpcErrorBody{Code: code, Message: msg, Data: data}})
	}
	var body []byte
	switch {
	case len(errs) == 0:
		// Notifications and responses only, or no readable id: one error
		// with id null and the HTTP status of the denial.
		if httpStatus == 200 {
			httpStatus = 403
		}
		body, _ = json.Marshal(rpcError{JSONRPC: "2.0", ID: json.RawMessage("null"), Error: rpcErrorBody{Code: code, Message: msg, Data: data}})
	case m.batch:
		body, _ = json.Marshal(errs)
	default:
		body, _ = json.Marshal(errs[0])
	}
	rec.Status = httpStatus
	grpcCode := codes.PermissionDenied
	if r.Status == 400 {
		grpcCode = codes.InvalidArgument
	}
	return &authv3.CheckResponse{
		Status: &status.Status{Code: int32(grpcCode)},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(httpStatus)},
			Headers: []*core.HeaderValueOption{{Header: &core.HeaderValue{Key: "content-type", Value: "application/json"}}},
			Body:    string(body) + "\n",
		}},
	}
}

// origin is the scheme and host clients reach the edge at: the
// request's, with Options.PublicPort when Host carries no port.
func (s *Server) origin(scheme, host string) string {
	if scheme == "" {
		scheme = "https"
	}
	if _, _, err := net.SplitHostPort(host); err != nil && s.opts.PublicPort != 0 {
		host = net.JoinHostPort(strings.Trim(host, "[]"), strconv.Itoa(int(s.opts.PublicPort)))
	}
	return scheme + "://" + host
}

// resourceURL is the URL of the MCP resource of policy p as the client
// reached it.
func (s *Server) resourceURL(p *model.MCPPolicy, scheme, host string) string {
	if p.Prefix == "/" {
		return s.origin(scheme, host)
	}
	return s.origin(scheme, host) + p.Prefix
}

// mcpChallenge adds RFC 9728's resource_metadata to the challenge of a
// 401 on an MCP route, so an MCP client finds the authorization servers.
func (s *Server) mcpChallenge(resp *authv3.CheckResponse, req *Request, h *authv3.AttributeContext_HttpRequest) {
	d := resp.GetDeniedResponse()
	if d == nil || d.GetStatus().GetCode() != typev3.StatusCode_Unauthorized {
		return
	}
	meta := s.metadataURL(req.policy.MCP, h.GetScheme(), h.GetHost())
	for _, hv := range d.Headers {
		if hv.GetHeader().GetKey() == "www-authenticate" {
			hv.Header.Value += `, resource_metadata="` + meta + `"`
			return
		}
	}
	d.Headers = append(d.Headers, &core.HeaderValueOption{Header: &core.HeaderValue{Key: "www-authenticate", Value: `Bearer realm="gatehouse", resource_metadata="` + meta + `"`}})
}

// metadataURL is where the resource's metadata is served (RFC 9728 §3.1:
// the well-known path inserted between host and path).
func (s *Server) metadataURL(p *model.MCPPolicy, scheme, host string) string {
	if p.Prefix == "/" {
		return s.origin(scheme, host) + model.ResourceMetadataPrefix
	}
	return s.origin(scheme, host) + model.ResourceMetadataPrefix + p.Prefix
}

// ResourceMetadata is an RFC 9728 Protected Resource Metadata document.
type ResourceMetadata struct {
	Resource               string   `json:"resource"`
	AuthorizationServers   []string `json:"authorization_servers"`
	BearerMethodsSupported []string `json:"bearer_methods_supported"`
	ResourceName           string   `json:"resource_name,omitempty"`
}

// resourceMetadata answers the metadata route of an MCP route: the
// resource (its URL as the client reached it) and the configured issuers
// as its authorization servers. No credential is needed or read.
func (s *Server) resourceMetadata(rec *AuditRecord, req *Request, h *authv3.AttributeContext_HttpRequest) *authv3.CheckResponse {
	p := req.policy.MCP
	if p == nil || (req.Method != "GET" && req.Method != "HEAD") {
		return s.deny(rec, 404, "not_found", "", "resource metadata is served to GET")
	}
	rec.Decision, rec.Status, rec.Reason, rec.Rule = "deny", 200, "resource_metadata", "RFC 9728 metadata of "+p.API
	doc := ResourceMetadata{Resource: s.resourceURL(p, h.GetScheme(), h.GetHost()), AuthorizationServers: []string{}, BearerMethodsSupported: []string{"header"}, ResourceName: p.API}
	if is, ok := s.Verifier().(interface{ Issuers() []string }); ok {
		doc.AuthorizationServers = append(doc.AuthorizationServers, is.Issuers()...)
	}
	body, _ := json.MarshalIndent(doc, "", "  ")
	// Envoy answers a denial with the status and body given: the
	// document, with 200.
	return &authv3.CheckResponse{
		Status: &status.Status{Code: int32(codes.PermissionDenied)},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status: &typev3.HttpStatus{Code: typev3.StatusCode_OK},
			Headers: []*core.HeaderValueOption{
				{Header: &core.HeaderValue{Key: "content-type", Value: "application/json"}},
				{Header: &core.HeaderValue{Key: "cache-control", Value: "max-age=300"}},
			},
			Body: strings.TrimSpace(string(body)) + "\n",
		}},
	}
}

package extauthz

import "github.com/gatehouse-dev/gatehouse/model"

// Operation is one thing a request asks to do, as policy sees it. For a
// plain HTTP route that is its method and path; a GraphQL inspector would
// yield one per field, a JSON-RPC (MCP) inspector the method and tool.
type Operation struct {
	// Kind names the inspector that produced it ("http").
	Kind   string `json:"kind"`
	Method string `json:"method,omitempty"`
	Path   string `json:"path,omitempty"`
	// Name is the operation's own name where the protocol has one (a
	// GraphQL Type.field, an MCP tool); empty for HTTP.
	Name string `json:"name,omitempty"`
	// HTTPMethod is the request's method when Method is the protocol's
	// own verb (a GraphQL query, mutation or subscription); access rules'
	// methods match it.
	HTTPMethod string `json:"httpMethod,omitempty"`
	// At is where in the answer the operation lands (a GraphQL response
	// path, aliases included).
	At string `json:"at,omitempty"`
	// ReadOnly: the protocol says the operation changes nothing (an MCP
	// tool the API marks read-only); agents' read-only limits allow it.
	ReadOnly bool `json:"readOnly,omitempty"`
}

// httpMethod is the HTTP method of the request the operation is part of.
func (op *Operation) httpMethod() string {
	if op.HTTPMethod != "" {
		return op.HTTPMethod
	}
	return op.Method
}

// Inspector turns a route's requests into the operations policy decides.
// A new protocol is one new Inspector and a route setting
// (model.RouteAuth.Inspector); the criteria and Evaluate stay as they are.
type Inspector interface {
	// Operations are what req asks to do, or a denial (a body that does
	// not parse, say) with its status and reason.
	Operations(req Request) ([]Operation, *Result)
}

// httpInspector: one operation, the request's method and normalised path.
type httpInspector struct{}

func (httpInspector) Operations(req Request) ([]Operation, *Result) {
	return []Operation{{Kind: model.InspectorHTTP, Method: req.Method, Path: req.Path}}, nil
}

// inspectors by model.RouteAuth.InspectorName.
var inspectors = map[string]Inspector{model.InspectorHTTP: httpInspector{}, model.InspectorGraphQL: graphqlInspector{}, model.InspectorMCP: mcpInspector{}}

// inspectorFor is the route's inspector; a route naming one this build
// does not have decides nothing (fail closed).
func inspectorFor(req *Request) Inspector {
	name := model.InspectorHTTP
	if r := req.policy.route; r != nil {
		name = r.Auth.InspectorName()
	}
	if in, ok := inspectors[name]; ok {
		return in
	}
	return unknownInspector(name)
}

type unknownInspector string

func (u unknownInspector) Operations(Request) ([]Operation, *Result) {
	return nil, &Result{Status: 503, Reason: "unknown_inspector", Steps: []Step{{Rule: "inspector", Why: "the route asks for inspector " + string(u) + ", which this gatehouse does not have"}}}
}

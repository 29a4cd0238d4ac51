package extauthz

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/gatehouse-dev/gatehouse/model"
)

// The ext_proc server (envoy.service.ext_proc.v3.ExternalProcessor): on the
// routes whose model.RouteAuth asks for it (ExtProc), Envoy sends each
// request here instead of to Check, and gatehouse can rewrite the request
// and response bodies (GraphQL filter mode, MCP tools/list).
//
// It decides with Check itself: the request's headers and its buffered
// body become the same CheckRequest Envoy's ext_authz would have sent,
// through the same route lookup, credentials, decision cache, subject
// resolution, Evaluate, audit record and answer (identity headers and
// assertion set, credentials removed, the denial's status and body), which
// ext_proc applies as header mutations or an immediate response. Only
// then does the route inspector's BodyFilter, if it registered one, see the
// allowed request, and the answer when the filter asks for it.
//
// One request is one gRPC stream, so its headers, body and answer reach
// the same gatehouse replica (an assertion signed by one replica need not
// verify at another, so deciding here and rewriting there would not do).
// Nothing fails open: a stream that ends early, a message out of order,
// a request body over the route's limit or a filter's error answer an
// error (Envoy: failure_mode_allow false, so the client gets 500 or the
// status gatehouse chose), never a pass.

// BodyFilter rewrites the bodies of the requests one inspector reads
// (RegisterBodyFilter), on routes served through ext_proc. Filters are
// called only for requests the engine allowed; they must never widen
// what was allowed (a filter only removes or answers). Implementations
// are safe for concurrent use.
type BodyFilter interface {
	// FilterRequest is the allowed request (req.Body is the body Envoy
	// buffered, req.Headers its headers), the subject it was allowed for
	// and the engine's result for it. The answer says what the upstream
	// gets, or what the client gets instead.
	FilterRequest(in FilterInput) FilterOutput
}

// FilterInput is what a BodyFilter sees of an allowed request. Read only.
type FilterInput struct {
	Request *Request
	Subject *Subject
	Result  *Result
}

// FilterOutput is a BodyFilter's answer for one request. The zero value
// leaves the request as it is and does not look at the answer.
type FilterOutput struct {
	// Body replaces the request body when non-nil.
	Body []byte
	// URLQuery, when not empty, replaces the query string of the
	// request's :path (after "?"); the path itself is kept as the client
	// sent it, so the route Envoy chose and Check decided stays the one.
	URLQuery string
	// Immediate answers the client without calling the upstream (the
	// identity headers are not sent anywhere then).
	Immediate *FilterAnswer
	// Response, when non-nil, is given the upstream's answer.
	Response ResponseFilter
}

// FilterAnswer is an answer gatehouse gives in place of the upstream's.
type FilterAnswer struct {
	Status      int
	ContentType string
	Body        []byte
}

// ResponseFilter rewrites one upstream answer (the state a FilterRequest
// kept for it).
type ResponseFilter interface {
	// FilterResponse gets the answer's status, its headers (lower-case
	// names, values of repeated headers joined with ",") and its body as
	// Envoy buffered it; it returns the body to send instead, or nil to
	// leave it.
	FilterResponse(status int, headers map[string]string, body []byte) []byte
}

var (
	bodyFiltersMu sync.RWMutex
	bodyFilters   = map[string]BodyFilter{}
)

// RegisterBodyFilter sets the body filter of an inspector
// (model.RouteAuth.Inspector); routes of that inspector served through
// ext_proc use it. Called from init functions.
func RegisterBodyFilter(inspector string, f BodyFilter) {
	bodyFiltersMu.Lock()
	defer bodyFiltersMu.Unlock()
	bodyFilters[inspector] = f
}

func bodyFilterFor(inspector string) BodyFilter {
	bodyFiltersMu.RLock()
	defer bodyFiltersMu.RUnlock()
	return bodyFilters[inspector]
}

// ExtProc is the ext_proc service of a Check server.
type ExtProc struct {
	extprocv3.UnimplementedExternalProcessorServer
	s *Server
}

var (
	extprocErrors = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: "gatehouse", Subsystem: "extproc", Name: "stream_errors_total",
		Help: "ext_proc streams ended because Envoy sent a message out of order (the request fails closed).",
	})
	extprocFiltered = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: "gatehouse", Subsystem: "extproc", Name: "filtered_total",
		Help: "Requests whose body a filter rewrote or answered itself.",
	})
)

// inspectorName is the route's inspector (model.RouteAuth.Inspector).
func (rp *routePolicy) inspectorName() string {
	if rp == nil || rp.route == nil {
		return model.InspectorHTTP
	}
	return rp.route.Auth.InspectorName()
}

// bodyLimit is the request body limit of a route (RouteAuth.BodyBytes),
// 0 when it sets none or is unknown (Check then decides the route).
func (s *Server) bodyLimit(routeID string) int {
	if st := s.state.Load(); st != nil {
		if rp := st.engine.routes[routeID]; rp != nil && rp.route != nil {
			return int(rp.route.Auth.BodyBytes)
		}
	}
	return 0
}

// procCall is what the Check of an ext_proc stream found when it allowed
// the request (allow fills it).
type procCall struct {
	allowed bool
	req     Request
	res     Result
	sub     Subject
}

func (p *procCall) done(req *Request, res Result, sub *Subject) {
	p.allowed, p.req, p.res = true, *req, res
	if sub != nil {
		p.sub = *sub
	}
}

// errStream is a stream Envoy did not drive as the filter is configured.
var errStream = errors.New("ext_proc: unexpected message")

// Process serves one request's stream: request headers (the decision when
// there is no body), the request body (the decision, then the filter),
// the response headers and body (the filter's response part).
func (x *ExtProc) Process(stream extprocv3.ExternalProcessor_ProcessServer) error {
	ps := procStream{x: x, ctx: stream.Context()}
	for {
		in, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		out, err := ps.step(in)
		if err != nil {
			extprocErrors.Inc()
			return status.Error(codes.FailedPrecondition, err.Error())
		}
		if err := stream.Send(out); err != nil {
			return err
		}
		if out.GetImmediateResponse() != nil {
			return nil
		}
	}
}

// procStream is the state of one request's stream.
type procStream struct {
	x        *ExtProc
	ctx      context.Context
	headers  map[string]string // request headers, lower case
	source   string            // the client's address, for the audit
	decided  bool
	response ResponseFilter
	status   int // the upstream's status
	respHdrs map[string]string
}

func (ps *procStream) step(in *extprocv3.ProcessingRequest) (*extprocv3.ProcessingResponse, error) {
	switch r := in.Request.(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		if ps.headers != nil {
			return nil, errStream
		}
		ps.headers = procHeaders(r.RequestHeaders.GetHeaders())
		ps.source = sourceAddress(in.GetAttributes())
		if !r.RequestHeaders.GetEndOfStream() {
			// The decision waits for the body (BUFFERED): nothing reaches
			// the upstream before the body's answer.
			return headersContinue(nil), nil
		}
		return ps.decide(nil, true)
	case *extprocv3.ProcessingRequest_RequestBody:
		if ps.headers == nil || ps.decided || !r.RequestBody.GetEndOfStream() {
			// BUFFERED mode sends the whole body in one message.
			return nil, errStream
		}
		return ps.decide(r.RequestBody.GetBody(), false)
	case *extprocv3.ProcessingRequest_RequestTrailers:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestTrailers{RequestTrailers: &extprocv3.TrailersResponse{}}}, nil
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		if !ps.decided {
			return nil, errStream
		}
		ps.respHdrs = procHeaders(r.ResponseHeaders.GetHeaders())
		ps.status = atoi(ps.respHdrs[":status"])
		hr := &extprocv3.HeadersResponse{}
		if ps.response != nil && r.ResponseHeaders.GetEndOfStream() {
			// No body to filter: the answer as it is.
			ps.response = nil
		}
		if ps.response != nil {
			// The body may change length: Envoy refuses a mutated body
			// that disagrees with content-length, so the answer goes
			// without one.
			hr.Response = &extprocv3.CommonResponse{HeaderMutation: &extprocv3.HeaderMutation{RemoveHeaders: []string{"content-length"}}}
		}
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: hr}}, nil
	case *extprocv3.ProcessingRequest_ResponseBody:
		if !ps.decided || !r.ResponseBody.GetEndOfStream() {
			return nil, errStream
		}
		body := &extprocv3.BodyResponse{}
		if ps.response != nil {
			if nb := ps.response.FilterResponse(ps.status, ps.respHdrs, r.ResponseBody.GetBody()); nb != nil {
				body.Response = &extprocv3.CommonResponse{BodyMutation: &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: nb}}}
			}
		}
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: body}}, nil
	case *extprocv3.ProcessingRequest_ResponseTrailers:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseTrailers{ResponseTrailers: &extprocv3.TrailersResponse{}}}, nil
	}
	return nil, errStream
}

// decide runs the Check on the request (headers and, when it has one, its
// body) and then the inspector's filter; onHeaders: there is no body, the
// answer goes in the headers' response.
func (ps *procStream) decide(body []byte, onHeaders bool) (*extprocv3.ProcessingResponse, error) {
	ps.decided = true
	h := ps.headers
	hr := &authv3.AttributeContext_HttpRequest{
		Id: h["x-request-id"], Method: h[":method"], Path: h[":path"], Host: h[":authority"],
		Scheme: h[":scheme"], Headers: h, RawBody: body,
	}
	if limit := ps.x.s.bodyLimit(h[model.RouteHeader]); limit > 0 && len(body) > limit {
		// Envoy refuses a body over the route's request_body_buffer_limit
		// already; this holds should it ever be configured otherwise.
		return immediate(413, nil, []byte(`{"error":"payload_too_large"}`+"\n")), nil
	}
	var call procCall
	resp := ps.x.s.checkHTTP(ps.ctx, hr, nil, "", ps.source, &call)
	if d := resp.GetDeniedResponse(); d != nil {
		return immediate(int(d.GetStatus().GetCode()), d.GetHeaders(), []byte(d.GetBody())), nil
	}
	ok := resp.GetOkResponse()
	if !call.allowed || ok == nil {
		// An allow the ext_proc path did not see through (never expected):
		// refuse rather than pass.
		return immediate(503, nil, []byte(`{"error":"unavailable"}`+"\n")), nil
	}
	mut := &extprocv3.HeaderMutation{RemoveHeaders: ok.GetHeadersToRemove()}
	for _, o := range ok.GetHeaders() {
		mut.SetHeaders = append(mut.SetHeaders, setHeader(o.GetHeader().GetKey(), o.GetHeader().GetValue()))
	}
	common := &extprocv3.CommonResponse{HeaderMutation: mut}
	if f := bodyFilterFor(call.req.policy.inspectorName()); f != nil {
		out := f.FilterRequest(FilterInput{Request: &call.req, Subject: &call.sub, Result: &call.res})
		if a := out.Immediate; a != nil {
			extprocFiltered.Inc()
			return immediate(a.Status, []*core.HeaderValueOption{{Header: &core.HeaderValue{Key: "content-type", Value: a.ContentType}}}, a.Body), nil
		}
		if out.Body != nil {
			if onHeaders {
				// A request without a body cannot be given one here.
				return immediate(500, nil, []byte(`{"error":"internal"}`+"\n")), nil
			}
			extprocFiltered.Inc()
			common.BodyMutation = &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: out.Body}}
			// Envoy refuses a body whose length differs from the
			// request's content-length.
			mut.SetHeaders = append(mut.SetHeaders, setHeader("content-length", strconv.Itoa(len(out.Body))))
		}
		if out.URLQuery != "" {
			extprocFiltered.Inc()
			mut.SetHeaders = append(mut.SetHeaders, setHeader(":path", withQuery(h[":path"], out.URLQuery)))
		}
		ps.response = out.Response
	}
	if onHeaders {
		return headersContinue(common), nil
	}
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{Response: common}}}, nil
}

// withQuery is the raw :path with its query string replaced by query;
// the part before the first "?" is left byte for byte, so the
// path Envoy routed on is the one the upstream gets (the filter also
// keeps the route: disable_clear_route_cache).
func withQuery(rawPath, query string) string {
	if i := strings.IndexByte(rawPath, '?'); i >= 0 {
		rawPath = rawPath[:i]
	}
	return rawPath + "?" + query
}

func headersContinue(c *extprocv3.CommonResponse) *extprocv3.ProcessingResponse {
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{Response: c}}}
}

// immediate answers the client in gatehouse's name.
func immediate(code int, headers []*core.HeaderValueOption, body []byte) *extprocv3.ProcessingResponse {
	ir := &extprocv3.ImmediateResponse{Status: &typev3.HttpStatus{Code: typev3.StatusCode(code)}, Body: body}
	if len(headers) > 0 {
		ir.Headers = &extprocv3.HeaderMutation{}
		for _, o := range headers {
			ir.Headers.SetHeaders = append(ir.Headers.SetHeaders, setHeader(o.GetHeader().GetKey(), o.GetHeader().GetValue()))
		}
	}
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ImmediateResponse{ImmediateResponse: ir}}
}

func setHeader(k, v string) *core.HeaderValueOption {
	return &core.HeaderValueOption{Header: &core.HeaderValue{Key: k, RawValue: []byte(v)}, AppendAction: core.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD}
}

// procHeaders is Envoy's header list as Check reads headers: lower-case
// names, repeated headers joined with "," (as ext_authz joins them).
func procHeaders(hm *core.HeaderMap) map[string]string {
	out := make(map[string]string, len(hm.GetHeaders()))
	for _, h := range hm.GetHeaders() {
		k := strings.ToLower(h.GetKey())
		v := h.GetValue()
		if len(h.GetRawValue()) > 0 {
			v = string(h.GetRawValue())
		}
		if prev, ok := out[k]; ok {
			v = prev + "," + v
		}
		out[k] = v
	}
	return out
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' || n > 1000 {
			return 0
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// SourceAttribute is the request attribute Envoy is asked to send with the
// request headers (the filter's request_attributes): the client's address,
// which the audit records as Check's does.
const SourceAttribute = "source.address"

// sourceAddress is the client's IP from the attributes Envoy sent (the
// port dropped, as Check's audit has it); "" when absent.
func sourceAddress(attrs map[string]*structpb.Struct) string {
	for _, st := range attrs {
		if v := st.GetFields()[SourceAttribute].GetStringValue(); v != "" {
			if host, _, err := net.SplitHostPort(v); err == nil && net.ParseIP(host) != nil {
				return host
			}
			return v
		}
	}
	return ""
}

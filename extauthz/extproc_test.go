package extauthz

import (
	"context"
	"io"
	"net/url"
	"strings"
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/gatehouse-dev/gatehouse/model"
)

// fakeProcStream is one ext_proc stream as Envoy drives it: the messages
// it sends, and what gatehouse answered.
type fakeProcStream struct {
	grpc.ServerStream
	in  []*extprocv3.ProcessingRequest
	out []*extprocv3.ProcessingResponse
}

func (f *fakeProcStream) Context() context.Context { return context.Background() }
func (f *fakeProcStream) Recv() (*extprocv3.ProcessingRequest, error) {
	if len(f.in) == 0 {
		return nil, io.EOF
	}
	m := f.in[0]
	f.in = f.in[1:]
	return m, nil
}
func (f *fakeProcStream) Send(m *extprocv3.ProcessingResponse) error {
	f.out = append(f.out, m)
	return nil
}
func (f *fakeProcStream) SetHeader(metadata.MD) error  { return nil }
func (f *fakeProcStream) SendHeader(metadata.MD) error { return nil }
func (f *fakeProcStream) SetTrailer(metadata.MD)       {}

// procHeadersMsg is a request-headers message with pseudo-headers, values
// in raw_value as Envoy sends them.
func procHeadersMsg(method, path string, h map[string]string, eos bool) *extprocv3.ProcessingRequest {
	hm := &core.HeaderMap{}
	add := func(k, v string) { hm.Headers = append(hm.Headers, &core.HeaderValue{Key: k, RawValue: []byte(v)}) }
	add(":method", method)
	add(":path", path)
	add(":authority", "gw.example.com")
	add(":scheme", "http")
	add("x-request-id", "xp-1")
	for k, v := range h {
		add(k, v)
	}
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{Headers: hm, EndOfStream: eos}}}
}

func procBodyMsg(body string) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{Body: []byte(body), EndOfStream: true}}}
}

func procRespHeadersMsg(status string) *extprocv3.ProcessingRequest {
	hm := &core.HeaderMap{Headers: []*core.HeaderValue{{Key: ":status", RawValue: []byte(status)}, {Key: "content-type", RawValue: []byte("application/json")}}}
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{Headers: hm}}}
}

func procRespBodyMsg(body string) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocv3.HttpBody{Body: []byte(body), EndOfStream: true}}}
}

func runProc(t *testing.T, s *Server, msgs ...*extprocv3.ProcessingRequest) (*fakeProcStream, error) {
	t.Helper()
	st := &fakeProcStream{in: msgs}
	err := (&ExtProc{s: s}).Process(st)
	return st, err
}

func mutationOf(c *extprocv3.CommonResponse) (set map[string]string, removed []string) {
	set = map[string]string{}
	for _, o := range c.GetHeaderMutation().GetSetHeaders() {
		set[o.GetHeader().GetKey()] = string(o.GetHeader().GetRawValue())
	}
	return set, c.GetHeaderMutation().GetRemoveHeaders()
}

// The ext_proc server decides with Check: the same identity headers and
// credential removal on an allow, the same status and body on a denial,
// one audit record either way.
func TestExtProcDecidesLikeCheck(t *testing.T) {
	s, _, _, _, buf := newTestServer(t)
	route := map[string]string{model.RouteHeader: ordersRoute}
	with := func(tok string) map[string]string {
		h := map[string]string{"authorization": "Bearer " + tok, "x-gatehouse-user": "user:default/mallory"}
		for k, v := range route {
			h[k] = v
		}
		return h
	}

	t.Run("allowed without a body: the answer to the headers", func(t *testing.T) {
		st, err := runProc(t, s, procHeadersMsg("GET", "/orders/1", with("alice-token"), true))
		if err != nil || len(st.out) != 1 {
			t.Fatalf("%v %v", err, st.out)
		}
		set, removed := mutationOf(st.out[0].GetRequestHeaders().GetResponse())
		if set[model.UserHeader] != "user:default/alice" || set[model.AssertionHeader] == "" || set[model.DecisionIDHeader] != "xp-1" {
			t.Fatalf("identity headers: %v", set)
		}
		if !containsStr(removed, "authorization") || !containsStr(removed, "x-gatehouse-user") {
			t.Fatalf("credentials and client x-gatehouse-* must be removed: %v", removed)
		}
	})
	t.Run("refused: an immediate answer with Check's status and body", func(t *testing.T) {
		st, err := runProc(t, s, procHeadersMsg("POST", "/orders/1", with("bob-token"), false), procBodyMsg("{}"))
		if err != nil || len(st.out) != 2 {
			t.Fatalf("%v %v", err, st.out)
		}
		if st.out[0].GetRequestHeaders() == nil {
			t.Fatalf("the headers must wait for the body: %v", st.out[0])
		}
		ir := st.out[1].GetImmediateResponse()
		if ir.GetStatus().GetCode() != 403 || !strings.Contains(string(ir.GetBody()), `"forbidden"`) {
			t.Fatalf("want Check's 403: %v", ir)
		}
	})
	t.Run("no token: 401 with its challenge", func(t *testing.T) {
		st, _ := runProc(t, s, procHeadersMsg("GET", "/orders/1", route, true))
		ir := st.out[0].GetImmediateResponse()
		set, _ := mutationOf(&extprocv3.CommonResponse{HeaderMutation: ir.GetHeaders()})
		if ir.GetStatus().GetCode() != 401 || set["www-authenticate"] == "" {
			t.Fatalf("want 401: %v", ir)
		}
	})
	t.Run("audited as Check audits, with the client's address", func(t *testing.T) {
		m := procHeadersMsg("GET", "/orders/1", with("alice-token"), true)
		src, _ := structpb.NewStruct(map[string]any{SourceAttribute: "192.0.2.7:5511"})
		m.Attributes = map[string]*structpb.Struct{"envoy.filters.http.ext_proc": src}
		if _, err := runProc(t, s, m); err != nil {
			t.Fatal(err)
		}
		s.audit.Close()
		out := buf.String()
		if strings.Count(out, `"decision_id":"xp-1"`) != 4 || !strings.Contains(out, `"principal":"user:default/bob"`) || !strings.Contains(out, `"source_address":"192.0.2.7"`) {
			t.Fatalf("audit: %s", out)
		}
	})
}

// A stream Envoy did not drive as configured fails (Envoy answers the
// client with an error: failure_mode_allow is false), never passes.
func TestExtProcOutOfOrderFailsClosed(t *testing.T) {
	s, _, _, _, _ := newTestServer(t)
	h := map[string]string{model.RouteHeader: ordersRoute, "authorization": "Bearer alice-token"}
	cases := map[string][]*extprocv3.ProcessingRequest{
		"body before headers":       {procBodyMsg("{}")},
		"headers twice":             {procHeadersMsg("POST", "/orders/1", h, false), procHeadersMsg("POST", "/orders/1", h, false)},
		"response before a request": {procRespHeadersMsg("200")},
		"a streamed body chunk":     {procHeadersMsg("POST", "/orders/1", h, false), {Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: &extprocv3.HttpBody{Body: []byte("{")}}}},
		"no message at all":         {{}},
	}
	for name, msgs := range cases {
		t.Run(name, func(t *testing.T) {
			st, err := runProc(t, s, msgs...)
			if err == nil {
				t.Fatalf("want an error, got %v", st.out)
			}
			for _, o := range st.out {
				if o.GetRequestBody() != nil {
					t.Fatalf("a body answer was sent: %v", o)
				}
			}
		})
	}
}

// testFilter is a body filter for the tests of the plumbing.
type testFilter struct {
	seen *FilterInput
	out  FilterOutput
}

func (f *testFilter) FilterRequest(in FilterInput) FilterOutput {
	f.seen = &in
	return f.out
}

type upperResponse struct{ status int }

func (u *upperResponse) FilterResponse(status int, _ map[string]string, body []byte) []byte {
	u.status = status
	return []byte(strings.ToUpper(string(body)))
}

// A route's inspector's filter sees the allowed request with its subject,
// rewrites the body, answers in its place, or rewrites the answer; a
// refused request never reaches it.
func TestExtProcBodyFilter(t *testing.T) {
	s, _, _, _, _ := newTestServer(t)
	f := &testFilter{}
	RegisterBodyFilter(model.InspectorHTTP, f)
	defer func() {
		bodyFiltersMu.Lock()
		delete(bodyFilters, model.InspectorHTTP)
		bodyFiltersMu.Unlock()
	}()
	h := map[string]string{model.RouteHeader: ordersRoute, "authorization": "Bearer alice-token"}

	t.Run("the body replaced, the answer rewritten", func(t *testing.T) {
		up := &upperResponse{}
		f.out = FilterOutput{Body: []byte("new"), Response: up}
		st, err := runProc(t, s, procHeadersMsg("POST", "/orders/1", h, false), procBodyMsg("old"), procRespHeadersMsg("200"), procRespBodyMsg("answer"))
		if err != nil || len(st.out) != 4 {
			t.Fatalf("%v %v", err, st.out)
		}
		if f.seen == nil || string(f.seen.Request.Body) != "old" || f.seen.Subject.User.Ref != "user:default/alice" || !f.seen.Result.Allow || !f.seen.Request.Filtering() {
			t.Fatalf("the filter saw %+v", f.seen)
		}
		rb := st.out[1].GetRequestBody().GetResponse()
		if string(rb.GetBodyMutation().GetBody()) != "new" {
			t.Fatalf("body: %v", rb)
		}
		if set, _ := mutationOf(rb); set[model.UserHeader] != "user:default/alice" || set["content-length"] != "3" {
			t.Fatalf("the identity headers and the new length go with the body's answer: %v", set)
		}
		// Envoy refuses a mutated answer that disagrees with its length.
		if _, removed := mutationOf(st.out[2].GetResponseHeaders().GetResponse()); !containsStr(removed, "content-length") {
			t.Fatalf("the answer's content-length must go: %v", st.out[2])
		}
		if got := string(st.out[3].GetResponseBody().GetResponse().GetBodyMutation().GetBody()); got != "ANSWER" || up.status != 200 {
			t.Fatalf("response: %q %d", got, up.status)
		}
	})
	t.Run("an answer in the upstream's place", func(t *testing.T) {
		f.out = FilterOutput{Immediate: &FilterAnswer{Status: 200, ContentType: "application/json", Body: []byte(`{"data":null}`)}}
		st, _ := runProc(t, s, procHeadersMsg("POST", "/orders/1", h, false), procBodyMsg("x"))
		ir := st.out[1].GetImmediateResponse()
		if ir.GetStatus().GetCode() != 200 || string(ir.GetBody()) != `{"data":null}` {
			t.Fatalf("%v", st.out)
		}
	})
	t.Run("a refused request never reaches the filter", func(t *testing.T) {
		f.seen = nil
		bob := map[string]string{model.RouteHeader: ordersRoute, "authorization": "Bearer bob-token"}
		st, _ := runProc(t, s, procHeadersMsg("POST", "/orders/1", bob, false), procBodyMsg("x"))
		if f.seen != nil || st.out[1].GetImmediateResponse().GetStatus().GetCode() != 403 {
			t.Fatalf("%v %v", f.seen, st.out)
		}
	})
	t.Run("a filter that does nothing leaves body and answer alone", func(t *testing.T) {
		f.out = FilterOutput{}
		st, _ := runProc(t, s, procHeadersMsg("POST", "/orders/1", h, false), procBodyMsg("x"), procRespHeadersMsg("200"), procRespBodyMsg("y"))
		if st.out[1].GetRequestBody().GetResponse().GetBodyMutation() != nil || st.out[3].GetResponseBody().GetResponse() != nil {
			t.Fatalf("%v", st.out)
		}
	})
}

func containsStr(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// A body over the route's limit is refused before any Check (Envoy's own
// buffer limit refuses it first; this is the second line).
func TestExtProcBodyOverLimit(t *testing.T) {
	s, _, _, _ := gqlServer(t, "")
	h := map[string]string{model.RouteHeader: gqlRoute, "authorization": "Bearer alice"}
	st, _ := runProc(t, s, procHeadersMsg("POST", "/platform/graphql", h, false), procBodyMsg(`{"query":"{ __typename }"}`+strings.Repeat(" ", 300<<10)))
	if st.out[1].GetImmediateResponse().GetStatus().GetCode() != 413 {
		t.Fatalf("%v", st.out[1])
	}
}

// Filter mode end to end through the ext_proc stream: the upstream gets
// the document without the field, the client null and an error at its
// path, the audit the removed field and the mode.
func TestExtProcGraphQLFilterMode(t *testing.T) {
	s, _, _, sink := gqlServer(t, "    gatehouse.dev/graphql-options: |\n      mode: filter\n")
	h := map[string]string{model.RouteHeader: gqlRoute, "authorization": "Bearer bob"}
	body := `{"query":"query Mine { c: component(name: \"a\") { name internalNotes } }"}`
	st, err := runProc(t, s, procHeadersMsg("POST", "/platform/graphql", h, false), procBodyMsg(body),
		procRespHeadersMsg("200"), procRespBodyMsg(`{"data":{"c":{"name":"a"}}}`))
	if err != nil || len(st.out) != 4 {
		t.Fatalf("%v %v", err, st.out)
	}
	sent := string(st.out[1].GetRequestBody().GetResponse().GetBodyMutation().GetBody())
	if sent == "" || strings.Contains(sent, "internalNotes") || !strings.Contains(sent, "name") {
		t.Fatalf("upstream body %q", sent)
	}
	if set, removed := mutationOf(st.out[1].GetRequestBody().GetResponse()); set[model.UserHeader] != "user:default/bob" || !containsStr(removed, "authorization") {
		t.Fatalf("identity: %v %v", set, removed)
	}
	answer := string(st.out[3].GetResponseBody().GetResponse().GetBodyMutation().GetBody())
	if !strings.Contains(answer, `"internalNotes":null`) || !strings.Contains(answer, `"path":["c","internalNotes"]`) {
		t.Fatalf("answer %s", answer)
	}
	rec := nextRecord(t, sink)
	if rec.Decision != "allow" || rec.GraphQL == nil || rec.GraphQL.Mode != "filter" || len(rec.GraphQL.Denied) != 1 || rec.GraphQL.Denied[0].Field != "Component.internalNotes" {
		t.Fatalf("audit %+v %+v", rec, rec.GraphQL)
	}

	t.Run("the same request through ext_authz is refused (reject), never passed whole", func(t *testing.T) {
		resp, _ := s.Check(context.Background(), gqlCheckReq("bob", "POST", "/platform/graphql", body))
		if resp.GetDeniedResponse().GetStatus().GetCode() != 403 {
			t.Fatalf("%v", resp)
		}
	})
}

// A filter-mode GET through the ext_proc stream: the headers' answer sets
// :path (the same path, the rewritten query string) beside the identity
// headers, and the answer is patched.
func TestExtProcGraphQLFilterGET(t *testing.T) {
	s, _, _, _ := gqlServer(t, "    gatehouse.dev/graphql-options: |\n      mode: filter\n")
	h := map[string]string{model.RouteHeader: gqlRoute, "authorization": "Bearer bob"}
	path := "/platform/graphql?keep=%2F1&query=" + url.QueryEscape(`{ c: component(name: "a") { name internalNotes } }`)
	st, err := runProc(t, s, procHeadersMsg("GET", path, h, true), procRespHeadersMsg("200"), procRespBodyMsg(`{"data":{"c":{"name":"a"}}}`))
	if err != nil || len(st.out) != 3 {
		t.Fatalf("%v %v", err, st.out)
	}
	set, removed := mutationOf(st.out[0].GetRequestHeaders().GetResponse())
	p := set[":path"]
	if !strings.HasPrefix(p, "/platform/graphql?keep=%2F1&query=") || strings.Contains(p, "internalNotes") || !strings.Contains(p, "name") {
		t.Fatalf(":path %q", p)
	}
	if set[model.UserHeader] != "user:default/bob" || !containsStr(removed, "authorization") {
		t.Fatalf("identity: %v %v", set, removed)
	}
	answer := string(st.out[2].GetResponseBody().GetResponse().GetBodyMutation().GetBody())
	if !strings.Contains(answer, `"internalNotes":null`) || !strings.Contains(answer, `"path":["c","internalNotes"]`) {
		t.Fatalf("answer %s", answer)
	}
	t.Run("the owner: :path untouched", func(t *testing.T) {
		h := map[string]string{model.RouteHeader: gqlRoute, "authorization": "Bearer alice"}
		st, _ := runProc(t, s, procHeadersMsg("GET", path, h, true))
		if set, _ := mutationOf(st.out[0].GetRequestHeaders().GetResponse()); set[":path"] != "" || set[model.UserHeader] == "" {
			t.Fatalf("%v", set)
		}
	})
}

// Envoy's header list as Check reads headers, whatever its shape: names
// lower-cased, raw_value preferred, repeated headers joined; the source
// attribute's IP without its port, anything else as it came.
func TestExtProcHeadersAndSource(t *testing.T) {
	hm := &core.HeaderMap{Headers: []*core.HeaderValue{
		{Key: "Authorization", Value: "Bearer a"},
		{Key: "cookie", RawValue: []byte("a=1")},
		{Key: "COOKIE", RawValue: []byte("b=2"), Value: "ignored"},
		{Key: "x-empty"},
	}}
	h := procHeaders(hm)
	if h["authorization"] != "Bearer a" || h["cookie"] != "a=1,b=2" || len(h) != 3 {
		t.Fatalf("%v", h)
	}
	if len(procHeaders(nil)) != 0 {
		t.Fatal("nil headers")
	}
	for in, want := range map[string]string{"192.0.2.1:443": "192.0.2.1", "[2001:db8::1]:80": "2001:db8::1", "unix:/x": "unix:/x", "": ""} {
		st, _ := structpb.NewStruct(map[string]any{SourceAttribute: in})
		if got := sourceAddress(map[string]*structpb.Struct{"envoy.filters.http.ext_proc": st}); got != want {
			t.Errorf("%q -> %q, want %q", in, got, want)
		}
	}
	if sourceAddress(nil) != "" {
		t.Error("no attributes")
	}
}

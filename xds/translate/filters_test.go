package translate

import (
	"strings"
	"testing"

	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/gatehouse-dev/gatehouse/model"
)

// Whatever order a listener lists its filters in, they run in
// filterOrder, and a filter without a place there is refused.
func TestFilterOrderIsDecidedInOnePlace(t *testing.T) {
	fs, err := hcmFilters([]httpFilter{router{}, extProc{}, extAuthz{}, headerMutation{}}, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range fs {
		got = append(got, f.Name)
	}
	if strings.Join(got, ",") != strings.Join(filterOrder, ",") {
		t.Fatalf("filters %v, want %v", got, filterOrder)
	}
	if _, err := hcmFilters([]httpFilter{unplaced{}, router{}}, DefaultOptions()); err == nil || !strings.Contains(err.Error(), "no place in filterOrder") {
		t.Fatalf("an unplaced filter: %v", err)
	}
}

type unplaced struct{ noRouteConfig }

func (unplaced) name() string                               { return "envoy.filters.http.unplaced" }
func (unplaced) listenerConfig(Options) (*anypb.Any, error) { return nil, nil }

// ext_proc is in the listener but disabled; only a route that asks for it
// enables it (and then skips ext_authz), never a sidecar's inbound route
// or a public one.
func TestExtProcOnlyWhereARouteAsksForIt(t *testing.T) {
	fs, err := hcmFilters(checkedFilters, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		if (f.Name == extProcFilter) != f.Disabled {
			t.Fatalf("filter %s disabled=%v", f.Name, f.Disabled)
		}
	}
	plain := model.Route{ID: "r", Prefix: "/x"}
	gql := model.Route{ID: "g", Prefix: "/g", Auth: model.RouteAuth{Inspector: model.InspectorGraphQL, BodyBytes: 1024, ExtProc: true, ExtProcResponse: true}}
	for _, tc := range []struct {
		r             model.Route
		mesh, extProc bool
		authzOff      bool
	}{
		{r: plain},
		{r: gql, extProc: true, authzOff: true},
		{r: gql, mesh: true},
	} {
		cfg, err := routeFilterConfigs(checkedFilters, tc.r, tc.mesh, DefaultOptions())
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := cfg[extProcFilter]; ok != tc.extProc {
			t.Errorf("route %s mesh=%v: ext_proc config %v, want %v", tc.r.ID, tc.mesh, ok, tc.extProc)
		}
		off := false
		if a, ok := cfg[extAuthzFilter]; ok {
			var per extauthzv3.ExtAuthzPerRoute
			if err := a.UnmarshalTo(&per); err != nil {
				t.Fatal(err)
			}
			off = per.GetDisabled()
		}
		if off != tc.authzOff {
			t.Errorf("route %s mesh=%v: ext_authz disabled %v, want %v", tc.r.ID, tc.mesh, off, tc.authzOff)
		}
	}
	var per extprocv3.ExtProcPerRoute
	cfg, _ := routeFilterConfigs(checkedFilters, gql, false, DefaultOptions())
	if err := cfg[extProcFilter].UnmarshalTo(&per); err != nil {
		t.Fatal(err)
	}
	m := per.GetOverrides().GetProcessingMode()
	if m.GetRequestBodyMode() != extprocv3.ProcessingMode_BUFFERED || m.GetResponseBodyMode() != extprocv3.ProcessingMode_BUFFERED ||
		m.GetRequestHeaderMode() != extprocv3.ProcessingMode_SEND || m.GetResponseHeaderMode() != extprocv3.ProcessingMode_SKIP {
		t.Fatalf("mode %v", m)
	}
	gql.Auth.ExtProcResponse = false
	cfg, _ = routeFilterConfigs(checkedFilters, gql, false, DefaultOptions())
	_ = cfg[extProcFilter].UnmarshalTo(&per)
	if m := per.GetOverrides().GetProcessingMode(); m.GetResponseBodyMode() != extprocv3.ProcessingMode_NONE || m.GetResponseHeaderMode() != extprocv3.ProcessingMode_SKIP {
		t.Fatalf("a route that does not rewrite answers buffers none: %v", m)
	}
	mcp := gql
	mcp.Auth.ExtProcResponse, mcp.Auth.ExtProcResponseHeaders = true, true
	cfg, _ = routeFilterConfigs(checkedFilters, mcp, false, DefaultOptions())
	_ = cfg[extProcFilter].UnmarshalTo(&per)
	if m := per.GetOverrides().GetProcessingMode(); m.GetResponseBodyMode() != extprocv3.ProcessingMode_BUFFERED || m.GetResponseHeaderMode() != extprocv3.ProcessingMode_SEND {
		t.Fatalf("a filter that reads the answer's headers gets them: %v", m)
	}
}

package translate

import (
	"fmt"
	"slices"

	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/gatehouse-dev/gatehouse/model"
)

// httpFilter is one Envoy HTTP filter gatehouse writes, one small unit
// each (filter_*.go): its config on a listener and, when a route needs
// one, the route's own. A new filter (ext_proc, to rewrite bodies) is a new
// unit and a place in filterOrder.
type httpFilter interface {
	// name is the filter's Envoy name (what filterOrder places).
	name() string
	// listenerConfig is the filter's typed config in the HTTP connection
	// manager.
	listenerConfig(opts Options) (*anypb.Any, error)
	// routeConfig is the route's typed_per_filter_config for the filter;
	// nil when the route has none. meshInbound: a sidecar's inbound route.
	routeConfig(r model.Route, meshInbound bool, opts Options) (*anypb.Any, error)
}

// noRouteConfig is embedded by filters that never need a route's own
// config.
type noRouteConfig struct{}

func (noRouteConfig) routeConfig(model.Route, bool, Options) (*anypb.Any, error) { return nil, nil }

// filterOrder is the one place the HTTP filter order is decided; every
// listener's filters run in this order, whichever of them it has:
//  1. header_mutation: strip the identity headers a client may have sent,
//     then set model.RouteHeader to the name (id) of the route Envoy chose;
//  2. ext_authz: every request is checked by gatehouse (fail closed),
//     but on the routes ext_proc decides;
//  3. ext_proc: disabled but on the routes that ask for it
//     (model.RouteAuth.ExtProc), which it decides with the same Check and
//     whose bodies it may rewrite, after the route is chosen;
//  4. router: terminal, always last.
var filterOrder = []string{headerMutFilter, extAuthzFilter, extProcFilter, routerFilter}

// The filters of each kind of listener.
var (
	// checkedFilters: listeners whose requests gatehouse checks (the edge,
	// a sidecar's inbound).
	checkedFilters = []httpFilter{headerMutation{}, extAuthz{}, extProc{}, router{}}
	// plainFilters: a sidecar's outbound listener (its application's own
	// calls, routed only where the catalog says).
	plainFilters = []httpFilter{router{}}
)

// hcmFilters builds a listener's HTTP filters in filterOrder.
func hcmFilters(fs []httpFilter, opts Options) ([]*hcm.HttpFilter, error) {
	fs, err := ordered(fs)
	if err != nil {
		return nil, err
	}
	out := make([]*hcm.HttpFilter, 0, len(fs))
	for _, f := range fs {
		a, err := f.listenerConfig(opts)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.name(), err)
		}
		hf := &hcm.HttpFilter{Name: f.name(), ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: a}}
		if d, ok := f.(interface{ disabledByDefault() bool }); ok {
			// Runs only on routes whose own config enables it.
			hf.Disabled = d.disabledByDefault()
		}
		out = append(out, hf)
	}
	return out, nil
}

// routeFilterConfigs is a route's typed_per_filter_config: what each of
// the listener's filters sets for it; nil when none does.
func routeFilterConfigs(fs []httpFilter, r model.Route, meshInbound bool, opts Options) (map[string]*anypb.Any, error) {
	var out map[string]*anypb.Any
	for _, f := range fs {
		a, err := f.routeConfig(r, meshInbound, opts)
		if err != nil {
			return nil, fmt.Errorf("route %s: %s: %w", r.ID, f.name(), err)
		}
		if a == nil {
			continue
		}
		if out == nil {
			out = map[string]*anypb.Any{}
		}
		out[f.name()] = a
	}
	return out, nil
}

// ordered sorts filters into filterOrder; a filter it does not place is
// an error (a new unit must be given its place).
func ordered(fs []httpFilter) ([]httpFilter, error) {
	for _, f := range fs {
		if !slices.Contains(filterOrder, f.name()) {
			return nil, fmt.Errorf("HTTP filter %s has no place in filterOrder", f.name())
		}
	}
	fs = slices.Clone(fs)
	slices.SortStableFunc(fs, func(a, b httpFilter) int {
		return slices.Index(filterOrder, a.name()) - slices.Index(filterOrder, b.name())
	})
	return fs, nil
}

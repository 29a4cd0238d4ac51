package compile

import (
	cs "github.com/gatehouse-dev/gatehouse/catalogsync"
	"github.com/gatehouse-dev/gatehouse/model"
)

// apiAuth is the RouteAuth of an API's own route: GraphQL's, or for an
// MCP API the MCP inspector with the body Envoy buffers. MCP clients are
// programs: never sent to a browser sign-in.
func apiAuth(api *cs.Entity) model.RouteAuth {
	if api.MCP == nil {
		return graphqlAuth(api)
	}
	a := routeAuth(api)
	a.Inspector, a.BodyBytes, a.SignIn = model.InspectorMCP, model.DefaultMCPBodyBytes, model.SignInOff
	// Through gatehouse's ext_proc: the decision as Check's, and the
	// answer to tools/list rewritten to the tools the caller may call
	// (its headers too: the filter reads the status and whether the
	// answer is JSON or an event stream).
	a.ExtProc, a.ExtProcResponse, a.ExtProcResponseHeaders = true, true, true
	return a
}

// componentAuth is the RouteAuth of a component's route: an MCP API it
// provides without a path prefix of its own covers the whole route, so
// the route is read as MCP (its tool rules apply; never looser).
func componentAuth(snap *cs.Snapshot, e *cs.Entity) model.RouteAuth {
	if api := unscopedMCP(snap, e); api != nil {
		return apiAuth(api)
	}
	return routeAuth(e)
}

// unscopedMCP is the first MCP API e provides that has no path prefix of
// its own (nil when none).
func unscopedMCP(snap *cs.Snapshot, e *cs.Entity) *cs.Entity {
	for _, k := range e.RelationTargets(cs.RelProvidesAPI) {
		if api := snap.Get(k); api != nil && api.MCP != nil && (api.Routing == nil || api.Routing.PathPrefix == "") {
			return api
		}
	}
	return nil
}

// mcpPolicy is the tool policy of an MCP API served at prefix.
func mcpPolicy(api *cs.Entity, prefix string) *model.MCPPolicy {
	if api == nil || api.MCP == nil {
		return nil
	}
	p := &model.MCPPolicy{API: api.Ref().Key(), Prefix: prefix, ReadOnly: api.MCP.ReadOnly}
	for _, t := range api.MCP.Tools {
		p.Tools = append(p.Tools, model.MCPToolRule{Pattern: t.Pattern, Allow: t.Allow})
	}
	return p
}

// resourceMetadataRoute is the route that serves an MCP route's OAuth
// Protected Resource Metadata (RFC 9728) on the same host: Check answers
// it from the policy, nothing reaches the cluster.
func resourceMetadataRoute(r model.Route) model.Route {
	m := model.Route{ID: r.ID + "#oauth-protected-resource", Entity: r.Entity, API: r.API, Cluster: r.Cluster, Timeout: r.Timeout,
		Path: model.ResourceMetadataPrefix + r.Prefix,
		Auth: model.RouteAuth{Inspector: model.InspectorResourceMetadata, SignIn: model.SignInOff}}
	if r.Prefix == "/" {
		m.Path = model.ResourceMetadataPrefix
	}
	return m
}

// routePrefix is the path of the resource a route serves: its prefix, or
// for the metadata route the MCP route's prefix it describes.
func routePrefix(r model.Route) string {
	if r.Auth.Inspector == model.InspectorResourceMetadata {
		if p := r.Path[len(model.ResourceMetadataPrefix):]; p != "" {
			return p
		}
		return "/"
	}
	return r.Prefix
}

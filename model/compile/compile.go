// Package compile turns a catalog snapshot into a model.Model (Compile) and
// follows a store's generations (Follow). It is the one place that reads
// both catalogsync and model: the IR stays a leaf, and xds and extauthz,
// which import only model, never link the catalog store or its sources.
package compile

import (
	"net"
	"sort"
	"strings"

	cs "github.com/gatehouse-dev/gatehouse/catalogsync"
	"github.com/gatehouse-dev/gatehouse/model"
)

// Compile turns a catalog snapshot into a Model. It is a pure function of the
// snapshot: the same catalog gives the same Model and Version. Problems found
// while compiling (route conflicts, API prefixes outside their provider) are
// returned; the affected routes are left out, everything else compiles.
func Compile(snap *cs.Snapshot) (*model.Model, cs.Problems) {
	m := &model.Model{}
	claims, clusters, problems := claimRoutes(snap)
	vhosts, ps := resolveClaims(claims)
	problems = append(problems, ps...)
	m.VirtualHosts = vhosts
	m.Clusters = usedClusters(clusters, vhosts)
	mesh, ps := compileMesh(snap)
	m.Mesh = mesh
	problems = append(problems, ps...)
	problems = append(problems, compileAuthz(snap, m)...)
	m.Version = model.ContentVersion(m)
	return m, problems
}

// claim is one entity's claim on a host and prefix: the component's own
// route, or the route of an API that scopes its provider's paths.
type claim struct {
	route  model.Route
	entity *cs.Entity // who made the claim (the component, or the API)
	host   string
}

// claimRoutes collects every routed entity's cluster and its route claims,
// keyed "host prefix"; an API prefix outside its provider's prefix is a
// problem and claims nothing.
func claimRoutes(snap *cs.Snapshot) (map[string][]claim, []model.Cluster, cs.Problems) {
	var problems cs.Problems
	var clusters []model.Cluster
	claims := map[string][]claim{} // "host prefix" -> claims
	for _, e := range snap.Routed() {
		ref := e.Ref()
		key := ref.Key()
		r := e.Routing
		timeout := r.Timeout
		if timeout == 0 {
			timeout = model.DefaultRouteTimeout
		}
		clusters = append(clusters, clusterFor(key, r))
		prefix := r.RoutePrefix(e.Metadata.Name)
		for _, host := range r.RouteHosts() {
			c := claim{entity: e, host: host, route: model.Route{ID: key + "@" + host + prefix, Entity: key, Prefix: prefix, Cluster: key, Timeout: model.Duration(timeout), Auth: componentAuth(snap, e)}}
			claims[host+" "+prefix] = append(claims[host+" "+prefix], c)
		}
		// APIs this entity provides that scope their own paths.
		for _, apiKey := range e.RelationTargets(cs.RelProvidesAPI) {
			api := snap.Get(apiKey)
			if api != nil && api.GraphQL != nil && (api.Routing == nil || api.Routing.PathPrefix == "") {
				problems = append(problems, cs.Problem{Severity: cs.SeverityWarning, Source: api.Origin.Source, File: api.Origin.File, Line: api.Origin.Line,
					Entity: api.Ref().String(), Field: "metadata.annotations[" + cs.AnnPathPrefix + "]",
					Message: "GraphQL API without a path prefix of its own: its field rules are not enforced, the provider's route is authorized as plain HTTP",
					Fix:     "add gatehouse.dev/path-prefix (e.g. " + strings.TrimSuffix(prefix, "/") + "/graphql) so gatehouse reads the operations on that route"})
			}
			if api == nil || api.Routing == nil || api.Routing.PathPrefix == "" {
				continue
			}
			ap := api.Routing.PathPrefix
			if !under(ap, prefix) {
				problems = append(problems, cs.Problem{Severity: cs.SeverityError, Source: api.Origin.Source, File: api.Origin.File, Line: api.Origin.Line,
					Entity: api.Ref().String(), Field: "metadata.annotations[" + cs.AnnPathPrefix + "]",
					Message: "path prefix " + ap + " is outside the prefix " + prefix + " of its provider " + ref.String() + "; the API gets no route of its own there",
					Fix:     "use a prefix under " + prefix + " (e.g. " + strings.TrimSuffix(prefix, "/") + "/v1)"})
				continue
			}
			for _, host := range r.RouteHosts() {
				c := claim{entity: api, host: host, route: model.Route{ID: apiKey + "@" + host + ap, Entity: key, API: apiKey, Prefix: ap, Cluster: key, Timeout: model.Duration(timeout), Auth: apiAuth(api)}}
				claims[host+" "+ap] = append(claims[host+" "+ap], c)
			}
		}
	}
	return claims, clusters, problems
}

// resolveClaims picks one winner per host+prefix and builds the virtual
// hosts. An API scoping its own provider's prefix is a refinement, not a
// conflict; between different entities the smallest ref wins (deterministic
// across replicas) and the others are reported. A winning component route
// brings its public paths along.
func resolveClaims(claims map[string][]claim) ([]model.VirtualHost, cs.Problems) {
	var problems cs.Problems
	vhosts := map[string]*model.VirtualHost{}
	for _, k := range sortedKeys(claims) {
		cl := claims[k]
		sort.SliceStable(cl, func(i, j int) bool {
			if cl[i].route.Entity != cl[j].route.Entity {
				return cl[i].route.Entity < cl[j].route.Entity
			}
			// same provider: the API claim refines the component's
			return cl[i].route.API > cl[j].route.API
		})
		win := cl[0]
		for _, lose := range cl[1:] {
			if lose.route.Entity == win.route.Entity {
				continue
			}
			host := lose.host
			problems = append(problems, cs.Problem{Severity: cs.SeverityError, Source: lose.entity.Origin.Source, File: lose.entity.Origin.File, Line: lose.entity.Origin.Line,
				Entity: lose.entity.Ref().String(), Field: "metadata.annotations[" + cs.AnnPathPrefix + "]",
				Message: "route conflict: host " + host + " prefix " + lose.route.Prefix + " is already claimed by " + win.entity.Ref().String() + ", which wins (smallest ref); this route is not served",
				Fix:     "give one of the two entities another gatehouse.dev/path-prefix or gatehouse.dev/hosts"})
		}
		vh := vhosts[win.host]
		if vh == nil {
			vh = &model.VirtualHost{Name: win.host, Domains: []string{win.host}}
			vhosts[win.host] = vh
		}
		vh.Routes = append(vh.Routes, win.route)
		if win.route.Auth.Inspector == model.InspectorMCP {
			vh.Routes = append(vh.Routes, resourceMetadataRoute(win.route))
		}
		if win.route.API == "" {
			pub, ps := publicRoutes(win.entity, win.route)
			vh.Routes = append(vh.Routes, pub...)
			problems = append(problems, ps...)
		}
	}
	var out []model.VirtualHost
	for _, h := range sortedKeys(vhosts) {
		vh := vhosts[h]
		sortRoutes(vh.Routes)
		out = append(out, *vh)
	}
	// The shared host is the catch-all: Envoy needs it last among equals, and
	// it reads better last.
	sort.SliceStable(out, func(i, j int) bool {
		return out[i].Name != cs.SharedHost && out[j].Name == cs.SharedHost
	})
	return out, problems
}

// usedClusters keeps only the clusters some route still sends to (a loser of
// every conflict has none).
func usedClusters(clusters []model.Cluster, vhosts []model.VirtualHost) []model.Cluster {
	used := map[string]bool{}
	for _, vh := range vhosts {
		for _, r := range vh.Routes {
			used[r.Cluster] = true
		}
	}
	out := clusters[:0]
	for _, c := range clusters {
		if used[c.Name] {
			out = append(out, c)
		}
	}
	return out
}

func clusterFor(key string, r *cs.Routing) model.Cluster {
	c := model.Cluster{Name: key, Entity: key, Discovery: model.DiscoveryStatic, TLS: r.Upstreams[0].Scheme == "https"}
	for _, ep := range r.Upstreams {
		if net.ParseIP(ep.Host) == nil {
			c.Discovery = model.DiscoveryDNS
		}
		c.Endpoints = append(c.Endpoints, model.Endpoint{Host: ep.Host, Port: ep.Port})
	}
	return c
}

// under reports whether prefix p is equal to or below base, on segment
// boundaries.
func under(p, base string) bool {
	if base == "/" || p == base {
		return true
	}
	return strings.HasPrefix(p, base+"/")
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// routeAuth is the per-route Check settings an entity's annotations ask
// for (gatehouse.dev/sign-in: off).
func routeAuth(e *cs.Entity) model.RouteAuth {
	var a model.RouteAuth
	if e.Access != nil && e.Access.SignInOff {
		a.SignIn = model.SignInOff
	}
	return a
}

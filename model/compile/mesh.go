package compile

import (
	"net"
	"sort"

	cs "github.com/gatehouse-dev/gatehouse/catalogsync"
	"github.com/gatehouse-dev/gatehouse/model"
)

// meshRouteHost marks the route ids of sidecar inbound routes
// (<component>@mesh:<prefix>, also for the routes of its APIs); a colon
// never occurs in a host name, so these ids cannot collide with edge route
// ids (<entity>@<host><prefix>).
const meshRouteHost = "mesh:"

func compileMesh(snap *cs.Snapshot) ([]model.MeshService, cs.Problems) {
	var out []model.MeshService
	var problems cs.Problems
	for _, e := range snap.ByKind(cs.KindComponent) {
		if e.Mesh == nil {
			continue
		}
		key := e.Ref().Key()
		svc := model.MeshService{Component: key, Address: model.Endpoint{Host: e.Mesh.Host, Port: e.Mesh.Port}, Discovery: model.DiscoveryStatic}
		if net.ParseIP(e.Mesh.Host) == nil {
			svc.Discovery = model.DiscoveryDNS
		}
		inbound, ps := meshInbound(snap, e)
		svc.Inbound = inbound
		problems = append(problems, ps...)
		targets, ps := meshTargets(snap, e)
		problems = append(problems, ps...)
		outbound, ps := meshOutbound(e, targets)
		svc.Outbound = outbound
		problems = append(problems, ps...)
		out = append(out, svc)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Component < out[j].Component })
	return out, problems
}

// meshInbound is what a component's sidecar serves, most specific first:
// the whole application, plus a route of its own for every API it provides
// that scopes its paths (so consumers of that API reach exactly those
// paths), plus its public paths.
func meshInbound(snap *cs.Snapshot, e *cs.Entity) ([]model.Route, cs.Problems) {
	key := e.Ref().Key()
	timeout := model.DefaultRouteTimeout
	if e.Routing != nil && e.Routing.Timeout > 0 {
		timeout = e.Routing.Timeout
	}
	base := model.Route{ID: key + "@" + meshRouteHost + "/", Entity: key, Prefix: "/", Cluster: key, Timeout: model.Duration(timeout)}
	inbound := []model.Route{base}
	// Ids are the component's, not the API's: an API provided by several
	// mesh components gets a route (and a policy, with each provider's
	// owners and rules) on each. Two APIs of one component with the same
	// prefix share one route, the smallest API's (Envoy would match only the
	// first anyway).
	apis := e.RelationTargets(cs.RelProvidesAPI)
	sort.Strings(apis)
	prefixes := map[string]bool{}
	for _, apiKey := range apis {
		api := snap.Get(apiKey)
		if api == nil || api.Routing == nil || api.Routing.PathPrefix == "" || api.Routing.PathPrefix == "/" || prefixes[api.Routing.PathPrefix] {
			continue
		}
		ap := api.Routing.PathPrefix
		prefixes[ap] = true
		inbound = append(inbound, model.Route{ID: key + "@" + meshRouteHost + ap, Entity: key, API: apiKey, Prefix: ap, Cluster: key, Timeout: model.Duration(timeout)})
	}
	pub, problems := publicRoutes(e, base)
	inbound = append(inbound, pub...)
	sortRoutes(inbound)
	return inbound, problems
}

// meshTargets is every name a component declares it calls: the APIs it
// consumes (served by the smallest mesh provider; several are reported)
// and the components it depends on.
func meshTargets(snap *cs.Snapshot, e *cs.Entity) ([]model.MeshTarget, cs.Problems) {
	var targets []model.MeshTarget
	var problems cs.Problems
	for _, apiKey := range e.RelationTargets(cs.RelConsumesAPI) {
		api := snap.Get(apiKey)
		if api == nil {
			continue // a relation to an entity not in the catalog (reported by validation)
		}
		t := model.MeshTarget{Host: meshHost(api.Ref()), Ref: apiKey, Via: "consumesApis"}
		var providers []string
		for _, p := range api.RelationTargets(cs.RelAPIProvidedBy) {
			if pe := snap.Get(p); pe != nil && pe.Kind == cs.KindComponent && pe.Mesh != nil {
				providers = append(providers, p)
			}
		}
		sort.Strings(providers)
		switch {
		case len(providers) == 0:
			t.Unreachable = "no Component providing " + api.Ref().String() + " is in the mesh (fix: set " + cs.AnnMeshAddress + " on its provider)"
		default:
			t.Provider = providers[0]
			if len(providers) > 1 {
				problems = append(problems, cs.Problem{Severity: cs.SeverityWarning, Source: api.Origin.Source, File: api.Origin.File, Line: api.Origin.Line,
					Entity: api.Ref().String(), Field: "relations[apiProvidedBy]",
					Message: "several mesh components provide this API; sidecars send its calls to " + providers[0] + " (smallest ref)",
					Fix:     "let one Component provide the API, or give each provider its own API entity"})
			}
		}
		targets = append(targets, t)
	}
	for _, dep := range e.RelationTargets(cs.RelDependsOn) {
		de := snap.Get(dep)
		if de == nil || de.Kind != cs.KindComponent {
			continue // dependencies on Resources (databases, queues) are not HTTP services in the mesh
		}
		t := model.MeshTarget{Host: meshHost(de.Ref()), Ref: dep, Via: "dependsOn"}
		if de.Mesh != nil {
			t.Provider = dep
		} else {
			t.Unreachable = de.Ref().String() + " is not in the mesh (fix: set " + cs.AnnMeshAddress + " on it)"
		}
		targets = append(targets, t)
	}
	return targets, problems
}

// meshOutbound keeps one target per name, sorted by host. An API and a
// component of the same name and namespace served by different components
// is ambiguous: the API keeps the name and the clash is reported.
func meshOutbound(e *cs.Entity, targets []model.MeshTarget) ([]model.MeshTarget, cs.Problems) {
	var out []model.MeshTarget
	var problems cs.Problems
	sort.SliceStable(targets, func(i, j int) bool {
		if targets[i].Host != targets[j].Host {
			return targets[i].Host < targets[j].Host
		}
		return targets[i].Via < targets[j].Via // consumesApis before dependsOn
	})
	for _, t := range targets {
		if n := len(out); n > 0 && out[n-1].Host == t.Host {
			if prev := out[n-1]; prev.Provider != t.Provider {
				problems = append(problems, cs.Problem{Severity: cs.SeverityWarning, Source: e.Origin.Source, File: e.Origin.File, Line: e.Origin.Line,
					Entity: e.Ref().String(), Field: "spec.dependsOn",
					Message: "mesh name " + t.Host + " of " + t.Ref + " is taken by " + prev.Ref + "; the sidecar routes it to " + prev.Ref,
					Fix:     "rename one of the two entities"})
			}
			continue
		}
		out = append(out, t)
	}
	return out, problems
}

func meshHost(ref cs.Ref) string { return model.MeshHost(ref.Name, ref.Namespace) }

// sortRoutes orders routes most specific first: exact paths, then the
// longest prefix, a public subtree before an equal protected prefix.
func sortRoutes(rs []model.Route) {
	sort.SliceStable(rs, func(i, j int) bool {
		a, b := rs[i], rs[j]
		if (a.Path != "") != (b.Path != "") {
			return a.Path != ""
		}
		if len(a.Prefix) != len(b.Prefix) {
			return len(a.Prefix) > len(b.Prefix)
		}
		if a.Public != b.Public {
			return a.Public
		}
		return a.ID < b.ID
	})
}

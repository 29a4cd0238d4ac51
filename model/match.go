package model

import "strings"

// Match finds the route Envoy would pick for a host and path, with the same
// rules the translator gives Envoy: the virtual host by exact domain, then
// the longest wildcard suffix (*.example.com), then the shared host "*";
// within it the first route that matches (exact paths, then the longest
// prefix on segment boundaries). The port of host is ignored. It is for
// explaining decisions offline; Envoy does the matching on the data path.
func (m *Model) Match(host, path string) (*VirtualHost, *Route) {
	host = hostOnly(host)
	var vh *VirtualHost
	best := -1
	for i := range m.VirtualHosts {
		for _, d := range m.VirtualHosts[i].Domains {
			switch {
			case d == host:
				vh, best = &m.VirtualHosts[i], 1<<30
			case strings.HasPrefix(d, "*.") && strings.HasSuffix(host, d[1:]) && len(d) > best:
				vh, best = &m.VirtualHosts[i], len(d)
			case d == "*" && best < 0:
				vh, best = &m.VirtualHosts[i], 0
			}
		}
	}
	if vh == nil {
		return nil, nil
	}
	return vh, firstMatch(vh.Routes, path)
}

// firstMatch is the first route of a list (most specific first) that
// matches path, as Envoy picks it: an exact path, "/", or a prefix on
// segment boundaries. The query is ignored.
func firstMatch(routes []Route, path string) *Route {
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	for i := range routes {
		if routes[i].MatchesPath(path) {
			return &routes[i]
		}
	}
	return nil
}

// MatchesPath reports whether the route matches a path (without query) as
// Envoy matches it: the exact path, "/", or the prefix on segment
// boundaries.
func (r *Route) MatchesPath(path string) bool {
	switch {
	case r.Path != "":
		return path == r.Path
	case r.Prefix == "/":
		return true
	default:
		return path == r.Prefix || strings.HasPrefix(path, r.Prefix+"/")
	}
}

// hostOnly lower-cases a host and drops its port (not the colons of an
// IPv6 literal).
func hostOnly(host string) string {
	host = strings.ToLower(host)
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		host = host[:i]
	}
	return host
}

// MatchMesh finds, for a mesh name (<name>.<namespace>.gatehouse.internal)
// and a path, the component serving it and the inbound route its sidecar
// would pick. svc is nil when no mesh component serves the name.
func (m *Model) MatchMesh(host, path string) (*MeshService, *Route) {
	host = hostOnly(host)
	var svc *MeshService
	for i := range m.Mesh {
		for _, t := range m.Mesh[i].Outbound {
			if t.Host == host && t.Provider != "" {
				svc = m.MeshService(t.Provider)
				break
			}
		}
		if svc != nil {
			break
		}
	}
	if svc == nil {
		return nil, nil
	}
	return svc, firstMatch(svc.Inbound, path)
}

// IsMeshHost reports whether host (port ignored) is a mesh name.
func IsMeshHost(host string) bool {
	return strings.HasSuffix(hostOnly(host), "."+MeshDomain)
}

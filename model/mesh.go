package model

import "sort"

// MeshDomain is the DNS suffix of mesh names: an application reaches an API
// it consumes at http://<api>.<namespace>.gatehouse.internal through its
// sidecar's outbound listener (and a component it depends on at
// http://<component>.<namespace>.gatehouse.internal).
const MeshDomain = "gatehouse.internal"

// MeshService is one Component in the mesh (gatehouse.dev/mesh-address):
// what its sidecar serves inbound and which names it may call outbound.
type MeshService struct {
	Component string    `json:"component" yaml:"component"`
	Address   Endpoint  `json:"address" yaml:"address"` // where other sidecars reach its inbound listener
	Discovery Discovery `json:"discovery" yaml:"discovery"`
	// Inbound routes to the local application, most specific first; each
	// has a policy (Model.Policies) like an edge route. Their Cluster names
	// the component (the sidecar sends them to its local application).
	Inbound []Route `json:"inbound" yaml:"inbound"`
	// Outbound: the only names the component's sidecar routes, sorted by host.
	Outbound []MeshTarget `json:"outbound,omitempty" yaml:"outbound,omitempty"`
}

// MeshTarget is one name a component may call through its sidecar.
type MeshTarget struct {
	Host string `json:"host" yaml:"host"` // <name>.<namespace>.gatehouse.internal
	Ref  string `json:"ref" yaml:"ref"`   // the API or Component it names
	Via  string `json:"via" yaml:"via"`   // the spec field that declares it: consumesApis or dependsOn
	// Provider is the mesh Component serving it; empty when it cannot be
	// reached, and Unreachable says why.
	Provider    string `json:"provider,omitempty" yaml:"provider,omitempty"`
	Unreachable string `json:"unreachable,omitempty" yaml:"unreachable,omitempty"`
}

// MeshService returns the mesh entry of a component key, or nil.
func (m *Model) MeshService(component string) *MeshService {
	i := sort.Search(len(m.Mesh), func(i int) bool { return m.Mesh[i].Component >= component })
	if i < len(m.Mesh) && m.Mesh[i].Component == component {
		return &m.Mesh[i]
	}
	return nil
}

// MeshHost is the mesh name of an entity, from its ref's name and namespace.
func MeshHost(name, namespace string) string {
	return name + "." + namespace + "." + MeshDomain
}

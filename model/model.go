// Package model is gatehouse's intermediate representation: plain, immutable
// structs compiled from a catalog snapshot (by package model/compile) and
// consumed by the xDS translator and the authorization engine. It is a leaf:
// it knows nothing of Envoy and imports no other gatehouse package, so xds
// and extauthz link neither the catalog store nor its sources
// (internal/depcheck checks this).
package model

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// Model is one compiled catalog generation. It is never modified after
// Compile returns it.
type Model struct {
	// Version is a content hash of everything below: two replicas that read
	// the same catalog produce the same version.
	Version      string        `json:"version" yaml:"version"`
	VirtualHosts []VirtualHost `json:"virtualHosts" yaml:"virtualHosts"`
	Clusters     []Cluster     `json:"clusters" yaml:"clusters"`
	// Policies: one per route id, sorted by route id.
	Policies []Policy `json:"policies" yaml:"policies"`
	// Mesh: the Components in the service mesh, sorted by component.
	Mesh []MeshService `json:"mesh,omitempty" yaml:"mesh,omitempty"`
	// Directory maps IdP identities to catalog users, groups and components.
	Directory Directory `json:"directory" yaml:"directory"`
}

// VirtualHost is one host name's routes ("*" is the shared host).
type VirtualHost struct {
	Name    string   `json:"name" yaml:"name"`
	Domains []string `json:"domains" yaml:"domains"`
	Routes  []Route  `json:"routes" yaml:"routes"`
}

// Route sends a path prefix on a host to a cluster.
type Route struct {
	// ID is stable across catalog versions as long as the entity, host and
	// prefix stay; it travels to the authorization check with the request.
	ID     string `json:"id" yaml:"id"`
	Entity string `json:"entity" yaml:"entity"`
	// Auth is how the route's requests reach Check (model/contract.go);
	// the zero value, left out of the encoding, is every route's today.
	Auth RouteAuth `json:"auth,omitzero" yaml:"auth,omitempty"`

	// API is set when this route scopes the paths of an API the entity
	// provides (gatehouse.dev/path-prefix on the API).
	API    string `json:"api,omitempty" yaml:"api,omitempty"`
	Prefix string `json:"prefix,omitempty" yaml:"prefix,omitempty"` // "/" or a prefix without trailing slash, matched on segment boundaries
	Path   string `json:"path,omitempty" yaml:"path,omitempty"`     // exact path (public paths only); Prefix is empty then
	// Public routes serve a gatehouse.dev/public-paths entry without a token
	// (Envoy skips the authorization check on them).
	Public bool `json:"public,omitempty" yaml:"public,omitempty"`
	// ForwardToken (public routes): the caller's Authorization header
	// reaches the upstream (gatehouse.dev/forward-token); otherwise Envoy
	// removes it on public routes, which Check does not see.
	ForwardToken bool     `json:"forwardToken,omitempty" yaml:"forwardToken,omitempty"`
	Cluster      string   `json:"cluster" yaml:"cluster"`
	Timeout      Duration `json:"timeout" yaml:"timeout"`
}

// DefaultRouteTimeout applies when an entity sets no gatehouse.dev/timeout.
const DefaultRouteTimeout = 15 * time.Second

// Discovery says how Envoy finds a cluster's endpoints.
type Discovery string

const (
	// DiscoveryStatic: endpoints are IP addresses.
	DiscoveryStatic Discovery = "static"
	// DiscoveryDNS: endpoints are host names Envoy resolves (STRICT_DNS).
	DiscoveryDNS Discovery = "dns"
)

// Cluster is one upstream service.
type Cluster struct {
	Name      string     `json:"name" yaml:"name"`
	Entity    string     `json:"entity" yaml:"entity"`
	TLS       bool       `json:"tls,omitempty" yaml:"tls,omitempty"`
	Discovery Discovery  `json:"discovery" yaml:"discovery"`
	Endpoints []Endpoint `json:"endpoints" yaml:"endpoints"`
}

// Endpoint is a host and port.
type Endpoint struct {
	Host string `json:"host" yaml:"host"`
	Port uint32 `json:"port" yaml:"port"`
}

// Duration is a time.Duration that reads and writes as "15s".
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	*d = Duration(v)
	return err
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalYAML implements yaml.Unmarshaler (yaml.v3 style).
func (d *Duration) UnmarshalYAML(unmarshal func(any) error) error {
	var s string
	if err := unmarshal(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// ContentVersion returns the content hash of a model (its Version field
// ignored).
func ContentVersion(m *Model) string {
	c := *m
	c.Version = ""
	b, err := json.Marshal(&c)
	if err != nil {
		panic(err) // plain structs always marshal
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// Std returns the time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

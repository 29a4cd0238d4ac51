package xds

import (
	"fmt"
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/gatehouse-dev/gatehouse/model"
	"github.com/gatehouse-dev/gatehouse/xds/translate"
)

// The translator is package xds/translate (pure: a model and a node in,
// Envoy resources out); the server serves what it returns. These are its
// names as the server's API takes them.
type (
	// Node is what the translator needs to know about one Envoy.
	Node = translate.Node
	// Options are the translator's settings that do not come from the
	// catalog (and the server's send budget).
	Options = translate.Options
	// UpstreamTLS is how an Envoy connects to a gatehouse listener over TLS.
	UpstreamTLS = translate.UpstreamTLS
	// Resources is the translated configuration of one node, by xDS type.
	Resources = translate.Resources
	// Sidecar is what a sidecar node says about itself in its metadata.
	Sidecar = translate.Sidecar
)

// Node roles, resource names and defaults (see package translate).
const (
	RoleEdge            = translate.RoleEdge
	RoleSidecar         = translate.RoleSidecar
	AuthzClusterName    = translate.AuthzClusterName
	EdgeRouteConfigName = translate.EdgeRouteConfigName
	IdentitySecret      = translate.IdentitySecret
	TrustSecret         = translate.TrustSecret
	DefaultInboundPort  = translate.DefaultInboundPort
	DefaultOutboundPort = translate.DefaultOutboundPort
)

// DefaultOptions returns the defaults.
func DefaultOptions() Options { return translate.DefaultOptions() }

// Translate builds the Envoy resources for a node from a model (pure).
func Translate(m *model.Model, n Node, opts Options) (*Resources, error) {
	return translate.Translate(m, n, opts)
}

// ToYAML renders a protobuf message as YAML.
func ToYAML(m proto.Message) ([]byte, error) { return translate.ToYAML(m) }

// ParsePort reads a port from node metadata.
func ParsePort(s string) (uint32, error) {
	p, err := strconv.ParseUint(s, 10, 16)
	if err != nil || p == 0 {
		return 0, fmt.Errorf("invalid port %q", s)
	}
	return uint32(p), nil
}

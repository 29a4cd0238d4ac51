// Package translate turns a model.Model into the Envoy resources of one
// node (Translate). It is pure: it reads the model and the node and
// writes nothing, so the ADS server (package xds), `gatehouse translate`
// and the golden tests get the same resources from the same function.
package translate

import (
	"fmt"
	"slices"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"

	"github.com/gatehouse-dev/gatehouse/model"
)

// Node roles, read from the Envoy node metadata field "role".
const (
	RoleEdge = "edge"
)

// Node is what the translator needs to know about one Envoy.
type Node struct {
	ID   string
	Role string
	// ListenPort overrides Options.EdgePort for this node (node metadata
	// "listen_port"), so several edges can share a host.
	ListenPort uint32
	// Sidecar: set for role sidecar.
	Sidecar *Sidecar
}

// Options are the translator's settings that do not come from the catalog.
type Options struct {
	// EdgeAddress and EdgePort: where the edge listener binds.
	EdgeAddress string
	EdgePort    uint32
	// UpstreamCAFile: CA bundle, on the Envoy's file system, used to verify
	// https upstreams.
	UpstreamCAFile string
	// AuthzAddress: host:port where Envoys reach gatehouse's ext_authz
	// service, or several comma-separated (one per replica: the ext_authz
	// cluster lists them all); AuthzTimeout bounds one Check.
	AuthzAddress string
	AuthzTimeout time.Duration
	// AuthzTLS, when set, makes Envoys use TLS to the ext_authz listener.
	AuthzTLS *UpstreamTLS
	// TrustDomain is the mesh's SPIFFE trust domain; empty disables the
	// mesh (sidecar nodes get no configuration).
	TrustDomain string
	// MeshCertTTL is the sidecar certificates' lifetime: a connection
	// between sidecars lasts at most half of it, so renewed certificates
	// (and a changed trust bundle) take effect on every connection.
	MeshCertTTL time.Duration

	// RemoveRequestHeaders are removed from every request (edge and
	// sidecars) before any filter reads it (config edge.remove_request_headers).
	RemoveRequestHeaders []string
	// CredentialCookie is the cookie that carries a token
	// (authz.cookie_name); when set, public routes are checked too, so
	// that Check removes it before their upstreams.
	CredentialCookie string
	// SignInAddress: where Envoys reach gatehouse's sign-in listener
	// (host:port, comma-separated per replica); empty: no sign-in routes.
	SignInAddress string
	// ExchangeAddress: where Envoys reach gatehouse's token exchange
	// listener (host:port, comma-separated per replica); empty: no
	// exchange route.
	ExchangeAddress string

	// SendBudget (the server's, not the translator's) bounds the bytes of
	// large responses on their way to Envoys at once (see sendBudget); 0:
	// no bound.
	SendBudget int64
}

// UpstreamTLS is how an Envoy connects to a gatehouse listener over TLS:
// files on the Envoy's file system.
type UpstreamTLS struct {
	CAFile     string
	CertFile   string // client certificate for mutual TLS (optional)
	KeyFile    string
	ServerName string // SNI and the name the certificate must carry (optional)
}

// DefaultOptions returns the defaults.
func DefaultOptions() Options {
	return Options{EdgeAddress: "0.0.0.0", EdgePort: 10000, UpstreamCAFile: "/etc/ssl/certs/ca-certificates.crt",
		AuthzAddress: "127.0.0.1:18001", AuthzTimeout: 500 * time.Millisecond, SendBudget: DefaultSendBudget,
		RemoveRequestHeaders: slices.Clone(model.DefaultRemoveRequestHeaders)}
}

// DefaultSendBudget is the default Options.SendBudget: 128 MiB, about 14
// full configurations of 10k components at once.
const DefaultSendBudget = 128 << 20

// Resources is the translated configuration of one node, by xDS type.
type Resources struct {
	Listeners []types.Resource
	Routes    []types.Resource
	Clusters  []types.Resource
	Secrets   []types.Resource // per node (sidecars); never shared
}

// Names of the resources every edge gets.
const (
	EdgeListenerName    = "edge_http"
	EdgeRouteConfigName = "edge_routes"
)

// Translate builds the Envoy resources for a node from a model. It is pure:
// it reads the model and writes nothing into it.
func Translate(m *model.Model, n Node, opts Options) (*Resources, error) {
	switch n.Role {
	case RoleEdge:
		return translateEdge(m, n, opts)
	case RoleSidecar:
		return translateSidecar(m, n, opts)
	case "":
		return nil, fmt.Errorf("node %q has no role; set node.metadata.role in its bootstrap (one of: %s, %s)", n.ID, RoleEdge, RoleSidecar)
	default:
		return nil, fmt.Errorf("node %q has unknown role %q; set node.metadata.role to one of: %s, %s", n.ID, n.Role, RoleEdge, RoleSidecar)
	}
}

func translateEdge(m *model.Model, n Node, opts Options) (*Resources, error) {
	port := opts.EdgePort
	if n.ListenPort != 0 {
		port = n.ListenPort
	}
	l, err := edgeListener(opts.EdgeAddress, port, opts)
	if err != nil {
		return nil, err
	}
	rc, err := routeConfig(EdgeRouteConfigName, m, opts)
	if err != nil {
		return nil, err
	}
	ac, err := authzCluster(opts)
	if err != nil {
		return nil, err
	}
	res := &Resources{Listeners: []types.Resource{l}, Routes: []types.Resource{rc}, Clusters: []types.Resource{ac}}
	if opts.SignInAddress != "" {
		sc, err := signInCluster(opts)
		if err != nil {
			return nil, err
		}
		res.Clusters = append(res.Clusters, sc)
	}
	if opts.ExchangeAddress != "" {
		ec, err := exchangeCluster(opts)
		if err != nil {
			return nil, err
		}
		res.Clusters = append(res.Clusters, ec)
	}
	for _, c := range m.Clusters {
		cl, err := buildCluster(c, opts)
		if err != nil {
			return nil, err
		}
		res.Clusters = append(res.Clusters, cl)
	}
	return res, nil
}

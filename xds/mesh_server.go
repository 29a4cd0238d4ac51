package xds

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/gatehouse-dev/gatehouse/meshca"
)

// IdentityIssuer issues sidecar workload certificates (a *meshca.CA).
type IdentityIssuer interface {
	Issue(component string, ttl time.Duration) (*meshca.Certificate, error)
	TrustBundle() []byte
}

// CertInfo is what /debug/nodes shows of a sidecar's certificate.
type CertInfo struct {
	SPIFFEID string    `json:"spiffeId"`
	Serial   string    `json:"serial"`
	NotAfter time.Time `json:"notAfter"`
	RenewAt  time.Time `json:"renewAt"`
}

// EnableMesh lets the server configure sidecars: certificates from ca, valid
// for ttl and renewed at half their life (over SDS; Envoy uses the new one
// for new connections and keeps the open ones). Call before serving.
func (s *Server) EnableMesh(ctx context.Context, ca IdentityIssuer, ttl time.Duration) {
	s.mu.Lock()
	s.ca, s.certTTL = ca, ttl
	s.mu.Unlock()
	tick := ttl / 20
	tick = min(max(tick, 100*time.Millisecond), 30*time.Second)
	go func() {
		t := time.NewTicker(tick)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				s.renewDue()
			}
		}
	}()
}

// renewDue re-issues every sidecar certificate past its renewal time: the
// pusher gives the node a config with the new secrets, and its streams
// send only those.
func (s *Server) renewDue() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	due := false
	for _, id := range sortedNodeIDs(s.nodes) {
		n := s.nodes[id]
		if n.cert != nil && !now.Before(n.renewAt) {
			n.cert, n.pushedVersion = nil, "" // applyLocked issues a new one
			certRenewals.Inc()
			due = true
		}
	}
	if due {
		s.kickLocked()
	}
}

// sidecarMeta reads a sidecar's node metadata; an error makes the node get
// no configuration.
func sidecarMeta(node *core.Node) (*Sidecar, error) {
	sc := &Sidecar{Component: strings.ToLower(metaString(node, "component")), InboundAddress: metaString(node, "inbound_address"),
		InboundPort: DefaultInboundPort, OutboundPort: DefaultOutboundPort}
	if sc.Component == "" {
		return nil, fmt.Errorf("node %q: role sidecar needs metadata component (fix: gatehouse bootstrap --role sidecar --component component:<namespace>/<name>)", node.GetId())
	}
	if _, _, err := meshca.ParseComponent(sc.Component); err != nil {
		return nil, fmt.Errorf("node %q: metadata component: %v (fix: write the full ref, e.g. component:default/orders)", node.GetId(), err)
	}
	ports := []struct {
		key      string
		dst      *uint32
		required bool
	}{{"app_port", &sc.AppPort, true}, {"inbound_port", &sc.InboundPort, false}, {"outbound_port", &sc.OutboundPort, false}}
	for _, p := range ports {
		v := metaString(node, p.key)
		if v == "" {
			if p.required {
				return nil, fmt.Errorf("node %q: role sidecar needs metadata %s, the port the application listens on at 127.0.0.1 (fix: gatehouse bootstrap --app-port)", node.GetId(), p.key)
			}
			continue
		}
		port, err := ParsePort(v)
		if err != nil {
			return nil, fmt.Errorf("node %q: metadata %s: %v (fix: a port 1-65535)", node.GetId(), p.key, err)
		}
		*p.dst = port
	}
	if sc.AppPort == sc.InboundPort || sc.AppPort == sc.OutboundPort || sc.InboundPort == sc.OutboundPort {
		return nil, fmt.Errorf("node %q: app_port %d, inbound_port %d and outbound_port %d must differ", node.GetId(), sc.AppPort, sc.InboundPort, sc.OutboundPort)
	}
	return sc, nil
}

// sidecarConfig is a node's own config: the listeners, routes and clusters
// shared by every sidecar of its component (the same encoded sets), plus its
// own certificate and the trust bundle.
func (s *Server) sidecarConfig(n *nodeState, shared *nodeConfig) (*nodeConfig, error) {
	if s.ca == nil {
		return nil, fmt.Errorf("node %q is a sidecar but the mesh CA is not configured (fix: set mesh.trust_domain, mesh.ca_cert and mesh.ca_key)", n.info.ID)
	}
	if n.cert == nil || n.certFor != n.sidecar.Component {
		if err := s.issue(n); err != nil {
			return nil, err
		}
	}
	cfg := &nodeConfig{sets: make(map[string]*resourceSet, len(shared.sets)+1)}
	for k, v := range shared.sets {
		cfg.sets[k] = v
	}
	cfg.sets[resourcev3.SecretType] = n.secrets
	return cfg, nil
}

// issue gives a node a new certificate and encodes its SDS secrets once:
// every later push (a catalog change) reuses them until the renewal.
func (s *Server) issue(n *nodeState) error {
	c, err := s.ca.Issue(n.sidecar.Component, s.certTTL)
	if err != nil {
		return fmt.Errorf("issuing the certificate of node %q: %w", n.info.ID, err)
	}
	bundle := s.ca.TrustBundle()
	secrets := []types.Resource{
		&tlsv3.Secret{Name: IdentitySecret, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: &core.DataSource{Specifier: &core.DataSource_InlineBytes{InlineBytes: c.CertPEM}},
			PrivateKey:       &core.DataSource{Specifier: &core.DataSource_InlineBytes{InlineBytes: c.KeyPEM}},
		}}},
		&tlsv3.Secret{Name: TrustSecret, Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: &core.DataSource{Specifier: &core.DataSource_InlineBytes{InlineBytes: bundle}},
		}}},
	}
	set, err := newResourceSet(resourcev3.SecretType, secrets)
	if err != nil {
		return err
	}
	certsIssued.Inc()
	n.cert, n.certFor, n.secrets = c, n.sidecar.Component, set
	// Renew at 40-50% of the life: sidecars that connected together
	// (a gatehouse restart) do not all renew in the same tick.
	life := time.Until(c.NotAfter)
	n.renewAt = time.Now().Add(life/2 - time.Duration(rand.Int64N(int64(life/10)+1)))
	n.info.Certificate = &CertInfo{SPIFFEID: c.SPIFFEID, Serial: c.Serial, NotAfter: c.NotAfter, RenewAt: n.renewAt}
	return nil
}

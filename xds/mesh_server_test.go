package xds

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"path/filepath"
	"strings"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/gatehouse-dev/gatehouse/internal/testcatalog"
	"github.com/gatehouse-dev/gatehouse/meshca"
)

const serverMeshCatalog = `apiVersion: backstage.io/v1alpha1
kind: Group
metadata: {name: team}
spec: {type: team, children: []}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: orders
  annotations: {gatehouse.dev/mesh-address: "orders.svc:15006"}
spec: {type: service, lifecycle: production, owner: team, providesApis: [orders-api]}
---
apiVersion: backstage.io/v1alpha1
kind: API
metadata: {name: orders-api}
spec: {type: openapi, lifecycle: production, owner: team, definition: x}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: checkout
  annotations: {gatehouse.dev/mesh-address: "checkout.svc:15006"}
spec: {type: service, lifecycle: production, owner: team, consumesApis: [orders-api]}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata: {name: batch}
spec: {type: service, lifecycle: production, owner: team}
`

func newTestCA(t *testing.T) *meshca.CA {
	t.Helper()
	dir := t.TempDir()
	ca, err := meshca.Load(meshca.Config{TrustDomain: testTrustDomain, CertFile: filepath.Join(dir, "ca.crt"), KeyFile: filepath.Join(dir, "ca.key"), Generate: true})
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// startMeshServer serves serverMeshCatalog with the mesh enabled:
// certificates valid for ttl.
func startMeshServer(t *testing.T, ttl time.Duration) (*Server, discoverygrpc.AggregatedDiscoveryServiceClient) {
	t.Helper()
	ca := newTestCA(t)
	s, c := startServerWith(t, meshOptions(ttl), func(ctx context.Context, s *Server) { s.EnableMesh(ctx, ca, ttl) })
	s.SetModel(testcatalog.Must(t, serverMeshCatalog))
	waitPushed(t, s)
	return s, c
}

func sidecarNode(id string, meta map[string]any) *core.Node {
	md := map[string]any{"role": RoleSidecar}
	for k, v := range meta {
		md[k] = v
	}
	s, _ := structpb.NewStruct(md)
	return &core.Node{Id: id, Metadata: s}
}

// connectSotW opens a SotW stream for a node and asks for every cluster.
func connectSotW(t *testing.T, c discoverygrpc.AggregatedDiscoveryServiceClient, n *core.Node) (discoverygrpc.AggregatedDiscoveryService_StreamAggregatedResourcesClient, *inbox[*discoverygrpc.DiscoveryResponse]) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream, err := c.StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	in := receive(stream.Recv)
	if err := stream.Send(&discoverygrpc.DiscoveryRequest{Node: n, TypeUrl: resourcev3.ClusterType}); err != nil {
		t.Fatal(err)
	}
	return stream, in
}

func nodeInfo(s *Server, id string) (NodeInfo, bool) {
	for _, n := range s.Nodes() {
		if n.ID == id {
			return n, true
		}
	}
	return NodeInfo{}, false
}

func configOf(t *testing.T, s *Server, id string) *nodeConfig {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.nodes[id]
	if n == nil || n.config.Load() == nil {
		t.Fatalf("no configuration for %s", id)
	}
	return n.config.Load()
}

func hasConfig(s *Server, id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nodes[id] != nil && s.nodes[id].config.Load() != nil
}

// leafOf returns the workload certificate in a config's identity secret.
func leafOf(t *testing.T, cfg *nodeConfig) *x509.Certificate {
	t.Helper()
	set := cfg.sets[resourcev3.SecretType]
	if set == nil {
		t.Fatal("no secrets in the configuration")
	}
	var resp discoverygrpc.DiscoveryResponse
	if err := proto.Unmarshal(set.sotw, &resp); err != nil {
		t.Fatal(err)
	}
	var chain []byte
	for _, a := range resp.GetResources() {
		var sec tlsv3.Secret
		if err := a.UnmarshalTo(&sec); err != nil {
			t.Fatal(err)
		}
		if sec.GetName() == IdentitySecret {
			chain = sec.GetTlsCertificate().GetCertificateChain().GetInlineBytes()
		}
	}
	blk, _ := pem.Decode(chain)
	if blk == nil {
		t.Fatal("no identity secret holding a PEM certificate")
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var sharedTypes = []resourcev3.Type{resourcev3.ListenerType, resourcev3.RouteType, resourcev3.ClusterType}

// Two sidecars of one component share the built listeners, routes and
// clusters (the same objects) and each gets a certificate of its own with the
// component's SPIFFE ID.
func TestSidecarsShareResourcesNotCertificates(t *testing.T) {
	s, c := startMeshServer(t, time.Hour)
	meta := map[string]any{"component": "component:default/orders", "app_port": "8080"}
	for _, id := range []string{"orders-1", "orders-2"} {
		_, in := connectSotW(t, c, sidecarNode(id, meta))
		resp, ok := in.next(5 * time.Second)
		if !ok || len(resp.Resources) != 2 { // ext_authz and the local application
			t.Fatalf("%s: no clusters (%v)", id, resp)
		}
	}
	a, b := configOf(t, s, "orders-1"), configOf(t, s, "orders-2")
	if a == b {
		t.Fatal("two sidecars hold one configuration object: their certificates cannot differ")
	}
	for _, typ := range sharedTypes {
		ra, rb := a.sets[typ], b.sets[typ]
		if ra == nil || len(ra.names) == 0 || ra != rb {
			t.Fatalf("%s: the two sidecars do not share one encoded set (%p, %p)", typ, ra, rb)
		}
	}
	la, lb := leafOf(t, a), leafOf(t, b)
	if la.SerialNumber.Cmp(lb.SerialNumber) == 0 {
		t.Error("both sidecars got the same certificate serial")
	}
	for _, l := range []*x509.Certificate{la, lb} {
		if len(l.URIs) != 1 || l.URIs[0].String() != "spiffe://"+testTrustDomain+"/ns/default/component/orders" {
			t.Errorf("URI SANs %v", l.URIs)
		}
	}
	if a.sets[resourcev3.SecretType].version == b.sets[resourcev3.SecretType].version {
		t.Error("different certificates under one secrets version")
	}
	for id, leaf := range map[string]*x509.Certificate{"orders-1": la, "orders-2": lb} {
		n, _ := nodeInfo(s, id)
		if n.Error != "" || n.Certificate == nil || n.Certificate.Serial != leaf.SerialNumber.Text(16) ||
			n.Certificate.SPIFFEID != "spiffe://"+testTrustDomain+"/ns/default/component/orders" || n.Sidecar == nil || n.Sidecar.AppPort != 8080 {
			t.Errorf("node info %s: %+v cert %+v", id, n, n.Certificate)
		}
	}
	s.mu.Lock()
	builds := len(s.built)
	s.mu.Unlock()
	if builds != 1 {
		t.Errorf("%d builds for two sidecars of one component, want 1", builds)
	}
}

// A sidecar gatehouse cannot configure gets nothing (no snapshot) and the
// reason in Nodes().
func TestSidecarWithoutConfig(t *testing.T) {
	s, c := startMeshServer(t, time.Hour)
	cases := []struct {
		id   string
		meta map[string]any
		err  string
	}{
		{"no-component", map[string]any{"app_port": "8080"}, "role sidecar needs metadata component"},
		{"bad-component", map[string]any{"component": "orders", "app_port": "8080"}, "write the full ref"},
		{"no-app-port", map[string]any{"component": "component:default/orders"}, "needs metadata app_port"},
		{"bad-app-port", map[string]any{"component": "component:default/orders", "app_port": "0"}, `metadata app_port: invalid port "0"`},
		{"app-is-inbound", map[string]any{"component": "component:default/orders", "app_port": "15006"}, "app_port 15006, inbound_port 15006 and outbound_port 15001 must differ"},
		{"in-is-out", map[string]any{"component": "component:default/orders", "app_port": "8080", "inbound_port": "9000", "outbound_port": "9000"}, "must differ"},
		{"unknown-component", map[string]any{"component": "component:default/nope", "app_port": "8080"}, "component:default/nope is not a mesh Component of the catalog"},
		{"not-in-mesh", map[string]any{"component": "component:default/batch", "app_port": "8080"}, "component:default/batch is not a mesh Component"},
	}
	var inboxes []*inbox[*discoverygrpc.DiscoveryResponse]
	for _, tc := range cases {
		_, in := connectSotW(t, c, sidecarNode(tc.id, tc.meta))
		inboxes = append(inboxes, in)
	}
	// A good one alongside: it is configured.
	_, good := connectSotW(t, c, sidecarNode("checkout-1", map[string]any{"component": "component:default/checkout", "app_port": "8080"}))
	if _, ok := good.next(5 * time.Second); !ok {
		t.Fatal("a good sidecar got no configuration")
	}
	time.Sleep(300 * time.Millisecond)
	for i, tc := range cases {
		if resp, got := inboxes[i].next(0); got {
			t.Errorf("%s: got configuration %v", tc.id, resp)
		}
		waitFor(t, tc.id+" in Nodes()", func() bool { _, ok := nodeInfo(s, tc.id); return ok })
		n, _ := nodeInfo(s, tc.id)
		if !strings.Contains(n.Error, tc.err) || !strings.Contains(n.Error, tc.id) {
			t.Errorf("%s: error %q; want it to name the node and contain %q", tc.id, n.Error, tc.err)
		}
		if n.Certificate != nil {
			t.Errorf("%s: a certificate was issued", tc.id)
		}
		if hasConfig(s, tc.id) {
			t.Errorf("%s has a configuration", tc.id)
		}
	}
}

// Without the mesh enabled a sidecar gets nothing and is told why.
func TestSidecarWithoutMesh(t *testing.T) {
	s, c := startServer(t)
	s.SetModel(testcatalog.Must(t, serverMeshCatalog))
	waitPushed(t, s)
	_, in := connectSotW(t, c, sidecarNode("orders-1", map[string]any{"component": "component:default/orders", "app_port": "8080"}))
	if resp, got := in.next(300 * time.Millisecond); got {
		t.Fatalf("sidecar got configuration without a mesh: %v", resp)
	}
	n, _ := nodeInfo(s, "orders-1")
	if !strings.Contains(n.Error, "mesh is not enabled") {
		t.Fatalf("error %q", n.Error)
	}
}

// Renewal re-issues the certificate at half its life and changes nothing but
// the secrets: the Envoy is sent new secrets, never its listeners, routes or
// clusters again.
func TestSidecarCertificateRenewal(t *testing.T) {
	const ttl = 200 * time.Millisecond // renewed every ~100ms
	s, c := startMeshServer(t, ttl)
	stream, in := connectSotW(t, c, sidecarNode("orders-1", map[string]any{"component": "component:default/orders", "app_port": "8080"}))
	if err := stream.Send(&discoverygrpc.DiscoveryRequest{TypeUrl: resourcev3.SecretType, ResourceNames: []string{IdentitySecret, TrustSecret}}); err != nil {
		t.Fatal(err)
	}
	ack := func(r *discoverygrpc.DiscoveryResponse) {
		t.Helper()
		var names []string
		if r.TypeUrl == resourcev3.SecretType {
			names = []string{IdentitySecret, TrustSecret}
		}
		if err := stream.Send(&discoverygrpc.DiscoveryRequest{TypeUrl: r.TypeUrl, VersionInfo: r.VersionInfo, ResponseNonce: r.Nonce, ResourceNames: names}); err != nil {
			t.Fatal(err)
		}
	}
	first := map[string]string{}
	for len(first) < 2 {
		r, ok := in.next(5 * time.Second)
		if !ok {
			t.Fatalf("initial responses: got %v", first)
		}
		if _, dup := first[r.TypeUrl]; !dup {
			first[r.TypeUrl] = r.VersionInfo
		}
		ack(r)
	}
	before := configOf(t, s, "orders-1")
	serialBefore := leafOf(t, before).SerialNumber

	// Over a few renewals: new secrets each time, nothing else.
	secrets := map[string]bool{first[resourcev3.SecretType]: true}
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		r, ok := in.next(time.Until(deadline))
		if !ok {
			break
		}
		if r.TypeUrl != resourcev3.SecretType {
			t.Fatalf("renewal pushed %s (version %s, first %s)", r.TypeUrl, r.VersionInfo, first[r.TypeUrl])
		}
		secrets[r.VersionInfo] = true
		ack(r)
	}
	if len(secrets) < 3 {
		t.Fatalf("%d secret versions in a second with a %s certificate life; want renewals", len(secrets), ttl)
	}
	after := configOf(t, s, "orders-1")
	if after.sets[resourcev3.SecretType].version == before.sets[resourcev3.SecretType].version || leafOf(t, after).SerialNumber.Cmp(serialBefore) == 0 {
		t.Fatal("the certificate was not renewed")
	}
	for _, typ := range sharedTypes {
		if after.sets[typ] != before.sets[typ] {
			t.Errorf("%s was rebuilt on renewal (version %s -> %s)", typ, before.sets[typ].version, after.sets[typ].version)
		}
	}
	n, _ := nodeInfo(s, "orders-1")
	if n.Certificate == nil || !n.Certificate.RenewAt.Before(n.Certificate.NotAfter) || n.Certificate.NotAfter.Sub(n.Certificate.RenewAt) > ttl {
		t.Errorf("certificate info %+v", n.Certificate)
	}
}

// Regression: the SotW and the delta server number their streams from 1
// each; keyed by the id alone, a delta Envoy connecting while a SotW Envoy
// held the same id was taken for it, never registered, and got nothing.
func TestSotWAndDeltaStreamsAtOnce(t *testing.T) {
	s, c := startServer(t)
	s.SetModel(testModel(9000))
	waitPushed(t, s)
	sotw, sin := connectSotW(t, c, node("edge-sotw", RoleEdge))
	if _, ok := sin.next(5 * time.Second); !ok {
		t.Fatal("SotW edge got no configuration")
	}
	delta, err := c.DeltaAggregatedResources(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	din := receive(delta.Recv)
	if err := delta.Send(&discoverygrpc.DeltaDiscoveryRequest{Node: node("edge-delta", RoleEdge), TypeUrl: resourcev3.ClusterType}); err != nil {
		t.Fatal(err)
	}
	resp, ok := din.next(5 * time.Second)
	if !ok || len(resp.Resources) != 2 {
		t.Fatalf("delta edge connected beside a SotW edge got no configuration (%v)", resp)
	}
	if err := delta.Send(&discoverygrpc.DeltaDiscoveryRequest{TypeUrl: resourcev3.ClusterType, ResponseNonce: resp.Nonce}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delta ACK recorded", func() bool {
		n, _ := nodeInfo(s, "edge-delta")
		return n.Acked[resourcev3.ClusterType] == resp.SystemVersionInfo
	})
	ns := s.Nodes()
	if len(ns) != 2 || ns[0].ID != "edge-delta" || !ns[0].Delta || ns[0].Streams != 1 || ns[1].ID != "edge-sotw" || ns[1].Delta || ns[1].Streams != 1 {
		t.Fatalf("nodes %+v", ns)
	}
	// Closing one forgets only that one.
	_ = sotw.CloseSend()
	waitFor(t, "SotW edge forgotten", func() bool { return len(s.Nodes()) == 1 })
	if n := s.Nodes()[0]; n.ID != "edge-delta" || n.Streams != 1 {
		t.Fatalf("after the SotW stream closed: %+v", n)
	}
	// The delta stream still works: a new model reaches it.
	s.SetModel(testModel(9001))
	waitPushed(t, s)
	if resp, ok := din.next(5 * time.Second); !ok || len(resp.Resources) != 1 {
		t.Fatalf("delta edge not updated after the SotW stream closed: %v", resp)
	}
}

// A configured sidecar whose component leaves the mesh keeps what it has
// (and shows why it gets nothing new); when the component returns, the
// sidecar is configured again without reconnecting: Envoy does not ask
// again by itself, so its open watches must survive the gap.
func TestSidecarComponentLeavesAndReturns(t *testing.T) {
	s, c := startMeshServer(t, time.Hour)
	stream, in := connectSotW(t, c, sidecarNode("orders-1", map[string]any{"component": "component:default/orders", "app_port": "8080"}))
	first, ok := in.next(5 * time.Second)
	if !ok {
		t.Fatal("no configuration")
	}
	if err := stream.Send(&discoverygrpc.DiscoveryRequest{TypeUrl: resourcev3.ClusterType, VersionInfo: first.VersionInfo, ResponseNonce: first.Nonce}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "ACK", func() bool {
		n, _ := nodeInfo(s, "orders-1")
		return n.Acked[resourcev3.ClusterType] == first.VersionInfo
	})

	without := strings.Replace(serverMeshCatalog, `annotations: {gatehouse.dev/mesh-address: "orders.svc:15006"}`, `annotations: {}`, 1)
	s.SetModel(testcatalog.Must(t, without))
	waitPushed(t, s)
	if n, _ := nodeInfo(s, "orders-1"); !strings.Contains(n.Error, "not a mesh Component") {
		t.Fatalf("error %q", n.Error)
	}
	if r, got := in.next(200 * time.Millisecond); got {
		t.Fatalf("pushed %v while the component is out of the mesh", r)
	}

	// Back, now also depending on checkout: a new cluster to push.
	back := strings.Replace(serverMeshCatalog, `providesApis: [orders-api]}`, `providesApis: [orders-api], dependsOn: [component:checkout]}`, 1)
	s.SetModel(testcatalog.Must(t, back))
	waitPushed(t, s)
	if n, _ := nodeInfo(s, "orders-1"); n.Error != "" {
		t.Fatalf("error %q after the component returned", n.Error)
	}
	r, ok := in.next(5 * time.Second)
	if !ok || len(r.Resources) != 3 || r.VersionInfo == first.VersionInfo {
		t.Fatalf("the sidecar was not configured again after its component returned to the mesh (got %v)", r)
	}
}

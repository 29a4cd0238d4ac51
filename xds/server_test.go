package xds

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/gatehouse-dev/gatehouse/model"
)

func testModel(upstreamPort uint32) *model.Model {
	m := &model.Model{
		VirtualHosts: []model.VirtualHost{{Name: "*", Domains: []string{"*"}, Routes: []model.Route{{
			ID: "component:default/a@*/a", Entity: "component:default/a", Prefix: "/a", Cluster: "component:default/a", Timeout: model.Duration(time.Second),
		}}}},
		Clusters: []model.Cluster{{Name: "component:default/a", Entity: "component:default/a", Discovery: model.DiscoveryStatic,
			Endpoints: []model.Endpoint{{Host: "127.0.0.1", Port: upstreamPort}}}},
	}
	m.Version = model.ContentVersion(m)
	return m
}

func startServer(t *testing.T) (*Server, discoverygrpc.AggregatedDiscoveryServiceClient) {
	t.Helper()
	return startServerWith(t, DefaultOptions(), nil)
}

// startServerWith serves ADS with opts on a loopback port; setup, when set,
// runs before serving (EnableMesh, say).
func startServerWith(t *testing.T, opts Options, setup func(context.Context, *Server)) (*Server, discoverygrpc.AggregatedDiscoveryServiceClient) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := NewServer(ctx, opts, nil)
	if setup != nil {
		setup(ctx, s)
	}
	g := grpc.NewServer(GRPCServerOptions()...)
	s.Register(g)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(l) }()
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(); g.Stop(); cancel() })
	return s, discoverygrpc.NewAggregatedDiscoveryServiceClient(conn)
}

func node(id, role string) *core.Node {
	md, _ := structpb.NewStruct(map[string]any{"role": role})
	return &core.Node{Id: id, Metadata: md}
}

// inbox receives every message of a stream on one goroutine (a stream
// allows one receiver at a time).
type inbox[T any] struct{ ch chan T }

func receive[T any](recv func() (T, error)) *inbox[T] {
	in := &inbox[T]{ch: make(chan T, 16)}
	go func() {
		for {
			v, err := recv()
			if err != nil {
				close(in.ch)
				return
			}
			in.ch <- v
		}
	}()
	return in
}

// next returns the next message, or false if none came within d.
func (in *inbox[T]) next(d time.Duration) (T, bool) {
	select {
	case v, ok := <-in.ch:
		return v, ok
	case <-time.After(d):
		var zero T
		return zero, false
	}
}

func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A NACKed SotW response is recorded and not sent again until the config
// changes (the snapshot cache alone would re-send it forever).
func TestSotWNackIsRecordedWithoutRepushLoop(t *testing.T) {
	s, c := startServer(t)
	s.SetModel(testModel(9000))
	waitPushed(t, s)
	stream, err := c.StreamAggregatedResources(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	in := receive(stream.Recv)
	if err := stream.Send(&discoverygrpc.DiscoveryRequest{Node: node("edge-a", RoleEdge), TypeUrl: resourcev3.ClusterType}); err != nil {
		t.Fatal(err)
	}
	resp, ok := in.next(5 * time.Second)
	if !ok || len(resp.Resources) != 2 { // the upstream and gatehouse_ext_authz
		t.Fatalf("no initial cluster response (%v)", resp)
	}
	// NACK it, as Envoy does: last accepted version (none) + nonce + error.
	if err := stream.Send(&discoverygrpc.DiscoveryRequest{TypeUrl: resourcev3.ClusterType, ResponseNonce: resp.Nonce,
		ErrorDetail: &status.Status{Code: 3, Message: "cluster: invalid something"}}); err != nil {
		t.Fatal(err)
	}
	if again, got := in.next(500 * time.Millisecond); got {
		t.Fatalf("rejected config was pushed again (version %s): a re-push loop", again.VersionInfo)
	}
	waitFor(t, "NACK in node info", func() bool {
		ns := s.Nodes()
		return len(ns) == 1 && ns[0].LastNack != nil
	})
	n := s.Nodes()[0]
	if n.Nacks != 1 || n.LastNack.Version != resp.VersionInfo || !strings.Contains(n.LastNack.Message, "invalid something") || n.LastNack.TypeURL != resourcev3.ClusterType {
		t.Fatalf("node info after NACK: %+v / %+v", n, n.LastNack)
	}
	// A new config is pushed.
	s.SetModel(testModel(9001))
	waitPushed(t, s)
	next, ok := in.next(5 * time.Second)
	if !ok || next.VersionInfo == resp.VersionInfo {
		t.Fatalf("new config not pushed after a NACK (got %v)", next.GetVersionInfo())
	}
	// ACK it: recorded as acked.
	if err := stream.Send(&discoverygrpc.DiscoveryRequest{TypeUrl: resourcev3.ClusterType, VersionInfo: next.VersionInfo, ResponseNonce: next.Nonce}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "ACK recorded", func() bool { return s.Nodes()[0].Acked[resourcev3.ClusterType] == next.VersionInfo })
	// Closing the stream forgets the node.
	_ = stream.CloseSend()
	waitFor(t, "node forgotten", func() bool { return len(s.Nodes()) == 0 })
}

// Delta: later requests carry no node; the stream must stay up, ACKs map to
// versions through nonces, NACKs are recorded.
func TestDeltaAckNack(t *testing.T) {
	s, c := startServer(t)
	s.SetModel(testModel(9000))
	waitPushed(t, s)
	stream, err := c.DeltaAggregatedResources(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	in := receive(stream.Recv)
	if err := stream.Send(&discoverygrpc.DeltaDiscoveryRequest{Node: node("edge-d", RoleEdge), TypeUrl: resourcev3.ClusterType}); err != nil {
		t.Fatal(err)
	}
	resp, ok := in.next(5 * time.Second)
	if !ok || len(resp.Resources) != 2 { // the upstream and gatehouse_ext_authz
		t.Fatalf("no initial delta response: %v", resp)
	}
	if err := stream.Send(&discoverygrpc.DeltaDiscoveryRequest{TypeUrl: resourcev3.ClusterType, ResponseNonce: resp.Nonce}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delta ACK recorded", func() bool {
		ns := s.Nodes()
		return len(ns) == 1 && ns[0].Acked[resourcev3.ClusterType] == resp.SystemVersionInfo && ns[0].Delta
	})
	s.SetModel(testModel(9001))
	waitPushed(t, s)
	next, ok := in.next(5 * time.Second)
	if !ok || len(next.Resources) != 1 {
		t.Fatalf("changed cluster not pushed: %v", next)
	}
	if err := stream.Send(&discoverygrpc.DeltaDiscoveryRequest{TypeUrl: resourcev3.ClusterType, ResponseNonce: next.Nonce,
		ErrorDetail: &status.Status{Code: 3, Message: "nope"}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delta NACK recorded", func() bool {
		n := s.Nodes()[0]
		return n.LastNack != nil && n.LastNack.Version == next.SystemVersionInfo && n.LastNack.Message == "nope"
	})
}

// A node whose role gatehouse does not know gets no configuration, and the
// reason is visible.
func TestUnknownRoleGetsNoConfig(t *testing.T) {
	s, c := startServer(t)
	s.SetModel(testModel(9000))
	waitPushed(t, s)
	stream, err := c.StreamAggregatedResources(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	in := receive(stream.Recv)
	if err := stream.Send(&discoverygrpc.DiscoveryRequest{Node: node("weird", "gateway"), TypeUrl: resourcev3.ClusterType}); err != nil {
		t.Fatal(err)
	}
	if resp, got := in.next(500 * time.Millisecond); got {
		t.Fatalf("a node with an unknown role got config: %v", resp)
	}
	waitFor(t, "error in node info", func() bool {
		ns := s.Nodes()
		return len(ns) == 1 && strings.Contains(ns[0].Error, `unknown role "gateway"`)
	})
}

// Nodes of one role share one built snapshot per model version.
func TestSnapshotsSharedAcrossNodes(t *testing.T) {
	s, c := startServer(t)
	s.SetModel(testModel(9000))
	waitPushed(t, s)
	for _, id := range []string{"e1", "e2", "e3"} {
		stream, err := c.StreamAggregatedResources(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		in := receive(stream.Recv)
		if err := stream.Send(&discoverygrpc.DiscoveryRequest{Node: node(id, RoleEdge), TypeUrl: resourcev3.ClusterType}); err != nil {
			t.Fatal(err)
		}
		if _, ok := in.next(5 * time.Second); !ok {
			t.Fatal("no response")
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.built) != 1 {
		t.Fatalf("%d builds for 3 nodes of one role, want 1", len(s.built))
	}
	a, b := s.nodes["e1"].config.Load(), s.nodes["e3"].config.Load()
	if a == nil || a != b {
		t.Fatal("nodes of the same role hold different configurations")
	}
}

// Node metadata listen_port gives that Envoy its own listener port; a bad
// one gets no config and a clear error.
func TestListenPortFromNodeMetadata(t *testing.T) {
	s, c := startServer(t)
	s.SetModel(testModel(9000))
	waitPushed(t, s)
	for _, tc := range []struct {
		id, port string
		want     uint32
	}{{"edge-p", "18080", 18080}, {"edge-bad", "99999", 0}} {
		stream, err := c.StreamAggregatedResources(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		in := receive(stream.Recv)
		md, _ := structpb.NewStruct(map[string]any{"role": RoleEdge, "listen_port": tc.port})
		if err := stream.Send(&discoverygrpc.DiscoveryRequest{Node: &core.Node{Id: tc.id, Metadata: md}, TypeUrl: resourcev3.ListenerType}); err != nil {
			t.Fatal(err)
		}
		resp, ok := in.next(time.Second)
		if tc.want == 0 {
			if ok {
				t.Fatalf("node with listen_port %s got config", tc.port)
			}
			waitFor(t, "error shown", func() bool {
				for _, n := range s.Nodes() {
					if n.ID == tc.id && strings.Contains(n.Error, "listen_port") {
						return true
					}
				}
				return false
			})
			continue
		}
		if !ok || len(resp.Resources) != 1 {
			t.Fatalf("no listener for %s", tc.id)
		}
		var l listenerv3.Listener
		if err := resp.Resources[0].UnmarshalTo(&l); err != nil {
			t.Fatal(err)
		}
		if got := l.GetAddress().GetSocketAddress().GetPortValue(); got != tc.want {
			t.Fatalf("listener port %d, want %d", got, tc.want)
		}
	}
}

// connectDelta opens a delta stream for a node and subscribes to every
// cluster.
func connectDelta(t *testing.T, c discoverygrpc.AggregatedDiscoveryServiceClient, n *core.Node) (discoverygrpc.AggregatedDiscoveryService_DeltaAggregatedResourcesClient, *inbox[*discoverygrpc.DeltaDiscoveryResponse]) {
	t.Helper()
	stream, err := c.DeltaAggregatedResources(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	in := receive(stream.Recv)
	if err := stream.Send(&discoverygrpc.DeltaDiscoveryRequest{Node: n, TypeUrl: resourcev3.ClusterType}); err != nil {
		t.Fatal(err)
	}
	return stream, in
}

// waitPushed waits for the pusher to hand the last model to every node.
func waitPushed(t *testing.T, s *Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitPushed(ctx); err != nil {
		t.Fatalf("model not pushed: %v", err)
	}
}

// bigModel has n upstreams: its cluster response is larger than
// smallResponse.
func bigModel(n int, port uint32) *model.Model {
	m := testModel(port)
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("component:default/c%04d", i)
		m.Clusters = append(m.Clusters, model.Cluster{Name: name, Entity: name, Discovery: model.DiscoveryStatic,
			Endpoints: []model.Endpoint{{Host: "127.0.0.1", Port: port}}})
	}
	m.Version = model.ContentVersion(m)
	return m
}

// With a send budget smaller than one response, Envoys are served one at a
// time: the next gets its clusters when the previous ACKs, not before, and
// every one of them is served in the end (SotW and delta alike).
func TestSendBudgetServesInTurn(t *testing.T) {
	opts := DefaultOptions()
	opts.SendBudget = 1
	s, c := startServerWith(t, opts, nil)
	s.SetModel(bigModel(3000, 9000))
	waitPushed(t, s)
	type peer struct {
		ack func() error
		got func(time.Duration) bool
	}
	var peers []peer
	for i := 0; i < 4; i++ {
		id := fmt.Sprintf("budget-%d", i)
		if i%2 == 0 {
			stream, in := connectSotW(t, c, node(id, RoleEdge))
			var last *discoverygrpc.DiscoveryResponse
			peers = append(peers, peer{
				ack: func() error {
					return stream.Send(&discoverygrpc.DiscoveryRequest{TypeUrl: resourcev3.ClusterType, VersionInfo: last.VersionInfo, ResponseNonce: last.Nonce})
				},
				got: func(d time.Duration) bool {
					r, ok := in.next(d)
					if ok {
						last = r
					}
					return ok && len(r.Resources) == 3002
				},
			})
			continue
		}
		stream, in := connectDelta(t, c, node(id, RoleEdge))
		var last *discoverygrpc.DeltaDiscoveryResponse
		peers = append(peers, peer{
			ack: func() error {
				return stream.Send(&discoverygrpc.DeltaDiscoveryRequest{TypeUrl: resourcev3.ClusterType, ResponseNonce: last.Nonce})
			},
			got: func(d time.Duration) bool {
				r, ok := in.next(d)
				if ok {
					last = r
				}
				return ok && len(r.Resources) == 3002
			},
		})
	}
	served := map[int]bool{}
	for round := 0; round < len(peers); round++ {
		// One unserved peer gets its clusters (building the config can take
		// a while under the race detector) ...
		first := -1
		for deadline := time.Now().Add(10 * time.Second); first < 0 && time.Now().Before(deadline); {
			for i, p := range peers {
				if !served[i] && p.got(10*time.Millisecond) {
					first = i
					break
				}
			}
		}
		if first < 0 {
			t.Fatalf("round %d: no peer got its clusters", round)
		}
		// ... and no other one while it holds the budget.
		for i, p := range peers {
			if !served[i] && i != first && p.got(200*time.Millisecond) {
				t.Fatalf("round %d: peers %d and %d got their clusters at once; want one at a time while the budget is taken", round, first, i)
			}
		}
		served[first] = true
		if err := peers[first].ack(); err != nil {
			t.Fatal(err)
		}
	}
}

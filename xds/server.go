package xds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/sotw/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"

	"github.com/gatehouse-dev/gatehouse/meshca"
	"github.com/gatehouse-dev/gatehouse/model"
)

// Server serves the current model to every connected Envoy over ADS, state
// of the world and delta. Nodes of the same role share one built snapshot
// per model version.
type Server struct {
	opts  Options
	log   *slog.Logger
	cache cachev3.SnapshotCache
	xds   serverv3.Server

	// pushMu orders every change of the cache's snapshots (taken before mu):
	// the pusher sets snapshots outside mu, and a snapshot it computed must
	// not land after the node closed or re-registered, or after a renewal.
	pushMu sync.Mutex

	mu      sync.Mutex
	model   *model.Model
	nodes   map[string]*nodeState // by node id
	streams map[streamKey]*streamState
	built   map[buildKey]*built

	// SetModel only records the model; the pusher goroutine pushes the
	// latest one to the nodes (see pushLoop).
	kick      chan struct{} // capacity 1: a push is pending
	modelGen  uint64        // bumped by SetModel
	pushedGen uint64        // every node has been pushed a model at least this new
	pushed    *sync.Cond    // on mu; broadcast when pushedGen moves

	ca      IdentityIssuer // nil: no mesh
	certTTL time.Duration
}

type buildKey struct {
	version string
	role    string
	port    uint32
	sidecar Sidecar // zero for edges
}

// streamKey names a stream: the SotW and the delta server number their
// streams independently, so an id alone is ambiguous.
type streamKey struct {
	delta bool
	id    int64
}

type built struct {
	snap *cachev3.Snapshot
	err  error
}

type streamState struct {
	node   string
	delta  bool
	sent   map[string]string    // SotW: type URL -> version of the last response; delta: type URL + nonce -> version
	nonce  map[string]string    // type URL -> last nonce sent
	sentAt map[string]time.Time // nonce -> when it was sent, for ACK latency
}

func (st *streamState) protocol() string {
	if st.delta {
		return "delta"
	}
	return "sotw"
}

// sending records when a nonce was sent (bounded: nonces that are never
// ACKed, NACKed or superseded, must not accumulate on a long stream).
func (st *streamState) sending(nonce string) {
	if len(st.sentAt) > 64 {
		clear(st.sentAt)
	}
	st.sentAt[nonce] = time.Now()
}

// acked observes the ACK latency of a nonce.
func (st *streamState) acked(typeURL, nonce string) {
	if at, ok := st.sentAt[nonce]; ok {
		ackSeconds.WithLabelValues(shortType(typeURL)).Observe(time.Since(at).Seconds())
		delete(st.sentAt, nonce)
	}
}

type nodeState struct {
	info    NodeInfo
	streams int
	metaErr string // node metadata gatehouse cannot use; the node gets no config

	sidecar *Sidecar            // role sidecar
	cert    *meshca.Certificate // its current workload certificate
	certFor string              // the component cert was issued for
	renewAt time.Time
	// Its SDS secrets and their hashes, built once per certificate.
	secrets        cachev3.Resources
	secretVersions map[string]string

	pushedVersion string // model version last pushed to the node
}

// NodeInfo is what /debug/nodes shows about one Envoy.
type NodeInfo struct {
	ID          string            `json:"id"`
	Role        string            `json:"role"`
	ListenPort  uint32            `json:"listenPort,omitempty"` // node metadata listen_port
	Cluster     string            `json:"cluster,omitempty"`
	Version     string            `json:"envoyVersion,omitempty"`
	Delta       bool              `json:"delta"`
	ConnectedAt time.Time         `json:"connectedAt"`
	Streams     int               `json:"streams"`
	Acked       map[string]string `json:"acked"` // type URL -> version
	LastNack    *Nack             `json:"lastNack,omitempty"`
	Nacks       int               `json:"nacks"`
	Error       string            `json:"error,omitempty"`
	// Sidecars: what the node said about itself, and its certificate.
	Sidecar     *Sidecar  `json:"sidecar,omitempty"`
	Certificate *CertInfo `json:"certificate,omitempty"`
}

// Nack is a rejected configuration as Envoy reported it.
type Nack struct {
	TypeURL string    `json:"typeUrl"`
	Version string    `json:"version"`
	Message string    `json:"message"`
	At      time.Time `json:"at"`
}

// NewServer returns a server; call SetModel to give it configuration and
// Register to attach it to a gRPC server.
func NewServer(ctx context.Context, opts Options, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	s := &Server{
		opts:    opts,
		log:     log,
		nodes:   map[string]*nodeState{},
		streams: map[streamKey]*streamState{},
		built:   map[buildKey]*built{},
		kick:    make(chan struct{}, 1),
	}
	s.pushed = sync.NewCond(&s.mu)
	s.cache = cachev3.NewSnapshotCache(true, cachev3.IDHash{}, slogAdapter{log})
	s.xds = serverv3.NewServer(ctx, s.cache, serverv3.CallbackFuncs{
		StreamClosedFunc:        func(id int64, _ *core.Node) { s.streamClosed(streamKey{false, id}) },
		DeltaStreamClosedFunc:   func(id int64, _ *core.Node) { s.streamClosed(streamKey{true, id}) },
		StreamRequestFunc:       s.onRequest,
		StreamResponseFunc:      s.onResponse,
		StreamDeltaRequestFunc:  s.onDeltaRequest,
		StreamDeltaResponseFunc: s.onDeltaResponse,
	}, sotw.WithOrderedADS())
	go s.pushLoop(ctx)
	return s
}

// Register attaches the ADS service (SotW and delta) to g.
func (s *Server) Register(g *grpc.Server) {
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(g, s.xds)
}

// SetModel publishes a new model: it records it and returns; the pusher
// goroutine sends it to every connected node (a slow stream does not hold up
// the publish, the other nodes or the admin endpoints). Nodes that connect
// from now on get it at once. WaitPushed waits for the push.
func (s *Server) SetModel(m *model.Model) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.model = m
	s.modelGen++
	publishesTotal.Inc()
	// Drop builds of older versions: they will not be asked for again.
	for k := range s.built {
		if k.version != m.Version {
			delete(s.built, k)
		}
	}
	select {
	case s.kick <- struct{}{}:
	default: // a push is already pending; it takes the latest model
	}
}

// WaitPushed waits until every node connected now has been given the model
// of the last SetModel (or a newer one), or ctx ends.
func (s *Server) WaitPushed(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		s.pushed.Broadcast()
		s.mu.Unlock()
	})
	defer stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	gen := s.modelGen
	for s.pushedGen < gen {
		if err := ctx.Err(); err != nil {
			return err
		}
		s.pushed.Wait()
	}
	return nil
}

// pushLoop pushes the latest model to the nodes, one node at a time, each
// without holding mu while the cache computes and hands out its responses.
// Models superseded during a round are skipped: a node is only pushed when
// its last pushed version is not the current one.
func (s *Server) pushLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		}
		s.mu.Lock()
		gen := s.modelGen
		ids := sortedNodeIDs(s.nodes)
		s.mu.Unlock()
		for _, id := range ids {
			if ctx.Err() != nil {
				return
			}
			s.pushNode(id)
		}
		s.mu.Lock()
		if gen > s.pushedGen {
			s.pushedGen = gen
			s.pushed.Broadcast()
		}
		s.mu.Unlock()
	}
}

// pushNode gives one node the current model unless it already has it.
func (s *Server) pushNode(id string) {
	s.pushMu.Lock()
	defer s.pushMu.Unlock()
	s.mu.Lock()
	n := s.nodes[id]
	if n == nil || s.model == nil || n.pushedVersion == s.model.Version {
		s.mu.Unlock()
		return
	}
	snap := s.nodeSnapshotLocked(n)
	s.mu.Unlock()
	if snap == nil {
		return
	}
	// pushMu keeps the node from closing, re-registering or renewing until
	// the snapshot is set.
	if err := s.cache.SetSnapshot(context.Background(), id, snap); err != nil {
		s.log.Error("set snapshot", "node", id, "error", err)
	}
}

// Model returns the model being served.
func (s *Server) Model() *model.Model {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.model
}

// Nodes returns the connected nodes, by id.
func (s *Server) Nodes() []NodeInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]NodeInfo, 0, len(s.nodes))
	for _, id := range sortedNodeIDs(s.nodes) {
		n := s.nodes[id].info
		acked := make(map[string]string, len(n.Acked))
		for k, v := range n.Acked {
			acked[k] = v
		}
		n.Acked = acked
		out = append(out, n)
	}
	return out
}

// pushLocked builds (or reuses) the snapshot for a node and sets it. The
// caller holds pushMu and mu.
func (s *Server) pushLocked(n *nodeState) {
	if snap := s.nodeSnapshotLocked(n); snap != nil {
		if err := s.cache.SetSnapshot(context.Background(), n.info.ID, snap); err != nil {
			s.log.Error("set snapshot", "node", n.info.ID, "error", err)
		}
	}
}

// nodeSnapshotLocked returns the snapshot to set for a node, nil for none
// (and records why on the node), and marks the model as pushed to it.
func (s *Server) nodeSnapshotLocked(n *nodeState) *cachev3.Snapshot {
	if s.model == nil {
		return nil // nothing compiled yet; the node's watches wait
	}
	n.pushedVersion = s.model.Version
	if n.metaErr != "" {
		n.info.Error = n.metaErr
		s.cache.ClearSnapshot(n.info.ID)
		return nil
	}
	node := Node{ID: n.info.ID, Role: n.info.Role, ListenPort: n.info.ListenPort, Sidecar: n.sidecar}
	b := s.buildLocked(node)
	snap, err := b.snap, b.err
	if err == nil && n.sidecar != nil {
		snap, err = s.sidecarSnapshot(n, b.snap)
	}
	if err != nil {
		if n.info.Error != err.Error() {
			s.log.Error("no configuration for node", "node", n.info.ID, "error", err)
		}
		n.info.Error = err.Error()
		// Keep whatever the node has (Envoy keeps it anyway): clearing the
		// snapshot would also drop the node's open watches, and Envoy does
		// not ask again by itself, so it would never be configured again
		// when the error goes away (a sidecar whose component leaves the
		// mesh and returns). A node that never had a snapshot gets none.
		return nil
	}
	n.info.Error = ""
	return snap
}

func (s *Server) buildLocked(n Node) *built {
	k := buildKey{version: s.model.Version, role: n.Role, port: n.ListenPort}
	if n.Sidecar != nil {
		k.sidecar = *n.Sidecar
	}
	if b, ok := s.built[k]; ok {
		return b
	}
	b := &built{}
	res, err := Translate(s.model, n, s.opts)
	if err == nil {
		b.snap, err = buildSnapshot(res)
	}
	b.err = err
	s.built[k] = b
	return b
}

// register records the node of a new stream; the first stream of a node gets
// its snapshot before the stream's first watch is created. The caller holds
// pushMu and mu (lockForRequest).
func (s *Server) registerLocked(id int64, node *core.Node, delta bool) *streamState {
	st := s.streams[streamKey{delta, id}]
	if st != nil {
		return st
	}
	st = &streamState{node: node.GetId(), delta: delta, sent: map[string]string{}, nonce: map[string]string{}, sentAt: map[string]time.Time{}}
	s.streams[streamKey{delta, id}] = st
	n := s.nodes[node.GetId()]
	if n == nil {
		n = &nodeState{info: NodeInfo{
			ID: node.GetId(), Cluster: node.GetCluster(), Delta: delta, ConnectedAt: time.Now(),
			Acked: map[string]string{}, Role: metaString(node, "role"),
			Version: node.GetUserAgentBuildVersion().GetVersion().String(),
		}}
		if p := metaString(node, "listen_port"); p != "" {
			port, err := ParsePort(p)
			if err != nil {
				n.metaErr = fmt.Sprintf("node %q: metadata listen_port: %v (fix: a port 1-65535, or leave it out to use edge.port)", node.GetId(), err)
				s.log.Error("no configuration for node", "node", node.GetId(), "error", n.metaErr)
			}
			n.info.ListenPort = port
		}
		if n.info.Role == RoleSidecar && n.metaErr == "" {
			sc, err := sidecarMeta(node)
			if err != nil {
				n.metaErr = err.Error()
				s.log.Error("no configuration for node", "node", node.GetId(), "error", n.metaErr)
			}
			n.sidecar, n.info.Sidecar = sc, sc
		}
		s.nodes[node.GetId()] = n
		s.log.Info("envoy connected", "node", n.info.ID, "role", n.info.Role, "delta", delta, "stream", id)
		s.pushLocked(n)
	}
	n.streams++
	n.info.Streams = n.streams
	streamsGauge.WithLabelValues(n.info.Role, st.protocol()).Inc()
	return st
}

func (s *Server) streamClosed(id streamKey) {
	s.pushMu.Lock()
	defer s.pushMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[id]
	if st == nil {
		return
	}
	delete(s.streams, id)
	n := s.nodes[st.node]
	if n == nil {
		return
	}
	streamsGauge.WithLabelValues(n.info.Role, st.protocol()).Dec()
	n.streams--
	n.info.Streams = n.streams
	if n.streams <= 0 {
		// Forget the node entirely: its snapshot and watch state, so a fleet
		// that churns does not grow memory.
		delete(s.nodes, st.node)
		s.cache.ClearSnapshot(st.node)
		s.log.Info("envoy disconnected", "node", st.node, "stream", id)
	}
}

func (s *Server) onRequest(id int64, req *discoverygrpc.DiscoveryRequest) error {
	if req.GetNode().GetId() == "" {
		return errors.New("the first request of a stream must carry node.id")
	}
	defer s.lockForRequest(streamKey{false, id})()
	st := s.registerLocked(id, req.GetNode(), false)
	n := s.nodes[st.node]
	if req.GetResponseNonce() == "" {
		return nil
	}
	if req.ErrorDetail != nil {
		if req.GetResponseNonce() != st.nonce[req.GetTypeUrl()] {
			return nil // about an older response; the server ignores it too
		}
		version := st.sent[req.GetTypeUrl()]
		s.nackLocked(n, req.GetTypeUrl(), version, req.ErrorDetail.GetMessage())
		// Envoy NACKs with the last version it accepted. The snapshot cache
		// would see "client is behind" and send the rejected config again,
		// forever. Tell it the client has seen this version: the next push
		// happens when the config changes.
		if version != "" {
			req.VersionInfo = version
		}
		return nil
	}
	n.info.Acked[req.GetTypeUrl()] = req.GetVersionInfo()
	st.acked(req.GetTypeUrl(), req.GetResponseNonce())
	return nil
}

// lockForRequest takes mu for a request callback, and pushMu before it when
// the stream is new (registering it may set the node's first snapshot). Only
// the stream's own goroutine registers it, so the answer cannot go stale.
func (s *Server) lockForRequest(k streamKey) (unlock func()) {
	s.mu.Lock()
	registered := s.streams[k] != nil
	if registered {
		return s.mu.Unlock
	}
	s.mu.Unlock()
	s.pushMu.Lock()
	s.mu.Lock()
	return func() {
		s.mu.Unlock()
		s.pushMu.Unlock()
	}
}

func (s *Server) onResponse(_ context.Context, id int64, req *discoverygrpc.DiscoveryRequest, resp *discoverygrpc.DiscoveryResponse) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.streams[streamKey{false, id}]; st != nil {
		st.sent[resp.GetTypeUrl()] = resp.GetVersionInfo()
		st.nonce[resp.GetTypeUrl()] = resp.GetNonce()
		st.sending(resp.GetNonce())
	}
	pushesTotal.WithLabelValues(roleOf(s, streamKey{false, id}), "sotw", shortType(resp.GetTypeUrl())).Inc()
}

func (s *Server) onDeltaRequest(id int64, req *discoverygrpc.DeltaDiscoveryRequest) error {
	defer s.lockForRequest(streamKey{true, id})()
	// Unlike SotW, the delta server calls back before filling in the node of
	// later requests: only the stream's first request is sure to carry it.
	st := s.streams[streamKey{true, id}]
	if st == nil {
		if req.GetNode().GetId() == "" {
			return errors.New("the first request of a stream must carry node.id")
		}
		st = s.registerLocked(id, req.GetNode(), true)
	}
	n := s.nodes[st.node]
	if req.GetResponseNonce() == "" {
		return nil
	}
	version := st.sent[req.GetTypeUrl()+"\x00"+req.GetResponseNonce()]
	delete(st.sent, req.GetTypeUrl()+"\x00"+req.GetResponseNonce())
	if req.ErrorDetail != nil {
		s.nackLocked(n, req.GetTypeUrl(), version, req.ErrorDetail.GetMessage())
		return nil
	}
	if version != "" {
		n.info.Acked[req.GetTypeUrl()] = version
	}
	st.acked(req.GetTypeUrl(), req.GetResponseNonce())
	return nil
}

func (s *Server) onDeltaResponse(id int64, _ *discoverygrpc.DeltaDiscoveryRequest, resp *discoverygrpc.DeltaDiscoveryResponse) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.streams[streamKey{true, id}]; st != nil {
		// Delta ACKs carry only the nonce: remember which version it stood for.
		st.sent[resp.GetTypeUrl()+"\x00"+resp.GetNonce()] = resp.GetSystemVersionInfo()
		st.sending(resp.GetNonce())
	}
	pushesTotal.WithLabelValues(roleOf(s, streamKey{true, id}), "delta", shortType(resp.GetTypeUrl())).Inc()
}

func (s *Server) nackLocked(n *nodeState, typeURL, version, msg string) {
	n.info.Nacks++
	n.info.LastNack = &Nack{TypeURL: typeURL, Version: version, Message: msg, At: time.Now()}
	nacksTotal.WithLabelValues(n.info.Role, shortType(typeURL)).Inc()
	s.log.Error("envoy rejected configuration (NACK)", "node", n.info.ID, "type", typeURL, "version", version, "error", msg)
}

func roleOf(s *Server, stream streamKey) string {
	if st := s.streams[stream]; st != nil {
		if n := s.nodes[st.node]; n != nil {
			return n.info.Role
		}
	}
	return ""
}

func metaString(n *core.Node, key string) string {
	if n.GetMetadata() == nil {
		return ""
	}
	if v, ok := n.GetMetadata().GetFields()[key]; ok {
		return v.GetStringValue()
	}
	return ""
}

func sortedNodeIDs(m map[string]*nodeState) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// slogAdapter routes go-control-plane's logging to slog at debug level.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Debugf(format string, args ...any) { a.l.Debug(sprintf(format, args...)) }
func (a slogAdapter) Infof(format string, args ...any)  { a.l.Debug(sprintf(format, args...)) }
func (a slogAdapter) Warnf(format string, args ...any)  { a.l.Warn(sprintf(format, args...)) }
func (a slogAdapter) Errorf(format string, args ...any) { a.l.Error(sprintf(format, args...)) }

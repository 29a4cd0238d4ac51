package xds

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"

	"github.com/gatehouse-dev/gatehouse/meshca"
	"github.com/gatehouse-dev/gatehouse/model"
)

// Server serves the current model to every connected Envoy over ADS, state
// of the world and delta (ads.go). Nodes that translate alike (same role,
// port, sidecar) share one build per model version: its resources are
// encoded once, and what a delta client needs to move from one build to
// the next is computed once for all of them (resources.go).
type Server struct {
	opts Options
	log  *slog.Logger
	ctx  context.Context

	mu      sync.Mutex
	model   *model.Model
	nodes   map[string]*nodeState // by node id
	built   map[buildKey]*built
	streams int64 // stream ids handed out

	// SetModel only records the model; the pusher goroutine hands it to
	// the nodes (see pushLoop).
	kick      chan struct{} // capacity 1: a push is pending
	modelGen  uint64        // bumped by SetModel
	pushedGen uint64        // every node has been given a model at least this new
	pushed    *sync.Cond    // on mu; broadcast when pushedGen moves

	budget *sendBudget

	ca      IdentityIssuer // nil: no mesh
	certTTL time.Duration
}

type buildKey struct {
	version string
	role    string
	port    uint32
	sidecar Sidecar // zero for edges
}

// built is one translation of the model, done once however many nodes and
// goroutines ask for it.
type built struct {
	once sync.Once
	cfg  *nodeConfig
	err  error
}

type nodeState struct {
	info    NodeInfo
	metaErr string // node metadata gatehouse cannot use; the node gets no config

	sidecar *Sidecar            // role sidecar
	cert    *meshca.Certificate // its current workload certificate
	certFor string              // the component cert was issued for
	renewAt time.Time
	secrets *resourceSet // its SDS secrets, encoded once per certificate

	pushedVersion string                     // model version last applied to the node
	config        atomic.Pointer[nodeConfig] // what its streams serve; nil: nothing yet
	streams       map[*adsStream]struct{}
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
// Register to attach it to a gRPC server (built with GRPCServerOptions).
// It stops serving when ctx ends.
func NewServer(ctx context.Context, opts Options, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	s := &Server{
		opts:  opts,
		log:   log,
		ctx:   ctx,
		nodes: map[string]*nodeState{},
		built: map[buildKey]*built{},
		kick:  make(chan struct{}, 1),
	}
	if opts.SendBudget > 0 {
		s.budget = newSendBudget(opts.SendBudget)
	}
	s.pushed = sync.NewCond(&s.mu)
	go s.pushLoop(ctx)
	return s
}

// Register attaches the ADS service (SotW and delta) to g, which must have
// been created with GRPCServerOptions.
func (s *Server) Register(g *grpc.Server) {
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(g, s)
}

// SetModel publishes a new model: it records it and returns; the pusher
// goroutine hands it to every connected node, whose streams send what
// changed (a slow stream does not hold up the publish, the other nodes or
// the admin endpoints). Nodes that connect from now on get it at once.
// WaitPushed waits for the push.
func (s *Server) SetModel(m *model.Model) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.model = m
	s.modelGen++
	publishesTotal.Inc()
	// Drop builds of older versions: they will not be asked for again
	// (streams still holding one keep it alive until they move on).
	for k := range s.built {
		if k.version != m.Version {
			delete(s.built, k)
		}
	}
	s.kickLocked()
}

func (s *Server) kickLocked() {
	select {
	case s.kick <- struct{}{}:
	default: // a push is already pending; it takes the latest model
	}
}

// WaitPushed waits until every node connected now has been given the model
// of the last SetModel (or a newer one), or ctx ends. Given: the node's
// streams have been told; what they send is up to their Envoys' pace.
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

// pushLoop hands the latest model to the nodes. Translating is done once
// per build, outside the lock; a model superseded during a round is
// skipped (a node is only given the current model).
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
			s.refreshNode(id)
		}
		s.mu.Lock()
		if gen > s.pushedGen {
			s.pushedGen = gen
			s.pushed.Broadcast()
		}
		s.mu.Unlock()
	}
}

// refreshNode gives a node the current model's configuration unless it has
// it, and tells its streams.
func (s *Server) refreshNode(id string) {
	s.mu.Lock()
	n, m := s.nodes[id], s.model
	if n == nil || m == nil || n.pushedVersion == m.Version {
		s.mu.Unlock()
		return
	}
	if n.metaErr != "" {
		n.pushedVersion, n.info.Error = m.Version, n.metaErr
		s.mu.Unlock()
		return
	}
	node := Node{ID: n.info.ID, Role: n.info.Role, ListenPort: n.info.ListenPort, Sidecar: n.sidecar}
	b := s.builtLocked(m.Version, node)
	s.mu.Unlock()

	b.once.Do(func() {
		res, err := Translate(m, node, s.opts)
		if err == nil {
			b.cfg, err = buildConfig(res)
		}
		b.err = err
	})

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.nodes[id] != n || s.model != m {
		return // gone, or a newer model is on its way
	}
	s.applyLocked(n, m, b)
}

func (s *Server) builtLocked(version string, n Node) *built {
	k := buildKey{version: version, role: n.Role, port: n.ListenPort}
	if n.Sidecar != nil {
		k.sidecar = *n.Sidecar
	}
	b := s.built[k]
	if b == nil {
		b = &built{}
		s.built[k] = b
	}
	return b
}

// applyLocked makes a build a node's configuration and tells its streams.
// A build that failed leaves the node with what it had (Envoy keeps it
// anyway, and the node gets the next good one) and the error on show.
func (s *Server) applyLocked(n *nodeState, m *model.Model, b *built) {
	n.pushedVersion = m.Version
	cfg, err := b.cfg, b.err
	if err == nil && n.sidecar != nil {
		cfg, err = s.sidecarConfig(n, b.cfg)
	}
	if err != nil {
		if n.info.Error != err.Error() {
			s.log.Error("no configuration for node", "node", n.info.ID, "error", err)
		}
		n.info.Error = err.Error()
		return
	}
	n.info.Error = ""
	if n.config.Load() == cfg {
		return
	}
	n.config.Store(cfg)
	for st := range n.streams {
		st.wake()
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

// registerLocked attaches a new stream to its node, creating the node on
// its first stream. The caller refreshes the node after unlocking.
func (s *Server) registerLocked(st *adsStream, node *core.Node) *nodeState {
	n := s.nodes[node.GetId()]
	if n == nil {
		n = &nodeState{streams: map[*adsStream]struct{}{}, info: NodeInfo{
			ID: node.GetId(), Cluster: node.GetCluster(), Delta: st.delta, ConnectedAt: time.Now(),
			Acked: map[string]string{}, Role: metaString(node, "role"),
			Version: envoyVersion(node),
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
		s.log.Info("envoy connected", "node", n.info.ID, "role", n.info.Role, "delta", st.delta, "stream", st.id)
	}
	n.streams[st] = struct{}{}
	n.info.Streams = len(n.streams)
	streamsGauge.WithLabelValues(n.info.Role, st.protocol()).Inc()
	return n
}

func (s *Server) streamClosed(st *adsStream) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := st.node
	if n == nil || s.nodes[n.info.ID] != n {
		return
	}
	delete(n.streams, st)
	streamsGauge.WithLabelValues(n.info.Role, st.protocol()).Dec()
	n.info.Streams = len(n.streams)
	if len(n.streams) == 0 {
		// Forget the node entirely, so a fleet that churns does not grow
		// memory.
		delete(s.nodes, n.info.ID)
		s.log.Info("envoy disconnected", "node", n.info.ID, "stream", st.id)
	}
}

// ackedLocked records an ACK of a version.
func (s *Server) ackedLocked(n *nodeState, typeURL, version string) {
	if version != "" {
		n.info.Acked[typeURL] = version
	}
}

func (s *Server) nackLocked(n *nodeState, typeURL, version, msg string) {
	n.info.Nacks++
	n.info.LastNack = &Nack{TypeURL: typeURL, Version: version, Message: msg, At: time.Now()}
	nacksTotal.WithLabelValues(n.info.Role, shortType(typeURL)).Inc()
	s.log.Error("envoy rejected configuration (NACK)", "node", n.info.ID, "type", typeURL, "version", version, "error", msg)
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

// envoyVersion is the Envoy version a node reports, e.g. "1.36.4" (from
// user_agent_build_version; the older user_agent_version string otherwise).
func envoyVersion(node *core.Node) string {
	if v := node.GetUserAgentBuildVersion().GetVersion(); v != nil {
		return fmt.Sprintf("%d.%d.%d", v.GetMajorNumber(), v.GetMinorNumber(), v.GetPatch())
	}
	return node.GetUserAgentVersion()
}

package xds

import (
	"errors"
	"io"
	"sort"
	"strconv"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The ADS protocol, as Envoy speaks it
// (https://www.envoyproxy.io/docs/envoy/latest/api-docs/xds_protocol):
//
//   - one stream per Envoy carries every type; the first request names the
//     node;
//   - a response of a type is followed by the Envoy's next request of that
//     type: an ACK (SotW: the version; delta: the nonce) or a NACK (plus
//     error_detail). Until then the stream sends nothing more of that type,
//     so a slow Envoy holds one response per type and no queue builds up;
//   - SotW: a response carries every resource of the type the Envoy asked
//     for; it is sent when the Envoy's version differs from the build's
//     (or it asks for a name it was not sent). A NACKed version is not sent
//     again: the next build is;
//   - delta: a response carries the resources that changed and the names
//     removed since what the Envoy holds. Envoys of one role move from the
//     same build to the same next one, so that difference is computed once
//     (resourceSet.diffFrom) and its bytes are shared by every stream.
//
// Types are answered in the order clusters, listeners, routes, secrets, so
// a route never arrives before the cluster it names.
var typeOrder = []string{resourcev3.ClusterType, resourcev3.ListenerType, resourcev3.RouteType, resourcev3.SecretType}

// adsStream is one ADS stream; everything but wake runs on the stream's
// own goroutine.
type adsStream struct {
	s      *Server
	id     int64
	delta  bool
	node   *nodeState // set by the first request
	notify chan struct{}
	nonce  int64
	sentAt map[string]time.Time // nonce -> when it was sent, for ACK latency

	sotwTypes  map[string]*sotwType
	deltaTypes map[string]*deltaType
}

// flow is what both protocols keep per type to pace responses: one at a
// time, each holding its share of the send budget until the Envoy answers.
type flow struct {
	pending bool  // a response awaits the Envoy's next request of the type
	held    int64 // send budget that response holds until then
}

// release: the Envoy's next request of the type came (or the stream
// ended); its response no longer holds budget.
func (f *flow) release(b *sendBudget) {
	b.release(f.held)
	f.pending, f.held = false, 0
}

// hold: a response went out, holding budget bytes.
func (f *flow) hold(budget int64) { f.pending, f.held = true, budget }

// sotwType is a SotW stream's state of one type.
type sotwType struct {
	flow
	wildcard  bool            // every resource of the type
	explicit  bool            // the Envoy has named resources (legacy wildcard is over)
	names     map[string]bool // asked for, unless wildcard
	have      string          // version the Envoy holds (or was sent and rejected)
	haveNames map[string]bool // names it was sent with that version
	nonce     string          // of the last response
}

// deltaType is a delta stream's state of one type.
type deltaType struct {
	flow
	wildcard bool
	names    map[string]bool // subscribed by name
	// What the Envoy holds: exactly base (wildcard subscriptions, the
	// common case: shared diffs apply), or known: name -> version.
	base     *resourceSet
	known    map[string]string
	answered bool              // a response of the type was sent
	sent     map[string]string // nonce -> system version, for ACK/NACK reports
}

func (s *Server) newStream(delta bool) *adsStream {
	s.mu.Lock()
	s.streams++
	id := s.streams
	s.mu.Unlock()
	return &adsStream{s: s, id: id, delta: delta, notify: make(chan struct{}, 1), sentAt: map[string]time.Time{},
		sotwTypes: map[string]*sotwType{}, deltaTypes: map[string]*deltaType{}}
}

func (st *adsStream) protocol() string {
	if st.delta {
		return "delta"
	}
	return "sotw"
}

// wake tells the stream its node's configuration changed. Never blocks.
func (st *adsStream) wake() {
	select {
	case st.notify <- struct{}{}:
	default:
	}
}

// serve runs a stream: requests from recv and wake-ups in, responses out
// through respond, all on this goroutine.
func serve[Req any](st *adsStream, stream grpc.ServerStream, recv func() (*Req, error), handle func(*Req) error, respond func() error) error {
	defer st.s.streamClosed(st)
	defer st.releaseBudget()
	reqs := make(chan *Req)
	errc := make(chan error, 1)
	ctx := stream.Context()
	go func() {
		for {
			r, err := recv()
			if err != nil {
				errc <- err
				return
			}
			select {
			case reqs <- r:
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-st.s.ctx.Done():
			return status.Error(codes.Unavailable, "gatehouse is shutting down")
		case err := <-errc:
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		case r := <-reqs:
			if err := handle(r); err != nil {
				return err
			}
		case <-st.notify:
		}
		if st.node == nil {
			continue
		}
		if err := respond(); err != nil {
			return err
		}
	}
}

// StreamAggregatedResources serves a state-of-the-world ADS stream.
func (s *Server) StreamAggregatedResources(stream discoverygrpc.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	st := s.newStream(false)
	return serve(st, stream, stream.Recv, st.sotwRequest, func() error { return st.sotwRespond(stream) })
}

// DeltaAggregatedResources serves an incremental ADS stream.
func (s *Server) DeltaAggregatedResources(stream discoverygrpc.AggregatedDiscoveryService_DeltaAggregatedResourcesServer) error {
	st := s.newStream(true)
	return serve(st, stream, stream.Recv, st.deltaRequest, func() error { return st.deltaRespond(stream) })
}

// start checks a request's stream-level fields: the first request of a
// stream must name its node (later ones need not: only the first is sure
// to carry it), and every request its type. The stream's node is
// registered and given its configuration on the first.
func (st *adsStream) start(node *core.Node, typ string) error {
	if st.node == nil {
		if node.GetId() == "" {
			return status.Error(codes.InvalidArgument, "the first request of a stream must carry node.id")
		}
		st.s.mu.Lock()
		st.node = st.s.registerLocked(st, node)
		st.s.mu.Unlock()
		st.s.refreshNode(node.GetId())
	}
	if typ == "" {
		return status.Error(codes.InvalidArgument, "type_url is required on an ADS stream")
	}
	return nil
}

func (st *adsStream) sotwRequest(req *discoverygrpc.DiscoveryRequest) error {
	if err := st.start(req.GetNode(), req.GetTypeUrl()); err != nil {
		return err
	}
	typ := req.GetTypeUrl()
	t := st.sotwTypes[typ]
	first := t == nil
	if first {
		t = &sotwType{wildcard: true}
		st.sotwTypes[typ] = t
	}
	if !first && req.GetResponseNonce() != t.nonce {
		return nil // about an older response, crossed by a newer one: the Envoy will answer that
	}
	t.release(st.s.budget)
	t.setNames(req.GetResourceNames())
	switch {
	case req.GetErrorDetail() != nil:
		// The Envoy keeps its last good version and reports the rejected
		// one's nonce. Keep t.have at the rejected version: it is not sent
		// again, the next build is.
		st.s.mu.Lock()
		st.s.nackLocked(st.node, typ, t.have, req.GetErrorDetail().GetMessage())
		st.s.mu.Unlock()
	case req.GetResponseNonce() != "":
		t.have = req.GetVersionInfo()
		st.acked(typ, req.GetResponseNonce(), t.have)
	default:
		// First request of the type: an Envoy that reconnects says which
		// version it holds, and gets nothing if that is still current.
		t.have = req.GetVersionInfo()
		t.haveNames = t.names
	}
	return nil
}

// setNames applies the names of a SotW request: none means every resource
// until the Envoy first names some ("legacy wildcard"); "*" asks for every
// resource explicitly.
func (t *sotwType) setNames(names []string) {
	if len(names) == 0 && !t.explicit {
		t.wildcard, t.names = true, nil
		return
	}
	t.explicit, t.wildcard = true, false
	t.names = make(map[string]bool, len(names))
	for _, n := range names {
		if n == "*" {
			t.wildcard = true
			continue
		}
		t.names[n] = true
	}
}

func (st *adsStream) sotwRespond(stream grpc.ServerStream) error {
	cfg := st.node.config.Load()
	if cfg == nil {
		return nil
	}
	for _, typ := range typeOrder {
		t, set := st.sotwTypes[typ], cfg.sets[typ]
		if t == nil || set == nil || t.pending {
			continue
		}
		if set.version == t.have && !t.wantsUnsent() {
			continue
		}
		msg := &wireMessage{}
		if t.wildcard || t.coversAll(set) {
			msg.add(set.sotw)
		} else {
			for i, name := range set.names {
				if t.names[name] {
					msg.add(set.sotwEntry(i))
				}
			}
		}
		if !st.s.budget.acquire(st, typ, int64(msg.size)) {
			continue // woken when it is this stream's turn
		}
		t.hold(budgeted(msg))
		nonce := st.nextNonce()
		msg.add(sotwTail(set.version, typ, nonce))
		if err := st.send(stream, typ, nonce, msg); err != nil {
			return err
		}
		t.have, t.haveNames, t.nonce = set.version, t.names, nonce
	}
	return nil
}

// budgeted is what a response holds of the send budget.
func budgeted(msg *wireMessage) int64 {
	if msg.size < smallResponse {
		return 0
	}
	return int64(msg.size)
}

// wantsUnsent reports whether the Envoy asks for a name it was not sent
// with the version it holds.
func (t *sotwType) wantsUnsent() bool {
	if t.wildcard {
		return false
	}
	for n := range t.names {
		if !t.haveNames[n] {
			return true
		}
	}
	return false
}

func (t *sotwType) coversAll(set *resourceSet) bool {
	if len(t.names) < len(set.names) {
		return false
	}
	for _, n := range set.names {
		if !t.names[n] {
			return false
		}
	}
	return true
}

func (st *adsStream) deltaRequest(req *discoverygrpc.DeltaDiscoveryRequest) error {
	if err := st.start(req.GetNode(), req.GetTypeUrl()); err != nil {
		return err
	}
	typ := req.GetTypeUrl()
	t := st.deltaTypes[typ]
	if t == nil {
		// No names at first: every resource ("legacy wildcard"); the
		// versions an Envoy that reconnects already holds.
		t = &deltaType{wildcard: len(req.GetResourceNamesSubscribe()) == 0, names: map[string]bool{}, sent: map[string]string{}}
		if iv := req.GetInitialResourceVersions(); len(iv) > 0 {
			t.known = make(map[string]string, len(iv))
			for n, v := range iv {
				t.known[n] = v
			}
			t.answered = true // it has been configured before: no empty response needed
		}
		st.deltaTypes[typ] = t
	}
	t.release(st.s.budget)
	for _, n := range req.GetResourceNamesSubscribe() {
		if n == "*" {
			t.wildcard = true
			continue
		}
		t.names[n] = true
	}
	for _, n := range req.GetResourceNamesUnsubscribe() {
		if n == "*" {
			t.wildcard = false
			t.materialize()
			for k := range t.known {
				if !t.names[k] {
					delete(t.known, k) // it drops what it no longer asks for
				}
			}
			continue
		}
		delete(t.names, n)
		t.materialize()
		if t.wildcard {
			// Still wanted through the wildcard: the protocol has the
			// server send it again.
			t.known[n] = ""
		} else {
			delete(t.known, n)
		}
	}
	if nonce := req.GetResponseNonce(); nonce != "" {
		version, ok := t.sent[nonce]
		delete(t.sent, nonce)
		if ok {
			if req.GetErrorDetail() != nil {
				st.s.mu.Lock()
				st.s.nackLocked(st.node, typ, version, req.GetErrorDetail().GetMessage())
				st.s.mu.Unlock()
			} else {
				st.acked(typ, nonce, version)
			}
		}
	}
	return nil
}

// materialize turns "holds exactly base" into the explicit name -> version
// map, before the stream's state departs from a build's.
func (t *deltaType) materialize() {
	if t.known != nil {
		return
	}
	t.known = map[string]string{}
	if t.base != nil {
		for i, n := range t.base.names {
			t.known[n] = t.base.hashes[i]
		}
		t.base = nil
	}
}

func (st *adsStream) deltaRespond(stream grpc.ServerStream) error {
	cfg := st.node.config.Load()
	if cfg == nil {
		return nil
	}
	for _, typ := range typeOrder {
		t, set := st.deltaTypes[typ], cfg.sets[typ]
		if t == nil || set == nil || t.pending {
			continue
		}
		msg := &wireMessage{}
		// What the Envoy will hold once it has msg.
		base, known := set, map[string]string(nil)
		switch {
		case t.wildcard && t.known == nil && t.base == nil:
			msg.add(set.delta) // first response: everything (even nothing, so the Envoy's init completes)
		case t.wildcard && t.known == nil:
			if t.base == set {
				continue
			}
			d := set.diffFrom(t.base)
			if d.empty() {
				t.base = set
				continue
			}
			msg.add(d.body)
		default:
			var changed bool
			changed, known = t.diff(set, msg)
			if !t.wildcard {
				base = nil
			}
			if !changed && t.answered {
				t.base, t.known = base, known
				continue
			}
		}
		if !st.s.budget.acquire(st, typ, int64(msg.size)) {
			continue // woken when it is this stream's turn
		}
		t.hold(budgeted(msg))
		nonce := st.nextNonce()
		msg.add(deltaTail(set.version, typ, nonce))
		if err := st.send(stream, typ, nonce, msg); err != nil {
			return err
		}
		t.base, t.known = base, known
		if len(t.sent) > 16 {
			clear(t.sent) // nonces never answered must not accumulate
		}
		t.sent[nonce] = set.version
		t.answered = true
	}
	return nil
}

// diff adds to msg what the Envoy lacks of set, going by the known map
// (which it leaves as it is), and returns whether it lacks anything and
// what it will hold: nil for exactly set (wildcard), else name -> version.
func (t *deltaType) diff(set *resourceSet, msg *wireMessage) (bool, map[string]string) {
	t.materialize()
	changed := false
	want := make(map[string]bool, len(t.names))
	for i, name := range set.names {
		if !t.wildcard && !t.names[name] {
			continue
		}
		want[name] = true
		if v, ok := t.known[name]; !ok || v != set.hashes[i] {
			msg.add(set.deltaEntry(i))
			changed = true
		}
	}
	var removed []string
	for name := range t.known {
		if !want[name] {
			removed = append(removed, name)
		}
	}
	if len(removed) > 0 {
		sort.Strings(removed)
		msg.add(appendRemoved(nil, removed...))
		changed = true
	}
	if t.wildcard {
		return changed, nil
	}
	known := make(map[string]string, len(want))
	for name := range want {
		known[name] = set.hash(name)
	}
	return changed, known
}

// releaseBudget gives back what the stream holds of the send budget.
func (st *adsStream) releaseBudget() {
	b := st.s.budget
	b.drop(st)
	for _, t := range st.sotwTypes {
		t.release(b)
	}
	for _, t := range st.deltaTypes {
		t.release(b)
	}
}

func (st *adsStream) nextNonce() string {
	st.nonce++
	return strconv.FormatInt(st.nonce, 10)
}

// send writes one response and counts it.
func (st *adsStream) send(stream grpc.ServerStream, typ, nonce string, msg *wireMessage) error {
	if len(st.sentAt) > 64 {
		clear(st.sentAt) // nonces never ACKed must not accumulate
	}
	st.sentAt[nonce] = time.Now()
	role := st.node.info.Role // set at registration, never changed
	pushesTotal.WithLabelValues(role, st.protocol(), shortType(typ)).Inc()
	sentBytes.WithLabelValues(st.protocol(), shortType(typ)).Add(float64(msg.size))
	return stream.SendMsg(msg)
}

// acked records an ACK: the node's version of the type and the latency.
func (st *adsStream) acked(typ, nonce, version string) {
	if at, ok := st.sentAt[nonce]; ok {
		ackSeconds.WithLabelValues(shortType(typ)).Observe(time.Since(at).Seconds())
		delete(st.sentAt, nonce)
	}
	st.s.mu.Lock()
	st.s.ackedLocked(st.node, typ, version)
	st.s.mu.Unlock()
}

package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// The xDS types an edge Envoy subscribes to, in the order Envoy asks for
// them: clusters, then listeners, then the route configurations the
// listeners name.
var xdsTypes = []string{resourcev3.ClusterType, resourcev3.ListenerType, resourcev3.RouteType}

func short(typ string) string {
	switch typ {
	case resourcev3.ClusterType:
		return "CDS"
	case resourcev3.ListenerType:
		return "LDS"
	case resourcev3.RouteType:
		return "RDS"
	}
	return typ
}

// fleet is N simulated Envoys and the target they must converge to.
type fleet struct {
	clients   []*client
	verify    bool // hash every received resource and compare with the target (costly; smoke)
	namesOnly bool // converge on names: versions are another build's (-names-only)

	mu     sync.Mutex
	target *expected
	gen    int           // target generation
	done   int           // clients that reached the target of gen
	doneAt time.Time     // when the last of them ACKed it
	all    chan struct{} // closed when done == len(clients)
}

// setTarget makes exp the state every client must reach, and returns a
// channel closed when all have ACKed it. Each client compares what it
// holds with exp once here (before the change is made); from then on it
// only counts the differences its responses add or remove, so checking
// whether it arrived costs nothing per ACK.
func (f *fleet) setTarget(exp *expected) <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.target, f.gen, f.done, f.all = exp, f.gen+1, 0, make(chan struct{})
	gen := f.gen
	// Clients that already match (a change that sends nothing) count now.
	for _, c := range f.clients {
		c.mu.Lock()
		c.target = exp
		for _, typ := range xdsTypes {
			c.recount(typ)
		}
		if c.matches() {
			c.reached = gen
			f.done++
		}
		c.mu.Unlock()
	}
	if f.done == len(f.clients) {
		f.doneAt = time.Now()
		close(f.all)
	}
	return f.all
}

// reached is called by a client that matches the target after an ACK.
func (f *fleet) reached(c *client, at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c.reached == f.gen {
		return
	}
	c.reached = f.gen
	f.done++
	if at.After(f.doneAt) || f.done == 1 {
		f.doneAt = at
	}
	if f.done == len(f.clients) {
		close(f.all)
	}
}

// counts are the totals over every client: bytes and resources per type, responses.
type counts struct {
	bytes, resources map[string]int64
	responses        int64
}

func (f *fleet) counts() counts {
	out := counts{bytes: map[string]int64{}, resources: map[string]int64{}}
	for _, c := range f.clients {
		for i, typ := range xdsTypes {
			out.bytes[typ] += c.bytes[i].Load()
			out.resources[typ] += c.resources[i].Load()
		}
		out.responses += c.responses.Load()
	}
	return out
}

// minus is c - o.
func (c counts) minus(o counts) counts {
	out := counts{bytes: map[string]int64{}, resources: map[string]int64{}, responses: c.responses - o.responses}
	for _, typ := range xdsTypes {
		out.bytes[typ] = c.bytes[typ] - o.bytes[typ]
		out.resources[typ] = c.resources[typ] - o.resources[typ]
	}
	return out
}

// behind lists a few clients that have not reached the target, and why.
func (f *fleet) behind(max int) []string {
	f.mu.Lock()
	exp, gen := f.target, f.gen
	f.mu.Unlock()
	var out []string
	for _, c := range f.clients {
		c.mu.Lock()
		if c.reached != gen && len(out) < max {
			var state string
			for _, typ := range xdsTypes {
				state += fmt.Sprintf(" %s=%s(%d)", short(typ), c.version[typ], len(c.names[typ]))
			}
			out = append(out, fmt.Sprintf("%s has%s; want %s", c.id, state, exp))
		}
		c.mu.Unlock()
	}
	return out
}

// client is one simulated Envoy: one gRPC connection, one ADS stream. It
// reads responses as bytes and takes only names, versions and nonces out
// of them (rawResponse), as an Envoy's own cost of decoding is not the
// control plane's.
type client struct {
	f     *fleet
	id    string
	delta bool
	conn  *grpc.ClientConn

	mu       sync.Mutex
	version  map[string]string            // SotW: last ACKed version_info; delta: last system_version_info
	names    map[string]map[string]string // resource name -> version (delta: from the server; SotW: hash when verifying, else "")
	routes   []string                     // RDS names from the listener
	reached  int                          // target generation this client reached
	rdsAsked bool
	target   *expected
	differ   map[string]int // per type: names whose version differs from the target's, or that only one side has

	bytes     [3]atomic.Int64 // per xdsTypes index: marshalled response bytes received
	resources [3]atomic.Int64 // per xdsTypes index: resources received
	responses atomic.Int64
}

func newClient(f *fleet, addr, id string, delta bool) (*client, error) {
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(512<<20), grpc.ForceCodecV2(rawCodec{encoding.GetCodecV2("proto")})),
		// Like Envoy's HTTP/2 client: large windows for large configs.
		grpc.WithInitialWindowSize(1<<20), grpc.WithInitialConnWindowSize(16<<20))
	if err != nil {
		return nil, err
	}
	return &client{f: f, id: id, delta: delta, conn: conn,
		version: map[string]string{}, names: map[string]map[string]string{}, differ: map[string]int{}}, nil
}

func (c *client) node(first bool) *core.Node {
	if !first {
		return nil // set_node_on_first_message_only, as gatehouse's bootstraps
	}
	md, _ := structpb.NewStruct(map[string]any{"role": "edge"})
	return &core.Node{Id: c.id, Cluster: "fleet", Metadata: md, UserAgentName: "envoy"}
}

// differs reports whether the client's copy of a resource (version v, held
// says whether it has one) is not the target's. c.mu held.
func (c *client) differs(typ, name, v string, held bool) bool {
	want, wanted := c.target.names[typ][name]
	if held != wanted {
		return true
	}
	if !held {
		return false
	}
	// SotW carries no per-resource version: the hash of the bytes when
	// verifying, else presence is all there is (the type's version decides).
	return (c.delta || c.f.verify) && !c.f.namesOnly && v != want
}

// recount compares a type with the target from scratch. c.mu held.
func (c *client) recount(typ string) {
	if c.target == nil {
		return
	}
	n := 0
	for name, v := range c.names[typ] {
		if c.differs(typ, name, v, true) {
			n++
		}
	}
	for name := range c.target.names[typ] {
		if _, ok := c.names[typ][name]; !ok {
			n++
		}
	}
	c.differ[typ] = n
}

// set records a resource's new version (or its removal) and keeps the
// count of differences. c.mu held.
func (c *client) set(typ, name, v string, remove bool) {
	names := c.names[typ]
	old, had := names[name]
	if remove {
		delete(names, name)
	} else {
		names[name] = v
	}
	if c.target == nil {
		return
	}
	before, after := c.differs(typ, name, old, had), c.differs(typ, name, v, !remove)
	switch {
	case before && !after:
		c.differ[typ]--
	case after && !before:
		c.differ[typ]++
	}
}

// matches reports whether the client holds exactly the target. c.mu held.
func (c *client) matches() bool {
	if c.target == nil {
		return false
	}
	for _, typ := range xdsTypes {
		if c.differ[typ] != 0 || (!c.delta && !c.f.namesOnly && c.version[typ] != c.target.versions[typ]) {
			return false
		}
	}
	return true
}

func (c *client) typeIndex(typ string) int {
	for i, t := range xdsTypes {
		if t == typ {
			return i
		}
	}
	return -1
}

// afterAck checks the target after an ACK was sent.
func (c *client) afterAck() {
	c.mu.Lock()
	ok := c.matches()
	c.mu.Unlock()
	if ok {
		c.f.reached(c, time.Now())
	}
}

// listenerRoutes returns the RDS names an edge listener asks for.
func listenerRoutes(b []byte) ([]string, error) {
	var l listenerv3.Listener
	if err := proto.Unmarshal(b, &l); err != nil {
		return nil, err
	}
	var out []string
	for _, fc := range l.GetFilterChains() {
		for _, flt := range fc.GetFilters() {
			var m hcm.HttpConnectionManager
			if err := flt.GetTypedConfig().UnmarshalTo(&m); err != nil {
				continue
			}
			if n := m.GetRds().GetRouteConfigName(); n != "" {
				out = append(out, n)
			}
		}
	}
	return out, nil
}

// runSotW runs the state-of-the-world ADS stream until ctx ends.
func (c *client) runSotW(ctx context.Context) error {
	stream, err := discoverygrpc.NewAggregatedDiscoveryServiceClient(c.conn).StreamAggregatedResources(ctx)
	if err != nil {
		return err
	}
	first := true
	send := func(r *discoverygrpc.DiscoveryRequest) error {
		r.Node = c.node(first)
		first = false
		return stream.Send(r)
	}
	// Envoy asks for clusters first, listeners once clusters are warm.
	if err := send(&discoverygrpc.DiscoveryRequest{TypeUrl: resourcev3.ClusterType}); err != nil {
		return err
	}
	ldsAsked := false
	for {
		var raw rawMessage
		if err := stream.RecvMsg(&raw); err != nil {
			if err == io.EOF || ctx.Err() != nil {
				return nil
			}
			return err
		}
		resp, err := parseResponse(raw, false)
		if err != nil {
			return fmt.Errorf("%s: %w", c.id, err)
		}
		typ := resp.typeURL
		i := c.typeIndex(typ)
		if i < 0 {
			return fmt.Errorf("%s: unexpected type %s", c.id, typ)
		}
		c.bytes[i].Add(int64(len(raw)))
		c.resources[i].Add(int64(len(resp.resources)))
		c.responses.Add(1)
		names := make(map[string]string, len(resp.resources))
		var routes []string
		for _, r := range resp.resources {
			if c.f.verify {
				names[r.name] = cachev3.HashResource(r.value)
			} else {
				names[r.name] = ""
			}
			if typ == resourcev3.ListenerType {
				rs, err := listenerRoutes(r.value)
				if err != nil {
					return fmt.Errorf("%s: listener %s: %v", c.id, r.name, err)
				}
				routes = append(routes, rs...)
			}
		}
		c.mu.Lock()
		c.version[typ] = resp.version
		c.names[typ] = names
		c.recount(typ)
		if typ == resourcev3.ListenerType {
			c.routes = routes
		}
		c.mu.Unlock()
		// ACK: the version and nonce of the response, the names asked for.
		ack := &discoverygrpc.DiscoveryRequest{TypeUrl: typ, VersionInfo: resp.version, ResponseNonce: resp.nonce}
		if typ == resourcev3.RouteType {
			ack.ResourceNames = c.routes
		}
		if err := send(ack); err != nil {
			return err
		}
		if typ == resourcev3.ClusterType && !ldsAsked {
			ldsAsked = true
			if err := send(&discoverygrpc.DiscoveryRequest{TypeUrl: resourcev3.ListenerType}); err != nil {
				return err
			}
		}
		if typ == resourcev3.ListenerType && len(routes) > 0 && !c.rdsAsked {
			c.rdsAsked = true
			if err := send(&discoverygrpc.DiscoveryRequest{TypeUrl: resourcev3.RouteType, ResourceNames: routes}); err != nil {
				return err
			}
		}
		c.afterAck()
	}
}

// runDelta runs the incremental ADS stream until ctx ends.
func (c *client) runDelta(ctx context.Context) error {
	stream, err := discoverygrpc.NewAggregatedDiscoveryServiceClient(c.conn).DeltaAggregatedResources(ctx)
	if err != nil {
		return err
	}
	first := true
	send := func(r *discoverygrpc.DeltaDiscoveryRequest) error {
		r.Node = c.node(first)
		first = false
		return stream.Send(r)
	}
	if err := send(&discoverygrpc.DeltaDiscoveryRequest{TypeUrl: resourcev3.ClusterType}); err != nil {
		return err
	}
	ldsAsked := false
	for {
		var raw rawMessage
		if err := stream.RecvMsg(&raw); err != nil {
			if err == io.EOF || ctx.Err() != nil {
				return nil
			}
			return err
		}
		resp, err := parseResponse(raw, true)
		if err != nil {
			return fmt.Errorf("%s: %w", c.id, err)
		}
		typ := resp.typeURL
		i := c.typeIndex(typ)
		if i < 0 {
			return fmt.Errorf("%s: unexpected type %s", c.id, typ)
		}
		c.bytes[i].Add(int64(len(raw)))
		c.resources[i].Add(int64(len(resp.resources)))
		c.responses.Add(1)
		var routes []string
		c.mu.Lock()
		if c.names[typ] == nil {
			c.names[typ] = map[string]string{}
		}
		for _, r := range resp.resources {
			if c.f.verify {
				// The bytes must be what the version says.
				if h := cachev3.HashResource(r.value); h != r.version {
					c.mu.Unlock()
					return fmt.Errorf("%s: %s %s: version %s but bytes hash to %s", c.id, short(typ), r.name, r.version, h)
				}
			}
			c.set(typ, r.name, r.version, false)
			if typ == resourcev3.ListenerType {
				rs, err := listenerRoutes(r.value)
				if err != nil {
					c.mu.Unlock()
					return fmt.Errorf("%s: listener %s: %v", c.id, r.name, err)
				}
				routes = append(routes, rs...)
			}
		}
		for _, n := range resp.removed {
			c.set(typ, n, "", true)
		}
		c.version[typ] = resp.version
		c.mu.Unlock()
		if err := send(&discoverygrpc.DeltaDiscoveryRequest{TypeUrl: typ, ResponseNonce: resp.nonce}); err != nil {
			return err
		}
		if typ == resourcev3.ClusterType && !ldsAsked {
			ldsAsked = true
			if err := send(&discoverygrpc.DeltaDiscoveryRequest{TypeUrl: resourcev3.ListenerType}); err != nil {
				return err
			}
		}
		if typ == resourcev3.ListenerType && len(routes) > 0 && !c.rdsAsked {
			c.rdsAsked = true
			if err := send(&discoverygrpc.DeltaDiscoveryRequest{TypeUrl: resourcev3.RouteType, ResourceNamesSubscribe: routes}); err != nil {
				return err
			}
		}
		c.afterAck()
	}
}

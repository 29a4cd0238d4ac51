package xds

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
)

// nodeConfig is what a node is served: one encoded resource set per xDS
// type. Nodes that translate alike share one; a sidecar's adds its own SDS
// secrets to the shared sets of its component.
type nodeConfig struct {
	sets map[string]*resourceSet // by type URL
}

// buildConfig encodes translated resources for serving. Each type's
// version is a hash of its encoded resources: the same config always has
// the same versions (across restarts and replicas), and a type whose
// resources did not change keeps its version, so Envoy is not sent it
// again. go-control-plane's snapshot checks the references between the
// types first (every route configuration a listener names exists).
func buildConfig(r *Resources) (*nodeConfig, error) {
	byType := map[resourcev3.Type][]types.Resource{
		resourcev3.ListenerType: r.Listeners,
		resourcev3.RouteType:    r.Routes,
		resourcev3.ClusterType:  r.Clusters,
	}
	snap, err := cachev3.NewSnapshot("", byType)
	if err == nil {
		err = snap.Consistent()
	}
	if err != nil {
		return nil, fmt.Errorf("inconsistent configuration: %w", err)
	}
	cfg := &nodeConfig{sets: make(map[string]*resourceSet, len(byType)+1)}
	for typ, items := range byType {
		set, err := newResourceSet(typ, items)
		if err != nil {
			return nil, err
		}
		cfg.sets[typ] = set
	}
	return cfg, nil
}

func marshalDeterministic(m proto.Message) ([]byte, error) {
	return proto.MarshalOptions{Deterministic: true}.Marshal(m)
}

// contentHash is the version of one type's resources: a hash of their
// encodings, each prefixed with its length.
type contentHash struct{ h hash.Hash }

func newContentHash() *contentHash { return &contentHash{sha256.New()} }

func (c *contentHash) add(b []byte) {
	fmt.Fprintf(c.h, "%d:", len(b))
	c.h.Write(b)
}

func (c *contentHash) version() string { return hex.EncodeToString(c.h.Sum(nil)[:8]) }

// EncodedSize is the size of what the server sends a client of r in full,
// per type URL (the SotW response body without its small per-response
// fields), after encoding it as the server does (for benchmarks and tools).
func EncodedSize(r *Resources) (map[string]int, error) {
	cfg, err := buildConfig(r)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for typ, set := range cfg.sets {
		out[typ] = len(set.sotw)
	}
	return out, nil
}

// Versions returns the version, per type URL, that the server serves for
// r: what a state-of-the-world client ACKs once it has r.
func Versions(r *Resources) (map[string]string, error) {
	cfg, err := buildConfig(r)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for typ, set := range cfg.sets {
		out[typ] = set.version
	}
	return out, nil
}

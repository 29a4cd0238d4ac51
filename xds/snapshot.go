package xds

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
)

// buildSnapshot turns translated resources into a go-control-plane snapshot
// whose version, per type, is a hash of that type's marshalled resources: the
// same config always has the same version (across restarts and replicas), and
// a type whose resources did not change keeps its version, so Envoy is not
// sent it again.
//
// Clusters and route configurations go into the snapshot pre-encoded (see
// preEncode): go-control-plane marshals every resource again for every
// response on every stream, and with a fleet of Envoys and a large catalog
// that marshalling was most of the control plane's CPU.
func buildSnapshot(r *Resources) (*cachev3.Snapshot, error) {
	byType := map[resourcev3.Type][]types.Resource{
		resourcev3.ListenerType: r.Listeners,
		resourcev3.RouteType:    r.Routes,
		resourcev3.ClusterType:  r.Clusters,
	}
	versions := map[resourcev3.Type]string{}
	for typ, items := range byType {
		h := newContentHash()
		out := make([]types.Resource, len(items))
		for i, it := range items {
			b, err := marshalDeterministic(it)
			if err != nil {
				return nil, err
			}
			h.add(b)
			if typ == resourcev3.ListenerType {
				// The snapshot reads listeners for their route names
				// (consistency checks); there is one per node.
				out[i] = it
				continue
			}
			if out[i], err = preEncode(it, b); err != nil {
				return nil, err
			}
		}
		versions[typ] = h.version()
		byType[typ] = out
	}
	snap, err := cachev3.NewSnapshot("", byType)
	if err != nil {
		return nil, err
	}
	for typ, v := range versions {
		snap.Resources[cachev3.GetResponseType(typ)].Version = v
	}
	if err := snap.Consistent(); err != nil {
		return nil, fmt.Errorf("inconsistent snapshot: %w", err)
	}
	// Build the delta version map now, once: the snapshot is shared by every
	// node of the same role and must not be written to afterwards.
	if err := snap.ConstructVersionMap(); err != nil {
		return nil, err
	}
	return snap, nil
}

func marshalDeterministic(m proto.Message) ([]byte, error) {
	return proto.MarshalOptions{Deterministic: true}.Marshal(m)
}

// preEncode returns a message of the same type as r that holds only r's
// name as a field and everything else as the already-encoded bytes of r
// (unknown fields, which protobuf copies through as they are). It encodes
// to exactly enc, the deterministic encoding of r, at the cost of a copy
// instead of a walk over every field; the resource's name, all the cache
// reads, is still there. A message that would not encode identically (or a
// type this does not know) is returned as it is.
func preEncode(r types.Resource, enc []byte) (types.Resource, error) {
	var pre proto.Message
	switch v := r.(type) {
	case *clusterv3.Cluster:
		if v.GetType() == clusterv3.Cluster_EDS {
			return r, nil // the snapshot follows its EDS reference
		}
		pre = &clusterv3.Cluster{Name: v.GetName()}
	case *route.RouteConfiguration:
		pre = &route.RouteConfiguration{Name: v.GetName()}
	default:
		return r, nil
	}
	name, err := marshalDeterministic(pre)
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(enc, name) {
		return r, nil
	}
	pre.ProtoReflect().SetUnknown(enc[len(name):len(enc):len(enc)])
	again, err := marshalDeterministic(pre)
	if err != nil || !bytes.Equal(again, enc) {
		return r, nil
	}
	return pre, nil
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

func contentVersion(items []types.Resource) (string, error) {
	h := newContentHash()
	for _, it := range items {
		b, err := marshalDeterministic(it)
		if err != nil {
			return "", err
		}
		h.add(b)
	}
	return h.version(), nil
}

// BuildSnapshot is the snapshot the server serves for translated resources
// (for benchmarks and tools; the server builds its own).
func BuildSnapshot(r *Resources) (*cachev3.Snapshot, error) { return buildSnapshot(r) }

// Versions returns the version, per type URL, that the server's snapshot of
// r carries: what a state-of-the-world client ACKs once it has r.
func Versions(r *Resources) (map[string]string, error) {
	out := map[string]string{}
	for typ, items := range map[resourcev3.Type][]types.Resource{
		resourcev3.ListenerType: r.Listeners,
		resourcev3.RouteType:    r.Routes,
		resourcev3.ClusterType:  r.Clusters,
	} {
		v, err := contentVersion(items)
		if err != nil {
			return nil, err
		}
		out[typ] = v
	}
	return out, nil
}

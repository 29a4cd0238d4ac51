package xds

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

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
func buildSnapshot(r *Resources) (*cachev3.Snapshot, error) {
	byType := map[resourcev3.Type][]types.Resource{
		resourcev3.ListenerType: r.Listeners,
		resourcev3.RouteType:    r.Routes,
		resourcev3.ClusterType:  r.Clusters,
	}
	snap, err := cachev3.NewSnapshot("", byType)
	if err != nil {
		return nil, err
	}
	for typ, items := range byType {
		v, err := contentVersion(items)
		if err != nil {
			return nil, err
		}
		idx := cachev3.GetResponseType(typ)
		snap.Resources[idx].Version = v
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

func contentVersion(items []types.Resource) (string, error) {
	h := sha256.New()
	opts := proto.MarshalOptions{Deterministic: true}
	for _, it := range items {
		b, err := opts.Marshal(it)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)[:8]), nil
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

package xds

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
)

// resourceSet is the resources of one xDS type in one build, encoded once
// and read by every stream that serves the build; it is never written
// after newResourceSet returns (but for its memo of diffs, behind a lock).
type resourceSet struct {
	typeURL string
	// version is the type's content hash: the SotW version_info and the
	// delta system_version_info.
	version string
	names   []string       // in translation order
	index   map[string]int // name -> position in names
	// hashes are the per-resource delta versions: the SHA-256 of the
	// resource's deterministic encoding (what go-control-plane's snapshot
	// cache uses, so an Envoy that moves between the two sees no change).
	hashes []string

	// sotw is every DiscoveryResponse.resources entry, concatenated;
	// sotwAt[i]:sotwAt[i+1] is resource i's. delta and deltaAt: the same
	// for DeltaDiscoveryResponse.resources.
	sotw, delta     []byte
	sotwAt, deltaAt []int

	diffMu sync.Mutex
	// diffs from older sets to this one, by the older set's version (a
	// content hash): not by pointer, which would keep every older set, and
	// through its own memo every set before it, alive.
	diffs map[string]*setDiff
}

// setDiff is what a delta client holding exactly one set needs to hold
// exactly another: the changed and new resources, and the removed names,
// as the encoded middle of a DeltaDiscoveryResponse.
type setDiff struct {
	once             sync.Once
	body             []byte
	changed, removed int
}

func (d *setDiff) empty() bool { return d.changed == 0 && d.removed == 0 }

// newResourceSet encodes items (all of typeURL) deterministically.
func newResourceSet(typeURL string, items []types.Resource) (*resourceSet, error) {
	s := &resourceSet{typeURL: typeURL, names: make([]string, len(items)), index: make(map[string]int, len(items)),
		hashes: make([]string, len(items)), sotwAt: make([]int, len(items)+1), deltaAt: make([]int, len(items)+1)}
	h := newContentHash()
	for i, it := range items {
		enc, err := marshalDeterministic(it)
		if err != nil {
			return nil, fmt.Errorf("encoding %s: %w", shortType(typeURL), err)
		}
		h.add(enc)
		name := cachev3.GetResourceName(it)
		if _, dup := s.index[name]; dup {
			return nil, fmt.Errorf("two %s resources named %q", shortType(typeURL), name)
		}
		sum := sha256.Sum256(enc)
		s.names[i], s.index[name], s.hashes[i] = name, i, hex.EncodeToString(sum[:])
		anyEnc := encodeAny(typeURL, enc)
		s.sotw = appendSotwEntry(s.sotw, anyEnc)
		s.delta = appendDeltaEntry(s.delta, name, s.hashes[i], anyEnc)
		s.sotwAt[i+1], s.deltaAt[i+1] = len(s.sotw), len(s.delta)
	}
	s.version = h.version()
	return s, nil
}

func (s *resourceSet) sotwEntry(i int) []byte { return s.sotw[s.sotwAt[i]:s.sotwAt[i+1]:s.sotwAt[i+1]] }
func (s *resourceSet) deltaEntry(i int) []byte {
	return s.delta[s.deltaAt[i]:s.deltaAt[i+1]:s.deltaAt[i+1]]
}

// hash returns the delta version of a resource, "" if the set lacks it.
func (s *resourceSet) hash(name string) string {
	if i, ok := s.index[name]; ok {
		return s.hashes[i]
	}
	return ""
}

// diffFrom returns what turns from into s for a client holding all of
// from: computed once per pair of sets and shared by every stream making
// that step (all the Envoys of one role move from the same build to the
// same next one). Only the last few origins are remembered.
func (s *resourceSet) diffFrom(from *resourceSet) *setDiff {
	s.diffMu.Lock()
	d := s.diffs[from.version]
	if d == nil {
		if s.diffs == nil || len(s.diffs) >= 4 {
			s.diffs = map[string]*setDiff{}
		}
		d = &setDiff{}
		s.diffs[from.version] = d
	}
	s.diffMu.Unlock()
	d.once.Do(func() {
		for i, name := range s.names {
			if from.hash(name) != s.hashes[i] {
				d.body = append(d.body, s.deltaEntry(i)...)
				d.changed++
			}
		}
		for _, name := range from.names {
			if _, ok := s.index[name]; !ok {
				d.body = appendRemoved(d.body, name)
				d.removed++
			}
		}
	})
	return d
}

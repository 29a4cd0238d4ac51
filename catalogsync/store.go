package catalogsync

import (
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/hashicorp/go-memdb"
)

const tableEntities = "entities"

// row is what the store keeps per entity; the indexed fields are derived
// from the entity when it is written.
type row struct {
	Key         string   // ref key, lower case
	Kind        string   // lower case
	Owner       string   // owner ref key, "" when none
	Groups      []string // users: every group they are in, transitively; groups: themselves and ancestors
	RouteClaims []string // "host prefix" claims of routed entities
	Source      string
	Entity      *Entity
}

var schema = &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{
	tableEntities: {
		Name: tableEntities,
		Indexes: map[string]*memdb.IndexSchema{
			"id":     {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Key"}},
			"kind":   {Name: "kind", Indexer: &memdb.StringFieldIndex{Field: "Kind"}},
			"owner":  {Name: "owner", AllowMissing: true, Indexer: &memdb.StringFieldIndex{Field: "Owner"}},
			"member": {Name: "member", AllowMissing: true, Indexer: &memdb.StringSliceFieldIndex{Field: "Groups"}},
			"route":  {Name: "route", AllowMissing: true, Indexer: &memdb.StringSliceFieldIndex{Field: "RouteClaims"}},
			"source": {Name: "source", Indexer: &memdb.StringFieldIndex{Field: "Source"}},
		},
	},
}}

// Store holds the merged catalog of all sources in go-memdb. Every change is
// one write transaction that produces a new immutable generation; readers take
// a Snapshot and are never affected by later writes.
type Store struct {
	mu       sync.Mutex // serialises writers
	db       *memdb.MemDB
	order    []string // source precedence, first wins
	sources  map[string]*sourceState
	gen      uint64
	problems Problems
	changed  chan struct{}
	cur      *Snapshot
}

type sourceState struct {
	entities map[string]*Entity // by ref key
	problems Problems
	loaded   bool
}

// NewStore returns an empty store. sources lists the source names in order of
// precedence: when two sources define the same ref, the earlier one wins and
// the conflict is reported.
func NewStore(sources ...string) *Store {
	db, err := memdb.NewMemDB(schema)
	if err != nil {
		panic(err) // the schema is static; an error is a programming error
	}
	s := &Store{db: db, order: sources, sources: map[string]*sourceState{}, changed: make(chan struct{})}
	s.cur = &Snapshot{txn: db.Txn(false)}
	return s
}

// Snapshot returns the current generation.
func (s *Store) Snapshot() *Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// Changed returns a channel that is closed at the next commit.
func (s *Store) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// ReplaceSource replaces everything a source contributed with a new read of
// it. Entities the source rejected this time keep their last good version
// (marked Stale) so that one bad edit does not drop a working route.
func (s *Store) ReplaceSource(name string, p Parsed) *Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.sources[name]
	st := &sourceState{entities: map[string]*Entity{}, loaded: true}
	st.problems = append(st.problems, p.Problems...)
	// Within one source the first definition (by file, then line) wins.
	sorted := append([]*Entity(nil), p.Entities...)
	sort.SliceStable(sorted, func(i, j int) bool {
		a, b := sorted[i].Origin, sorted[j].Origin
		if a.File != b.File {
			return a.File < b.File
		}
		return a.Line < b.Line
	})
	for _, e := range sorted {
		k := e.Ref().Key()
		if prev, dup := st.entities[k]; dup {
			st.problems = append(st.problems, Problem{Severity: SeverityError, Source: name, File: e.Origin.File, Line: e.Origin.Line,
				Entity: e.Ref().String(), Field: "metadata.name",
				Message: "duplicate entity; already defined at " + prev.Origin.String() + ", which is used",
				Fix:     "rename or remove one of the two definitions"})
			continue
		}
		st.entities[k] = e
	}
	for _, r := range p.Rejected {
		k := r.Key()
		if _, ok := st.entities[k]; ok {
			continue
		}
		if old != nil {
			if prev, ok := old.entities[k]; ok {
				c := *prev
				c.Stale = true
				st.entities[k] = &c
				st.problems = append(st.problems, Problem{Severity: SeverityWarning, Source: name, File: prev.Origin.File,
					Entity: r.String(), Message: "the new version is invalid; serving the last good version read from " + prev.Origin.String(),
					Fix: "fix the errors reported for this entity"})
			}
		}
	}
	s.sources[name] = st
	return s.commit()
}

// RemoveSource forgets everything a source contributed (the source was
// removed from the configuration).
func (s *Store) RemoveSource(name string) *Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.sources[name]; !ok {
		return s.cur
	}
	delete(s.sources, name)
	entitiesGauge.DeleteLabelValues(name)
	return s.commit()
}

// commit merges all sources, resolves relations and writes a new generation.
// Caller holds s.mu.
func (s *Store) commit() *Snapshot {
	names := make([]string, 0, len(s.sources))
	for n := range s.sources {
		names = append(names, n)
	}
	rank := func(n string) int {
		for i, o := range s.order {
			if o == n {
				return i
			}
		}
		return len(s.order)
	}
	sort.Slice(names, func(i, j int) bool {
		ri, rj := rank(names[i]), rank(names[j])
		if ri != rj {
			return ri < rj
		}
		return names[i] < names[j]
	})
	var problems Problems
	winners := map[string]*Entity{}
	for _, n := range names {
		st := s.sources[n]
		problems = append(problems, st.problems...)
		for _, k := range sortedEntityKeys(st.entities) {
			e := st.entities[k]
			if w, ok := winners[k]; ok {
				problems = append(problems, Problem{Severity: SeverityError, Source: n, File: e.Origin.File, Line: e.Origin.Line,
					Entity: e.Ref().String(), Message: fmt.Sprintf("also defined by source %q (%s), which takes precedence", w.Origin.Source, w.Origin),
					Fix: "define each entity in one source only, or reorder the sources"})
				continue
			}
			winners[k] = e
		}
	}
	merged := make([]*Entity, 0, len(winners))
	for _, k := range sortedEntityKeys(winners) {
		merged = append(merged, winners[k])
	}
	resolved, keys, relProblems := resolveRelations(merged)
	problems = append(problems, relProblems...)
	closure := groupClosure(resolved)

	// Write only the rows that changed: rewriting every row (and every index
	// entry) of a large catalog cost more than everything else a one-entity
	// change does. Unchanged rows keep their previous (equal) entity value.
	txn := s.db.Txn(true)
	keep := make(map[string]bool, len(resolved))
	for i, e := range resolved {
		k := keys[i]
		keep[k] = true
		old, _ := txn.First(tableEntities, "id", k)
		if old != nil && sameEntity(old.(*row), e, closure[k]) {
			continue
		}
		r := &row{Key: k, Kind: strings.ToLower(e.Kind), Groups: closure[k], RouteClaims: e.RouteClaims(), Source: e.Origin.Source, Entity: e}
		if o := e.RelationTargets(RelOwnedBy); len(o) > 0 {
			r.Owner = o[0]
		}
		if old != nil && reflect.DeepEqual(old.(*row), r) {
			continue
		}
		if err := txn.Insert(tableEntities, r); err != nil {
			txn.Abort()
			panic(err)
		}
	}
	var gone []any
	it, err := txn.Get(tableEntities, "id")
	if err != nil {
		txn.Abort()
		panic(err)
	}
	for obj := it.Next(); obj != nil; obj = it.Next() {
		if !keep[obj.(*row).Key] {
			gone = append(gone, obj)
		}
	}
	for _, obj := range gone {
		if err := txn.Delete(tableEntities, obj); err != nil {
			txn.Abort()
			panic(err)
		}
	}
	txn.Commit()
	s.gen++
	s.problems = problems
	s.cur = &Snapshot{txn: s.db.Txn(false), Generation: s.gen, Problems: problems, Sources: s.sourceNames()}
	close(s.changed)
	s.changed = make(chan struct{})
	s.observe(winners, problems)
	return s.cur
}

// sameEntity reports, cheaply, that a stored row already holds e: made
// from the same parsed entity (a file whose bytes did not change keeps its
// entities), with the same relations and groups. Every other field of a row
// follows from those. false means "compare the rows".
func sameEntity(old *row, e *Entity, groups []string) bool {
	return old.Entity.resolvedFrom != nil && old.Entity.resolvedFrom == e.resolvedFrom &&
		slices.Equal(old.Entity.Relations, e.Relations) && slices.Equal(old.Groups, groups)
}

func (s *Store) observe(winners map[string]*Entity, problems Problems) {
	bySource := map[string]int{}
	for n := range s.sources {
		bySource[n] = 0
	}
	for _, e := range winners {
		bySource[e.Origin.Source]++
	}
	for n, c := range bySource {
		entitiesGauge.WithLabelValues(n).Set(float64(c))
	}
	errs := problems.Errors()
	problemsGauge.WithLabelValues(string(SeverityError)).Set(float64(errs))
	problemsGauge.WithLabelValues(string(SeverityWarning)).Set(float64(len(problems) - errs))
	generationGauge.Set(float64(s.gen))
	lastChange.SetToCurrentTime()
}

func (s *Store) sourceNames() []string {
	var out []string
	for n, st := range s.sources {
		if st.loaded {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

func sortedEntityKeys(m map[string]*Entity) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Snapshot is one immutable generation of the catalog.
type Snapshot struct {
	txn        *memdb.Txn
	Generation uint64
	Problems   Problems
	Sources    []string
}

func (s *Snapshot) rows(index string, args ...any) []*row {
	it, err := s.txn.Get(tableEntities, index, args...)
	if err != nil {
		panic(err) // static schema
	}
	var out []*row
	for o := it.Next(); o != nil; o = it.Next() {
		out = append(out, o.(*row))
	}
	return out
}

func entitiesOf(rs []*row) []*Entity {
	out := make([]*Entity, len(rs))
	for i, r := range rs {
		out[i] = r.Entity
	}
	return out
}

// All returns every entity, ordered by ref key.
func (s *Snapshot) All() []*Entity { return entitiesOf(s.rows("id")) }

// Get returns the entity with the given ref (any case), or nil.
func (s *Snapshot) Get(ref string) *Entity {
	r, err := ParseRef(ref, "", "")
	if err != nil {
		return nil
	}
	o, err := s.txn.First(tableEntities, "id", r.Key())
	if err != nil || o == nil {
		return nil
	}
	return o.(*row).Entity
}

// ByKind returns the entities of a kind, ordered by ref key.
func (s *Snapshot) ByKind(kind string) []*Entity {
	return entitiesOf(s.rows("kind", strings.ToLower(kind)))
}

// OwnedBy returns the entities whose spec.owner is the given ref key.
func (s *Snapshot) OwnedBy(ownerKey string) []*Entity { return entitiesOf(s.rows("owner", ownerKey)) }

// Members returns the users in a group, directly or through a subgroup.
func (s *Snapshot) Members(groupKey string) []*Entity {
	var out []*Entity
	for _, r := range s.rows("member", groupKey) {
		if r.Kind == "user" {
			out = append(out, r.Entity)
		}
	}
	return out
}

// GroupsOf returns, for a user, every group it is in (transitively); for a
// group, itself and its ancestors.
func (s *Snapshot) GroupsOf(key string) []string {
	o, err := s.txn.First(tableEntities, "id", strings.ToLower(key))
	if err != nil || o == nil {
		return nil
	}
	return o.(*row).Groups
}

// ClaimsOf returns the entities that claim a host and prefix.
func (s *Snapshot) ClaimsOf(host, prefix string) []*Entity {
	return entitiesOf(s.rows("route", host+" "+prefix))
}

// Routed returns every entity with route claims, ordered by ref key.
func (s *Snapshot) Routed() []*Entity {
	var out []*Entity
	for _, r := range s.rows("id") {
		if len(r.RouteClaims) > 0 {
			out = append(out, r.Entity)
		}
	}
	return out
}

package extauthz

import "sync"

// RecentDecisions is how many of the latest decisions the audit keeps in
// memory, so that a decision_id from a 403 body can be looked up
// (GET /debug/decisions/{id}, gatehouse explain --decision).
const RecentDecisions = 10000

// recentRing holds the latest records by decision id. The audit's writer
// goroutine adds to it (never Check); the admin listener reads it.
type recentRing struct {
	mu   sync.Mutex
	size int
	ring []AuditRecord // grows to size, then wraps at next
	next int
	byID map[string]int
}

func newRecentRing(size int) *recentRing {
	return &recentRing{size: size, byID: map[string]int{}}
}

func (r *recentRing) add(rec AuditRecord) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.ring) < r.size {
		r.byID[rec.DecisionID] = len(r.ring)
		r.ring = append(r.ring, rec)
		return
	}
	if old := r.ring[r.next].DecisionID; r.byID[old] == r.next {
		delete(r.byID, old)
	}
	r.ring[r.next] = rec
	r.byID[rec.DecisionID] = r.next
	r.next = (r.next + 1) % len(r.ring)
}

func (r *recentRing) get(id string) (AuditRecord, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	i, ok := r.byID[id]
	if !ok {
		return AuditRecord{}, false
	}
	return r.ring[i], true
}

// Decision returns a recent decision by its id (the decision_id of a
// denial's body and of the audit record), if it is among the last
// RecentDecisions this process made.
func (a *Audit) Decision(id string) (AuditRecord, bool) { return a.recent.get(id) }

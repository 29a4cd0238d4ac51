package extauthz

import (
	"bytes"
	"strconv"
	"testing"
)

// The ring keeps the latest decisions by id and forgets the oldest.
func TestRecentRing(t *testing.T) {
	r := newRecentRing(3)
	for i := 1; i <= 5; i++ {
		r.add(AuditRecord{DecisionID: "d" + strconv.Itoa(i), Status: 200 + i})
	}
	for i := 1; i <= 5; i++ {
		rec, ok := r.get("d" + strconv.Itoa(i))
		if want := i > 2; ok != want || (ok && rec.Status != 200+i) {
			t.Errorf("d%d: %v %+v", i, ok, rec)
		}
	}
}

// A recorded decision can be looked up by its id once written.
func TestAuditDecisionByID(t *testing.T) {
	var buf bytes.Buffer
	a := NewAudit(&buf, 16)
	a.Record(AuditRecord{DecisionID: "req-9", Decision: "deny", Status: 403, Reason: "no_matching_rule", Principal: "user:default/bob"})
	a.Close()
	rec, ok := a.Decision("req-9")
	if !ok || rec.Principal != "user:default/bob" || rec.Reason != "no_matching_rule" {
		t.Errorf("got %v %+v", ok, rec)
	}
	if _, ok := a.Decision("nope"); ok {
		t.Error("unknown id found")
	}
}

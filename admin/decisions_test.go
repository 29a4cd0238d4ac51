package admin

import (
	"strings"
	"testing"
)

// GET /debug/decisions/{id} shows a recent decision, or a 404 saying why
// it may be missing.
func TestDecisionsEndpoint(t *testing.T) {
	h := New(Sources{
		Model: func() any { return nil }, Nodes: func() any { return nil }, Problems: func() any { return nil },
		Decision: func(id string) (any, bool) {
			if id == "d1" {
				return map[string]string{"decision_id": "d1", "reason": "no_matching_rule"}, true
			}
			return nil, false
		},
	})
	if code, body, _ := get(t, h, "/debug/decisions/d1"); code != 200 || !strings.Contains(body, `"reason": "no_matching_rule"`) {
		t.Errorf("known id: %d %s", code, body)
	}
	if code, body, _ := get(t, h, "/debug/decisions/d2"); code != 404 || !strings.Contains(body, "not among this replica's recent decisions") {
		t.Errorf("unknown id: %d %s", code, body)
	}
}

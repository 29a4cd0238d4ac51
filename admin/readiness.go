package admin

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
)

// Wait is one thing gatehouse waits for before it is ready, and why.
type Wait struct {
	What   string `json:"what"`
	Reason string `json:"reason"`
}

// Readiness is what /readyz reports: ready when nothing is waited for.
// Waits are set and cleared by name (Wait, Done); checks are asked each
// time (a catalog source that has yielded nothing yet).
type Readiness struct {
	mu     sync.Mutex
	waits  map[string]string
	checks map[string]func() string
}

// NewReadiness returns a Readiness that waits for nothing yet.
func NewReadiness() *Readiness {
	return &Readiness{waits: map[string]string{}, checks: map[string]func() string{}}
}

// Wait records that gatehouse is not ready because of what, and why.
func (r *Readiness) Wait(what, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.waits[what] = reason
}

// Done clears what.
func (r *Readiness) Done(what string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.waits, what)
}

// Check adds a condition asked on every Waiting: f returns why gatehouse
// is not ready, or "".
func (r *Readiness) Check(what string, f func() string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.checks[what] = f
}

// Waiting lists what gatehouse waits for, sorted; empty when ready.
func (r *Readiness) Waiting() []Wait {
	r.mu.Lock()
	out := make([]Wait, 0, len(r.waits)+len(r.checks))
	for what, reason := range r.waits {
		out = append(out, Wait{What: what, Reason: reason})
	}
	checks := make(map[string]func() string, len(r.checks))
	for what, f := range r.checks {
		checks[what] = f
	}
	r.mu.Unlock()
	for what, f := range checks {
		if reason := f(); reason != "" {
			out = append(out, Wait{What: what, Reason: reason})
		}
	}
	slices.SortFunc(out, func(a, b Wait) int { return strings.Compare(a.What, b.What) })
	return out
}

// Ready says whether nothing is waited for.
func (r *Readiness) Ready() bool { return len(r.Waiting()) == 0 }

// serveReadyz answers /readyz: 200 "ready", or 503 with one line per
// reason ("not ready:" first); JSON with ?format=json or Accept:
// application/json ({"ready": false, "waiting": [{"what", "reason"}]}).
func (r *Readiness) serveReadyz(w http.ResponseWriter, req *http.Request) {
	waiting := r.Waiting()
	status := http.StatusOK
	if len(waiting) > 0 {
		status = http.StatusServiceUnavailable
	}
	if req.URL.Query().Get("format") == "json" || strings.Contains(req.Header.Get("Accept"), "application/json") {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(struct {
			Ready   bool   `json:"ready"`
			Waiting []Wait `json:"waiting"`
		}{len(waiting) == 0, waiting})
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	if len(waiting) == 0 {
		_, _ = w.Write([]byte("ready\n"))
		return
	}
	var b strings.Builder
	b.WriteString("not ready:\n")
	for _, wt := range waiting {
		b.WriteString("  " + wt.What + ": " + wt.Reason + "\n")
	}
	_, _ = w.Write([]byte(b.String()))
}

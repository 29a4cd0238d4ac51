package extauthz

import (
	"bufio"
	"encoding/json"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// AuditRecord is one authorization decision. It never holds a token or a
// signature.
type AuditRecord struct {
	Time       time.Time `json:"time"`
	DecisionID string    `json:"decision_id"`
	Principal  string    `json:"principal,omitempty"`
	Kind       string    `json:"principal_kind,omitempty"`
	Groups     []string  `json:"groups,omitempty"`
	ClientID   string    `json:"client_id,omitempty"`
	Issuer     string    `json:"issuer,omitempty"`
	Peer       string    `json:"peer,omitempty"` // mTLS peer component (mesh)
	Source     string    `json:"source_address,omitempty"`
	Method     string    `json:"method"`
	Host       string    `json:"host"`
	Path       string    `json:"path"`
	RouteID    string    `json:"route_id,omitempty"`
	Entity     string    `json:"entity,omitempty"`
	Owner      string    `json:"owner,omitempty"`
	System     string    `json:"system,omitempty"`
	Decision   string    `json:"decision"` // allow or deny
	Status     int       `json:"status"`
	Reason     string    `json:"reason"`
	Rule       string    `json:"matched_rule,omitempty"`
	Cached     bool      `json:"cached,omitempty"`
	Model      string    `json:"model_version,omitempty"`
	LatencyUS  int64     `json:"latency_us"`
}

// Audit writes records as JSON lines from one goroutine behind a bounded
// buffer: Check never waits for the disk. When the buffer is full the record
// is dropped and counted.
type Audit struct {
	ch      chan AuditRecord
	w       *bufio.Writer
	written atomic.Int64
	dropped atomic.Int64
	once    sync.Once
	done    chan struct{}
}

// NewAudit starts the writer. w is flushed whenever the buffer drains and
// on Close.
func NewAudit(w io.Writer, buffer int) *Audit {
	if buffer <= 0 {
		buffer = 4096
	}
	a := &Audit{ch: make(chan AuditRecord, buffer), w: bufio.NewWriterSize(w, 64<<10), done: make(chan struct{})}
	go a.run()
	return a
}

func (a *Audit) run() {
	defer close(a.done)
	enc := json.NewEncoder(a.w)
	for r := range a.ch {
		if err := enc.Encode(&r); err == nil {
			a.written.Add(1)
			auditWritten.Inc()
		} else {
			a.dropped.Add(1)
			auditDropped.Inc()
		}
		if len(a.ch) == 0 {
			_ = a.w.Flush()
		}
	}
	_ = a.w.Flush()
}

// Record queues a record without blocking; it is dropped (and counted) if
// the buffer is full or the audit is closed.
func (a *Audit) Record(r AuditRecord) {
	defer func() {
		if recover() != nil { // closed
			a.dropped.Add(1)
			auditDropped.Inc()
		}
	}()
	select {
	case a.ch <- r:
	default:
		a.dropped.Add(1)
		auditDropped.Inc()
	}
}

// Close writes every queued record and flushes; the caller closes the
// underlying writer.
func (a *Audit) Close() {
	a.once.Do(func() {
		close(a.ch)
		<-a.done
	})
}

// Written and Dropped count records.
func (a *Audit) Written() int64 { return a.written.Load() }
func (a *Audit) Dropped() int64 { return a.dropped.Load() }

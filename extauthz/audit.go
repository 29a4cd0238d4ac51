package extauthz

import (
	"bufio"
	"encoding/json"
	"io"
	"strconv"
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
	Scopes     []string  `json:"scopes,omitempty"` // the token's OAuth scopes
	ClientID   string    `json:"client_id,omitempty"`
	Issuer     string    `json:"issuer,omitempty"`
	Auth       string    `json:"auth,omitempty"` // bearer or oidc-session
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
	// GraphQL: the operation of a GraphQL route's request.
	GraphQL *AuditGraphQL `json:"graphql,omitempty"`
}

// AuditGraphQL is what the audit keeps of a GraphQL request: the
// operation, the document's hash, the mode and the fields refused (at
// most maxDenied), never the document or its variables.
type AuditGraphQL struct {
	OperationType string        `json:"operation_type,omitempty"`
	OperationName string        `json:"operation_name,omitempty"`
	DocumentHash  string        `json:"document_hash,omitempty"`
	Fields        int           `json:"fields,omitempty"`
	FieldNames    []string      `json:"field_names,omitempty"` // the first 32 Type.field asked
	Mode          string        `json:"mode,omitempty"`
	Denied        []DeniedField `json:"denied_fields,omitempty"`
	WouldDeny     bool          `json:"would_deny,omitempty"`
}

func auditGraphQL(g *GraphQLInfo) *AuditGraphQL {
	if g == nil {
		return nil
	}
	return &AuditGraphQL{OperationType: g.OperationType, OperationName: clipStr(g.OperationName, 100), DocumentHash: g.DocumentHash, Fields: g.Fields, FieldNames: g.FieldNames, Mode: g.Mode, Denied: g.Denied, WouldDeny: g.WouldDeny}
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
	recent  *recentRing // the latest records, by decision id
}

// NewAudit starts the writer. w is written in batches (see auditBatch)
// and on Close.
func NewAudit(w io.Writer, buffer int) *Audit {
	if buffer <= 0 {
		buffer = 4096
	}
	a := &Audit{ch: make(chan AuditRecord, buffer), w: bufio.NewWriterSize(w, 64<<10), done: make(chan struct{}), recent: newRecentRing(RecentDecisions)}
	go a.run()
	return a
}

// auditBatch is how long the writer lets records gather after the first
// of a batch before it writes them out: a busy gatehouse then writes (and
// wakes the writer) a few hundred times a second instead of once per
// Check, and a record reaches the file within a few milliseconds.
const auditBatch = 2 * time.Millisecond

func (a *Audit) run() {
	defer close(a.done)
	var line []byte
	write := func(r *AuditRecord) {
		a.recent.add(*r)
		line = appendRecord(line[:0], r)
		if _, err := a.w.Write(line); err == nil {
			a.written.Add(1)
			auditWritten.Inc()
		} else {
			a.dropped.Add(1)
			auditDropped.Inc()
		}
	}
	for r := range a.ch {
		write(&r)
		time.Sleep(auditBatch)
		for more := true; more; {
			select {
			case r, ok := <-a.ch:
				if !ok {
					more = false
					break
				}
				write(&r)
			default:
				more = false
			}
		}
		_ = a.w.Flush()
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

// appendRecord appends r as one JSON line, byte for byte what
// json.Encoder writes for it (the field order and omitempty of
// AuditRecord's tags), without reflection: one record is written per
// Check.
func appendRecord(b []byte, r *AuditRecord) []byte {
	b = append(b, `{"time":"`...)
	b = r.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	str := func(name, v string, omitEmpty bool) {
		if omitEmpty && v == "" {
			return
		}
		b = append(b, ',', '"')
		b = append(b, name...)
		b = append(b, '"', ':')
		b = appendJSONString(b, v)
	}
	str("decision_id", r.DecisionID, false)
	str("principal", r.Principal, true)
	str("principal_kind", r.Kind, true)
	if len(r.Groups) > 0 {
		b = append(b, `,"groups":[`...)
		for i, g := range r.Groups {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, g)
		}
		b = append(b, ']')
	}
	if len(r.Scopes) > 0 {
		b = append(b, `,"scopes":[`...)
		for i, sc := range r.Scopes {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, sc)
		}
		b = append(b, ']')
	}
	str("client_id", r.ClientID, true)
	str("issuer", r.Issuer, true)
	str("auth", r.Auth, true)
	str("peer", r.Peer, true)
	str("source_address", r.Source, true)
	str("method", r.Method, false)
	str("host", r.Host, false)
	str("path", r.Path, false)
	str("route_id", r.RouteID, true)
	str("entity", r.Entity, true)
	str("owner", r.Owner, true)
	str("system", r.System, true)
	str("decision", r.Decision, false)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(r.Status), 10)
	str("reason", r.Reason, false)
	str("matched_rule", r.Rule, true)
	if r.Cached {
		b = append(b, `,"cached":true`...)
	}
	str("model_version", r.Model, true)
	b = append(b, `,"latency_us":`...)
	b = strconv.AppendInt(b, r.LatencyUS, 10)
	if g := r.GraphQL; g != nil {
		b = append(b, `,"graphql":{`...)
		n := len(b)
		str("operation_type", g.OperationType, true)
		str("operation_name", g.OperationName, true)
		str("document_hash", g.DocumentHash, true)
		if g.Fields != 0 {
			b = strconv.AppendInt(append(b, `,"fields":`...), int64(g.Fields), 10)
		}
		if len(g.FieldNames) > 0 {
			b = append(b, `,"field_names":[`...)
			for i, f := range g.FieldNames {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendJSONString(b, f)
			}
			b = append(b, ']')
		}
		str("mode", g.Mode, true)
		if len(g.Denied) > 0 {
			b = append(b, `,"denied_fields":[`...)
			for i, d := range g.Denied {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendJSONString(append(b, `{"field":`...), d.Field)
				b = append(appendJSONString(append(b, `,"rule":`...), d.Rule), '}')
			}
			b = append(b, ']')
		}
		if g.WouldDeny {
			b = append(b, `,"would_deny":true`...)
		}
		if len(b) > n {
			b = append(b[:n], b[n+1:]...) // the first field's comma
		}
		b = append(b, '}')
	}
	return append(b, '}', '\n')
}

// appendJSONString appends s as encoding/json does (HTML-safe): printable
// ASCII other than the characters it escapes is copied; anything else is
// left to encoding/json.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

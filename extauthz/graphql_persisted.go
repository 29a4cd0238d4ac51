package extauthz

import (
	"bytes"
	"container/list"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"strings"
	"sync"

	"github.com/gatehouse-dev/gatehouse/model"
)

// Persisted queries (docs/graphql.md, "Persisted queries"): Apollo's APQ
// protocol. A request may carry extensions.persistedQuery {version: 1,
// sha256Hash} beside its query (the hash must be the text's: the
// document is then remembered) or instead of it (the document
// remembered for the hash is decided; an unknown hash is answered as APQ
// clients expect, so that they send the text). In safelist mode only the
// listed documents pass, by text or by hash.

// GraphQL error codes of persisted queries (Apollo's).
const (
	gqlPQNotFound  = "PERSISTED_QUERY_NOT_FOUND"
	gqlPQNotInList = "PERSISTED_QUERY_NOT_IN_LIST"
)

// reasonPQNotFound: a hash-only request whose document gatehouse does not
// know; answered 200 with APQ's error, never cached (the client sends the
// text next, and the hash-only request after that must find it).
const reasonPQNotFound = "graphql_persisted_query_not_found"

// apqMaxBytes bounds the text an API's APQ store holds, whatever its
// number of documents.
const apqMaxBytes = 16 << 20

// apqStore is one API's APQ documents by hash, least recently used first
// out; safe for concurrent use. It outlives models (a document's hash
// does not depend on the schema; a document no longer valid is refused
// when it is decided).
type apqStore struct {
	mu     sync.Mutex
	max    int
	bytes  int
	order  *list.List // of *apqEntry, most recent first
	byHash map[string]*list.Element
}

type apqEntry struct{ hash, doc string }

func newAPQStore(max int) *apqStore {
	if max <= 0 {
		max = 1
	}
	return &apqStore{max: max, order: list.New(), byHash: map[string]*list.Element{}}
}

// get is the document of hash, or "" (and marks it recently used).
func (s *apqStore) get(hash string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	el := s.byHash[hash]
	if el == nil {
		return "", false
	}
	s.order.MoveToFront(el)
	return el.Value.(*apqEntry).doc, true
}

// put remembers doc under hash (the caller checked that it is doc's),
// dropping the least recently used beyond the store's bounds.
func (s *apqStore) put(hash, doc string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if el := s.byHash[hash]; el != nil {
		s.order.MoveToFront(el)
		return
	}
	s.byHash[hash] = s.order.PushFront(&apqEntry{hash, doc})
	s.bytes += len(doc)
	s.trim()
}

func (s *apqStore) trim() {
	for s.order.Len() > s.max || (s.bytes > apqMaxBytes && s.order.Len() > 1) {
		el := s.order.Back()
		e := el.Value.(*apqEntry)
		s.order.Remove(el)
		delete(s.byHash, e.hash)
		s.bytes -= len(e.doc)
	}
}

func (s *apqStore) resize(max int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if max <= 0 {
		max = 1
	}
	s.max = max
	s.trim()
}

func (s *apqStore) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.order.Len()
}

// persistedStores are the APQ stores of a Check server's GraphQL APIs, by
// API, kept from one model to the next.
type persistedStores struct {
	mu     sync.Mutex
	byName map[string]*apqStore
}

// attachPersisted gives the engine's GraphQL routes the server's APQ
// stores (a new API gets a new one; an API no longer in the model loses
// its own), sized by the model.
func (e *Engine) attachPersisted(ps *persistedStores) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	next := map[string]*apqStore{}
	for _, rp := range e.routes {
		if rp.gql == nil {
			continue
		}
		name := rp.API
		if name == "" {
			name = rp.Entity
		}
		st := next[name]
		if st == nil {
			if st = ps.byName[name]; st != nil {
				st.resize(rp.gql.Persisted.Cache)
			} else {
				st = newAPQStore(rp.gql.Persisted.Cache)
			}
			next[name] = st
		}
		rp.gql.apq = st
	}
	ps.byName = next
}

// persistedExt is what a request's extensions say of a persisted query.
type persistedExt struct {
	present bool   // extensions.persistedQuery given
	hash    string // its sha256Hash: 64 lower-case hex digits
}

// readExtensions reads a request's extensions object strictly: a key
// given twice, or in another case, is refused (a server reading the other
// copy would run a document gatehouse did not decide); persistedQuery, if
// present, is {"version": 1, "sha256Hash": "<64 lower-case hex>"}.
// Other extensions are the server's.
func readExtensions(raw []byte) (persistedExt, string) {
	var pe persistedExt
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return pe, ""
	}
	pq, why := strictMember(raw, "persistedQuery", "extensions")
	if why != "" || pq == nil {
		return pe, why
	}
	pe.present = true
	if string(pq) == "null" {
		return pe, "extensions.persistedQuery is not an object"
	}
	ver, why := strictMember(pq, "version", "extensions.persistedQuery")
	if why != "" {
		return pe, why
	}
	if string(bytes.TrimSpace(ver)) != "1" {
		return pe, "extensions.persistedQuery.version is not 1"
	}
	h, why := strictMember(pq, "sha256Hash", "extensions.persistedQuery")
	if why != "" {
		return pe, why
	}
	var hash string
	if err := json.Unmarshal(h, &hash); err != nil || !isSHA256Hex(hash) {
		return pe, "extensions.persistedQuery.sha256Hash is not a SHA-256 in lower-case hex"
	}
	pe.hash = hash
	return pe, ""
}

// strictMember is the value of key in the JSON object raw (nil when
// absent), refusing a key given twice or spelled in another case.
func strictMember(raw []byte, key, where string) (json.RawMessage, string) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, where + " is not an object"
	}
	var val json.RawMessage
	seen := false
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, where + " does not parse"
		}
		k, _ := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, where + " does not parse"
		}
		if !strings.EqualFold(k, key) {
			continue
		}
		if k != key {
			return nil, where + "." + clipStr(k, 40) + " is not spelled as " + key
		}
		if seen {
			return nil, where + "." + key + " is given twice"
		}
		seen, val = true, v
	}
	if _, err := dec.Token(); err != nil {
		return nil, where + " does not parse"
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, where + " has data after the object"
	}
	return val, ""
}

func isSHA256Hex(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func persistedHash(doc string) string {
	s := sha256.Sum256([]byte(doc))
	return hex.EncodeToString(s[:])
}

// pqOutcome is what the persisted-query rules make of one operation
// request: the document to decide (r.query, filled from the store or
// the list for a hash-only request), the document to remember, or a
// refusal.
type pqOutcome struct {
	remember *model.GraphQLDocument // a document to put in the APQ store once it is valid
	refusal  *gqlRefusal
	status   int
	notFound bool // a hash-only request whose document is unknown (never remembered or cached)
}

// resolvePersisted applies the API's persisted-query mode to r.
func (g *gqlPolicy) resolvePersisted(r *gqlRequest) pqOutcome {
	mode := g.Persisted.Mode
	refuse := func(status int, reason, code, msg string) pqOutcome {
		return pqOutcome{status: status, refusal: &gqlRefusal{reason: reason, code: code, msg: msg}}
	}
	if r.pq.present && r.query != "" && persistedHash(r.query) != r.pq.hash {
		return refuse(400, "graphql_persisted_query", gqlBadRequest, "provided sha does not match query")
	}
	switch {
	case mode == model.PersistedOff && r.query == "" && r.pq.present:
		return refuse(400, "graphql_persisted_query", gqlPersistedQuery, "persisted queries are not supported: send the query text")
	case mode == model.PersistedSafelist:
		hash := r.pq.hash
		if r.query != "" && hash == "" {
			hash = persistedHash(r.query)
		}
		if hash == "" {
			return pqOutcome{} // no query at all: the inspector says so
		}
		doc, ok := g.safelist[hash]
		if !ok {
			return refuse(403, "graphql_not_in_safelist", gqlPQNotInList, "the document is not in the API's list of persisted queries")
		}
		r.query = doc
	case mode == model.PersistedAPQ && r.pq.present && r.query == "":
		if g.apq == nil {
			return pqOutcome{notFound: true}
		}
		doc, ok := g.apq.get(r.pq.hash)
		if !ok {
			return pqOutcome{notFound: true}
		}
		r.query = doc
		return pqOutcome{remember: &model.GraphQLDocument{Hash: r.pq.hash, Document: doc}}
	case mode == model.PersistedAPQ && r.pq.present:
		return pqOutcome{remember: &model.GraphQLDocument{Hash: r.pq.hash, Document: r.query}}
	}
	return pqOutcome{}
}

// pqNotFound is APQ's answer to a hash-only request whose document
// gatehouse does not know: 200 with PersistedQueryNotFound, on which
// Apollo's clients send the text with the hash.
func pqNotFound(info *GraphQLInfo) *Result {
	res := gqlRefuse(info, 200, reasonPQNotFound, gqlPQNotFound, "PersistedQueryNotFound", "")
	res.noCache = true
	return res
}

// rememberPersisted puts the documents of an inspected request in the
// API's APQ store (again on every request: recently used documents stay).
func (g *gqlPolicy) rememberPersisted(docs []model.GraphQLDocument) {
	if g.apq == nil {
		return
	}
	for _, d := range docs {
		g.apq.put(d.Hash, d.Document)
	}
}

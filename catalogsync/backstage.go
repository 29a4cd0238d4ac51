package catalogsync

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"
)

// BackstageSource follows a running Backstage catalog through its REST API.
// Released Backstage has no change feed, so it polls: each poll lists only
// uid and etag of every entity (cursor pages), and fetches the full entities
// that are new or changed (by-refs). All pages of one poll form one
// generation; a poll that fails changes nothing.
type BackstageSource struct {
	Name     string // source name recorded on entities ("backstage")
	BaseURL  string // e.g. https://backstage.example.com
	Token    string // static external-access token; never logged
	Interval time.Duration
	// Filter is Backstage's filter expression, e.g. "kind=component,kind=api"
	// (each value of Filter is sent as one filter= parameter).
	Filter   []string
	PageSize int
	// MaxDeleteFraction: a poll that would delete more than this share of
	// the entities is held until the next poll confirms it.
	MaxDeleteFraction float64
	Client            *http.Client
	Logger            *slog.Logger

	mu     sync.Mutex
	known  map[string]*bsEntity // by uid
	held   map[string]bool      // uids whose deletion waits for confirmation
	status SourceStatus
}

type bsEntity struct {
	etag     string
	ref      Ref
	entity   *Entity // nil when the latest version is invalid
	problems Problems
}

// SourceStatus is what /debug/sources shows about a source.
type SourceStatus struct {
	Name          string    `json:"name"`
	URL           string    `json:"url,omitempty"`
	LastAttempt   time.Time `json:"lastAttempt"`
	LastSuccess   time.Time `json:"lastSuccess"`
	SyncAgeSecs   float64   `json:"syncAgeSeconds"`
	LastError     string    `json:"lastError,omitempty"`
	Entities      int       `json:"entities"`
	HeldDeletions int       `json:"heldDeletions"`
	Polls         int64     `json:"polls"`
	Fetched       int64     `json:"entitiesFetched"`
}

func (b *BackstageSource) defaults() {
	if b.Name == "" {
		b.Name = "backstage"
	}
	if b.Interval <= 0 {
		b.Interval = 30 * time.Second
	}
	if b.PageSize <= 0 {
		b.PageSize = 500
	}
	if b.MaxDeleteFraction <= 0 {
		b.MaxDeleteFraction = 0.5
	}
	if b.Client == nil {
		b.Client = &http.Client{Timeout: 30 * time.Second}
	}
	if b.Logger == nil {
		b.Logger = slog.Default()
	}
	if b.known == nil {
		b.known = map[string]*bsEntity{}
	}
}

// Status returns the source's sync status.
func (b *BackstageSource) Status() SourceStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.status
	st.Name, st.URL = b.Name, b.BaseURL
	if !st.LastSuccess.IsZero() {
		st.SyncAgeSecs = time.Since(st.LastSuccess).Seconds()
	}
	return st
}

// Run polls until ctx is done, with jitter; after a failure it retries with
// exponential backoff (up to 5 minutes) and keeps the last good catalog.
func (b *BackstageSource) Run(ctx context.Context, store *Store) {
	b.defaults()
	failures := 0
	for {
		_, err := b.Sync(ctx, store)
		wait := b.Interval
		if err != nil {
			failures++
			wait = b.Interval * time.Duration(1<<min(failures, 6))
			if wait > 5*time.Minute {
				wait = 5 * time.Minute
			}
			b.Logger.Error("backstage sync failed; serving the last good catalog", "source", b.Name, "error", err, "retry_in", wait)
		} else {
			failures = 0
		}
		wait += time.Duration(rand.Int64N(int64(wait)/5+1)) - wait/10 // ±10% jitter
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// Sync runs one poll; it commits a new generation to the store when
// something changed (or on the first successful poll).
func (b *BackstageSource) Sync(ctx context.Context, store *Store) (bool, error) {
	b.defaults()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.status.LastAttempt = time.Now()
	b.status.Polls++
	changed, err := b.syncLocked(ctx, store)
	if err != nil {
		b.status.LastError = err.Error()
		syncErrors.WithLabelValues(b.Name).Inc()
		return false, err
	}
	b.status.LastError = ""
	b.status.LastSuccess = time.Now()
	lastSync.WithLabelValues(b.Name).SetToCurrentTime()
	return changed, nil
}

type listed struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
		UID       string `json:"uid"`
		Etag      string `json:"etag"`
	} `json:"metadata"`
}

type pageInfo struct {
	NextCursor string `json:"nextCursor"`
}

func (b *BackstageSource) syncLocked(ctx context.Context, store *Store) (bool, error) {
	first := b.status.LastSuccess.IsZero()
	all, bodies, err := b.list(ctx)
	if err != nil {
		return false, err
	}
	fetch, deleted, replaced := b.changes(all)
	if len(fetch) == 0 && len(deleted) == 0 && len(replaced) == 0 && !first {
		b.held = nil
		b.status.HeldDeletions = 0
		return false, nil // the cheap case: nothing changed
	}
	next := make(map[string]*bsEntity, len(b.known)+len(fetch))
	for uid, k := range b.known {
		next[uid] = k
	}
	for _, uid := range replaced {
		delete(next, uid)
	}
	if err := b.fetch(ctx, next, fetch, bodies); err != nil {
		return false, err
	}
	b.deleteOrHold(next, deleted)
	b.known = next
	entities := b.commitGeneration(store, next)
	b.Logger.Info("backstage catalog synced", "source", b.Name, "entities", entities, "fetched", len(fetch), "deleted", len(deleted)-b.status.HeldDeletions, "held", b.status.HeldDeletions)
	return true, nil
}

// list lists uid and etag of everything, page by page. When nothing is
// known yet (the first poll), every entity is needed in full: it lists whole
// entities (bodies, by uid) and the by-refs pass is skipped (a 10k catalog:
// 21 requests, not 122).
func (b *BackstageSource) list(ctx context.Context) ([]listed, map[string]json.RawMessage, error) {
	whole := len(b.known) == 0
	var all []listed
	bodies := map[string]json.RawMessage{} // by uid, when listed whole
	cursor := ""
	for page := 0; ; page++ {
		q := url.Values{}
		q.Set("limit", fmt.Sprint(b.PageSize)) // the cursor does not carry the limit
		if !whole {
			q.Set("fields", "kind,metadata.namespace,metadata.name,metadata.uid,metadata.etag")
		}
		for _, f := range b.Filter {
			q.Add("filter", f)
		}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		path := "/api/catalog/entities/by-query?" + q.Encode()
		var next string
		if whole {
			var resp struct {
				Items    []json.RawMessage `json:"items"`
				PageInfo pageInfo          `json:"pageInfo"`
			}
			if err := b.do(ctx, "GET", path, nil, &resp); err != nil {
				return nil, nil, err
			}
			for _, raw := range resp.Items {
				var it listed
				if err := json.Unmarshal(raw, &it); err != nil {
					return nil, nil, fmt.Errorf("backstage by-query: unexpected item: %w", err)
				}
				all = append(all, it)
				if it.Metadata.UID != "" {
					bodies[it.Metadata.UID] = raw
				}
			}
			next = resp.PageInfo.NextCursor
		} else {
			var resp struct {
				Items    []listed `json:"items"`
				PageInfo pageInfo `json:"pageInfo"`
			}
			if err := b.do(ctx, "GET", path, nil, &resp); err != nil {
				return nil, nil, err
			}
			all = append(all, resp.Items...)
			next = resp.PageInfo.NextCursor
		}
		if next == "" {
			return all, bodies, nil
		}
		if page > 100000 {
			return nil, nil, fmt.Errorf("backstage pagination does not end")
		}
		cursor = next
	}
}

// changes compares a listing with what is known: the entities to fetch (new
// or with another etag), the uids deleted (sorted), and the uids replaced.
// A ref listed under a new uid (the entity was recreated, or Backstage was
// rebuilt with an in-memory database) replaces its old uid: that is not a
// deletion.
func (b *BackstageSource) changes(all []listed) (fetch []listed, deleted, replaced []string) {
	seen := map[string]bool{}
	for _, it := range all {
		if it.Metadata.UID == "" {
			continue
		}
		seen[it.Metadata.UID] = true
		if k := b.known[it.Metadata.UID]; k == nil || k.etag != it.Metadata.Etag {
			fetch = append(fetch, it)
		}
	}
	listedRefs := map[string]bool{}
	for _, it := range all {
		listedRefs[refKey(it)] = true
	}
	for uid, k := range b.known {
		switch {
		case seen[uid]:
		case !k.ref.IsZero() && listedRefs[k.ref.Key()]:
			replaced = append(replaced, uid)
		default:
			deleted = append(deleted, uid)
		}
	}
	sort.Strings(deleted)
	return fetch, deleted, replaced
}

// fetch parses the changed entities into next: from the bodies of a whole
// listing, or fetched in full (by-refs, 100 at a time).
func (b *BackstageSource) fetch(ctx context.Context, next map[string]*bsEntity, changed []listed, bodies map[string]json.RawMessage) error {
	var remote []listed
	for _, it := range changed {
		if raw, ok := bodies[it.Metadata.UID]; ok {
			next[it.Metadata.UID] = b.parse(raw, it)
			b.status.Fetched++
		} else {
			remote = append(remote, it)
		}
	}
	for i := 0; i < len(remote); i += 100 {
		batch := remote[i:min(i+100, len(remote))]
		refs := make([]string, len(batch))
		for j, it := range batch {
			refs[j] = refKey(it)
		}
		var resp struct {
			Items []json.RawMessage `json:"items"`
		}
		body, _ := json.Marshal(map[string]any{"entityRefs": refs})
		if err := b.do(ctx, "POST", "/api/catalog/entities/by-refs", body, &resp); err != nil {
			return err
		}
		if len(resp.Items) != len(batch) {
			return fmt.Errorf("backstage by-refs answered %d items for %d refs", len(resp.Items), len(batch))
		}
		for j, raw := range resp.Items {
			if len(raw) == 0 || string(raw) == "null" {
				continue // deleted between the listing and now: the next poll sees it
			}
			next[batch[j].Metadata.UID] = b.parse(raw, batch[j])
			b.status.Fetched++
		}
	}
	return nil
}

// deleteOrHold removes the deleted uids from next; a mass deletion waits
// for the next poll to confirm it (the same uids deleted again).
func (b *BackstageSource) deleteOrHold(next map[string]*bsEntity, deleted []string) {
	b.status.HeldDeletions = 0
	if len(deleted) == 0 {
		b.held = nil
		return
	}
	if float64(len(deleted)) > b.MaxDeleteFraction*float64(len(b.known)) && !sameSet(b.held, deleted) {
		b.held = map[string]bool{}
		for _, uid := range deleted {
			b.held[uid] = true
		}
		b.status.HeldDeletions = len(deleted)
		b.Logger.Warn("backstage sync would delete a large share of the catalog; holding the deletions until the next poll confirms them",
			"source", b.Name, "deletions", len(deleted), "entities", len(b.known))
		return
	}
	for _, uid := range deleted {
		delete(next, uid)
	}
	b.held = nil
}

// commitGeneration hands the known entities to the store as one generation
// and returns how many are valid.
func (b *BackstageSource) commitGeneration(store *Store, known map[string]*bsEntity) int {
	var p Parsed
	for _, uid := range sortedUIDs(known) {
		k := known[uid]
		p.Problems = append(p.Problems, k.problems...)
		if k.entity != nil {
			p.Entities = append(p.Entities, k.entity)
		} else if !k.ref.IsZero() {
			p.Rejected = append(p.Rejected, k.ref)
		}
	}
	b.status.Entities = len(p.Entities)
	store.ReplaceSource(b.Name, p)
	return len(p.Entities)
}

// parse validates one entity from Backstage with the same rules as files.
func (b *BackstageSource) parse(raw []byte, it listed) *bsEntity {
	k := &bsEntity{etag: it.Metadata.Etag}
	doc, err := jsonNode(raw)
	if err != nil {
		k.problems = Problems{{Severity: SeverityError, Source: b.Name, Message: "entity from Backstage is not valid JSON"}}
		return k
	}
	e, probs := parseDocument(b.Name, "", doc)
	for i := range probs {
		probs[i].Line = 0 // lines of Backstage's JSON mean nothing to a person
	}
	k.problems = probs
	if e == nil {
		return k
	}
	k.ref = e.Ref()
	if _, known := kindByLower[strings.ToLower(e.Kind)]; known && probs.Errors() == 0 {
		e.Origin = Origin{Source: b.Name}
		k.entity = e
	}
	return k
}

func (b *BackstageSource) do(ctx context.Context, method, path string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(b.BaseURL, "/")+path, rd)
	if err != nil {
		return err
	}
	if b.Token != "" {
		req.Header.Set("Authorization", "Bearer "+b.Token)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := b.Client.Do(req)
	if err != nil {
		return fmt.Errorf("backstage %s %s: %w", method, redactQuery(path), err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		hint := ""
		if resp.StatusCode == 401 || resp.StatusCode == 403 {
			hint = " (fix: check catalog.backstage.token: a static token in Backstage's backend.auth.externalAccess)"
		}
		return fmt.Errorf("backstage %s %s: %s: %s%s", method, redactQuery(path), resp.Status, strings.TrimSpace(string(data[:min(len(data), 200)])), hint)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("backstage %s %s: unexpected answer: %w", method, redactQuery(path), err)
	}
	return nil
}

func refKey(it listed) string {
	ns := it.Metadata.Namespace
	if ns == "" {
		ns = DefaultNamespace
	}
	return strings.ToLower(it.Kind + ":" + ns + "/" + it.Metadata.Name)
}

func redactQuery(p string) string {
	if i := strings.IndexByte(p, '?'); i >= 0 {
		return p[:i]
	}
	return p
}

func sameSet(m map[string]bool, xs []string) bool {
	if len(m) != len(xs) {
		return false
	}
	for _, x := range xs {
		if !m[x] {
			return false
		}
	}
	return true
}

func sortedUIDs(m map[string]*bsEntity) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

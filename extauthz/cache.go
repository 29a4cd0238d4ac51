package extauthz

import (
	"sync"
	"time"
)

// decisionCache remembers decisions for a token on a route, so a busy
// client's requests skip signature verification and policy evaluation. It
// belongs to one engine (one model version): a new model starts empty.
// Entries never outlive the token, nor the assertion they carry.
type decisionCache struct {
	max    int
	shards [16]cacheShard
}

type cacheShard struct {
	mu sync.Mutex
	m  map[string]*cached
}

type cached struct {
	result    Result
	subject   Subject
	assertion string
	expires   time.Time
}

func newDecisionCache(max int) *decisionCache {
	c := &decisionCache{max: max}
	for i := range c.shards {
		c.shards[i].m = map[string]*cached{}
	}
	return c
}

func (c *decisionCache) shard(key string) *cacheShard {
	var h uint32 = 2166136261
	for i := 0; i < len(key); i++ {
		h = (h ^ uint32(key[i])) * 16777619
	}
	return &c.shards[h%uint32(len(c.shards))]
}

func (c *decisionCache) get(key string, now time.Time) *cached {
	if c == nil || c.max <= 0 {
		return nil
	}
	s := c.shard(key)
	s.mu.Lock()
	e := s.m[key]
	if e != nil && !now.Before(e.expires) {
		delete(s.m, key)
		e = nil
	}
	s.mu.Unlock()
	return e
}

func (c *decisionCache) put(key string, e *cached) {
	if c == nil || c.max <= 0 {
		return
	}
	s := c.shard(key)
	s.mu.Lock()
	if len(s.m) >= c.max/len(c.shards)+1 {
		// Full: drop this shard's entries rather than grow without bound.
		s.m = map[string]*cached{}
	}
	s.m[key] = e
	s.mu.Unlock()
}

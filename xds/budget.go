package xds

import "sync"

// sendBudget bounds the bytes of large responses that are on their way to
// Envoys at once: a response counts from when it is sent until the
// Envoy's next request of its type (its ACK or NACK), i.e. until the Envoy
// has read it. Without a bound, a fleet that connects at once (a
// control-plane restart) has every full configuration in flight together:
// at 10k components that is ~9 MB per Envoy in TCP buffers, and 1,000
// Envoys exhaust the kernel's TCP memory (connections are then reset).
// With it, Envoys are served in turn (first come, first served), each at
// full speed, so the first are ready sooner too. Istio bounds its pushes
// the same way (PILOT_PUSH_THROTTLE).
//
// A stream waiting for budget does not block: it keeps reading requests
// and is woken when budget is granted to it. One response is always let
// through when nothing is in flight, whatever its size.
type sendBudget struct {
	mu      sync.Mutex
	limit   int64
	used    int64
	waiting []budgetWait
	granted map[budgetKey]int64
}

type budgetKey struct {
	st  *adsStream
	typ string
}

type budgetWait struct {
	budgetKey
	n int64
}

// smallResponse is the size below which responses skip the budget: a
// one-resource change, an ACK-sized update.
const smallResponse = 64 << 10

func newSendBudget(limit int64) *sendBudget {
	return &sendBudget{limit: limit, granted: map[budgetKey]int64{}}
}

// acquire takes n bytes for st's next response of typ, or queues st and
// returns false; st is woken when the bytes are granted to it.
func (b *sendBudget) acquire(st *adsStream, typ string, n int64) bool {
	if b == nil || b.limit <= 0 || n < smallResponse {
		return true
	}
	k := budgetKey{st, typ}
	b.mu.Lock()
	defer b.mu.Unlock()
	if g, ok := b.granted[k]; ok {
		delete(b.granted, k)
		b.used += n - g // the response may have changed size since it queued
		return true
	}
	if len(b.waiting) == 0 && (b.used == 0 || b.used+n <= b.limit) {
		b.used += n
		budgetInFlight.Set(float64(b.used))
		return true
	}
	for i, w := range b.waiting {
		if w.budgetKey == k {
			b.waiting[i].n = n
			return false
		}
	}
	b.waiting = append(b.waiting, budgetWait{k, n})
	budgetWaiting.Set(float64(len(b.waiting)))
	return false
}

// release returns n bytes (a response was read, or its stream closed).
func (b *sendBudget) release(n int64) {
	if b == nil || n == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
	b.grantLocked()
}

// drop forgets st: its grants and its places in the queue.
func (b *sendBudget) drop(st *adsStream) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for k, g := range b.granted {
		if k.st == st {
			delete(b.granted, k)
			b.used -= g
		}
	}
	w := b.waiting[:0]
	for _, x := range b.waiting {
		if x.st != st {
			w = append(w, x)
		}
	}
	clear(b.waiting[len(w):])
	b.waiting = w
	b.grantLocked()
}

// cancel gives back a grant st no longer needs (nothing to send after all).
func (b *sendBudget) cancel(st *adsStream, typ string) {
	if b == nil {
		return
	}
	k := budgetKey{st, typ}
	b.mu.Lock()
	defer b.mu.Unlock()
	if g, ok := b.granted[k]; ok {
		delete(b.granted, k)
		b.used -= g
		b.grantLocked()
	}
}

// grantLocked hands budget to the streams waiting, in order.
func (b *sendBudget) grantLocked() {
	for len(b.waiting) > 0 {
		w := b.waiting[0]
		if b.used != 0 && b.used+w.n > b.limit {
			break
		}
		b.used += w.n
		b.granted[w.budgetKey] = w.n
		b.waiting[0] = budgetWait{}
		b.waiting = b.waiting[1:]
		w.st.wake()
	}
	budgetWaiting.Set(float64(len(b.waiting)))
	budgetInFlight.Set(float64(b.used))
}

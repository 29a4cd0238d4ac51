package extauthz

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	checkSeconds = promauto.NewHistogram(prometheus.HistogramOpts{
		Namespace: "gatehouse", Subsystem: "authz", Name: "check_seconds",
		Help:    "Time to answer one ext_authz Check.",
		Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25},
	})
	decisions = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: "gatehouse", Subsystem: "authz", Name: "decisions_total",
		Help: "Authorization decisions by result (allow, deny) and reason.",
	}, []string{"result", "reason"})
	cacheLookups = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: "gatehouse", Subsystem: "authz", Name: "cache_lookups_total",
		Help: "Decision cache lookups by result (hit, miss).",
	}, []string{"result"})
	auditWritten = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: "gatehouse", Subsystem: "audit", Name: "records_written_total", Help: "Audit records written.",
	})
	auditDropped = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: "gatehouse", Subsystem: "audit", Name: "records_dropped_total", Help: "Audit records dropped (buffer full or closed).",
	})
)

// The counters of every Check, looked up once rather than by label values
// on each Check.
var (
	cacheHits   = cacheLookups.WithLabelValues("hit")
	cacheMisses = cacheLookups.WithLabelValues("miss")
	byDecision  struct {
		sync.RWMutex
		m [2]map[string]prometheus.Counter // allow, deny; by reason
	}
)

func decisionCounter(result, reason string) prometheus.Counter {
	i := 0
	if result != "allow" {
		i = 1
	}
	byDecision.RLock()
	c := byDecision.m[i][reason]
	byDecision.RUnlock()
	if c != nil {
		return c
	}
	c = decisions.WithLabelValues(result, reason)
	byDecision.Lock()
	if byDecision.m[i] == nil {
		byDecision.m[i] = map[string]prometheus.Counter{}
	}
	byDecision.m[i][reason] = c
	byDecision.Unlock()
	return c
}

// exchanges counts token exchanges by outcome: issued, or the OAuth error
// code (a fixed set).
var exchanges = promauto.NewCounterVec(prometheus.CounterOpts{
	Namespace: "gatehouse", Subsystem: "exchange", Name: "requests_total",
	Help: "Token exchange requests by outcome (issued, or the OAuth error code).",
}, []string{"outcome"})

func exchangeCounter(outcome string) prometheus.Counter { return exchanges.WithLabelValues(outcome) }

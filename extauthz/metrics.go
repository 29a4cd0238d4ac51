package extauthz

import (
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

package catalogsync

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	entitiesGauge = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "gatehouse", Subsystem: "catalog", Name: "entities",
		Help: "Entities served, by source.",
	}, []string{"source"})
	problemsGauge = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "gatehouse", Subsystem: "catalog", Name: "problems",
		Help: "Current catalog problems, by severity.",
	}, []string{"severity"})
	generationGauge = promauto.NewGauge(prometheus.GaugeOpts{
		Namespace: "gatehouse", Subsystem: "catalog", Name: "generation",
		Help: "Catalog generation (increments on every change).",
	})
	lastChange = promauto.NewGauge(prometheus.GaugeOpts{
		Namespace: "gatehouse", Subsystem: "catalog", Name: "last_change_timestamp_seconds",
		Help: "Unix time of the last catalog change.",
	})
	lastSync = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "gatehouse", Subsystem: "catalog", Name: "last_sync_timestamp_seconds",
		Help: "Unix time a source was last read successfully (sync age = now - this).",
	}, []string{"source"})
	syncErrors = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: "gatehouse", Subsystem: "catalog", Name: "sync_errors_total",
		Help: "Failed reads of a catalog source (files that cannot be read, ...).",
	}, []string{"source"})
)

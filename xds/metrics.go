package xds

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	pushesTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: "gatehouse", Subsystem: "xds", Name: "pushes_total",
		Help: "xDS responses sent, by node role, protocol (sotw, delta) and resource type.",
	}, []string{"role", "protocol", "type"})
	sentBytes = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: "gatehouse", Subsystem: "xds", Name: "sent_bytes_total",
		Help: "Bytes of xDS responses sent, by protocol (sotw, delta) and resource type.",
	}, []string{"protocol", "type"})
	budgetWaiting = promauto.NewGauge(prometheus.GaugeOpts{
		Namespace: "gatehouse", Subsystem: "xds", Name: "send_budget_waiting",
		Help: "ADS responses waiting for send budget (large responses to Envoys are sent a bounded number of bytes at a time).",
	})
	budgetInFlight = promauto.NewGauge(prometheus.GaugeOpts{
		Namespace: "gatehouse", Subsystem: "xds", Name: "send_budget_in_flight_bytes",
		Help: "Bytes of large ADS responses sent and not yet ACKed or NACKed.",
	})
	streamsGauge = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "gatehouse", Subsystem: "xds", Name: "streams",
		Help: "Open ADS streams, by node role and protocol.",
	}, []string{"role", "protocol"})
	ackSeconds = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "gatehouse", Subsystem: "xds", Name: "ack_seconds",
		Help:    "Time from sending a response to the Envoy's ACK, by resource type.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"type"})
	publishesTotal = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: "gatehouse", Subsystem: "xds", Name: "model_publishes_total",
		Help: "Models published to the connected nodes.",
	})
	nacksTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: "gatehouse", Subsystem: "xds", Name: "nacks_total",
		Help: "Configurations rejected by Envoy, by node role and resource type.",
	}, []string{"role", "type"})
	certsIssued = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: "gatehouse", Subsystem: "mesh", Name: "certificates_issued_total",
		Help: "Workload certificates issued to sidecars (first ones and renewals).",
	})
	certRenewals = promauto.NewCounter(prometheus.CounterOpts{
		Namespace: "gatehouse", Subsystem: "mesh", Name: "certificate_renewals_total",
		Help: "Sidecar certificates renewed at half their lifetime.",
	})
)

func shortType(typeURL string) string {
	return typeURL[strings.LastIndex(typeURL, ".")+1:]
}

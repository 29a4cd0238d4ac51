package xds

import (
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	pushesTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: "gatehouse", Subsystem: "xds", Name: "pushes_total",
		Help: "xDS responses sent, by node role, protocol (sotw, delta) and resource type.",
	}, []string{"role", "protocol", "type"})
	nacksTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: "gatehouse", Subsystem: "xds", Name: "nacks_total",
		Help: "Configurations rejected by Envoy, by node role and resource type.",
	}, []string{"role", "type"})
)

func shortType(typeURL string) string {
	return typeURL[strings.LastIndex(typeURL, ".")+1:]
}

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }

package translate

import (
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
)

// Every replica is an endpoint of the ext_authz cluster, health-checked
// over gRPC and ejected on connection failures; a name is STRICT_DNS.
func TestAuthzClusterListsEveryReplica(t *testing.T) {
	opts := DefaultOptions()
	opts.AuthzAddress = "127.0.0.1:18001, 127.0.0.2:18001"
	c, err := authzCluster(opts)
	if err != nil {
		t.Fatal(err)
	}
	eps := c.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()
	if len(eps) != 2 || eps[1].GetEndpoint().GetAddress().GetSocketAddress().GetAddress() != "127.0.0.2" || c.GetType() != clusterv3.Cluster_STATIC {
		t.Fatalf("endpoints %v, type %s", eps, c.GetType())
	}
	if len(c.HealthChecks) != 1 || c.HealthChecks[0].GetGrpcHealthCheck() == nil || c.OutlierDetection == nil {
		t.Errorf("no gRPC health check or outlier detection: %v %v", c.HealthChecks, c.OutlierDetection)
	}
	opts.AuthzAddress = "gatehouse-authz.gatehouse.svc:18001"
	if c, err = authzCluster(opts); err != nil || c.GetType() != clusterv3.Cluster_STRICT_DNS {
		t.Errorf("a name: %v, %v", c.GetType(), err)
	}
	opts.AuthzAddress = "127.0.0.1:18001,nope"
	if _, err := authzCluster(opts); err == nil {
		t.Error("a bad second address was accepted")
	}
	if th := c.GetCircuitBreakers().GetThresholds(); len(th) != 1 || th[0].GetMaxRetries().GetValue() < 1024 {
		t.Errorf("Envoy's default of 3 concurrent retries refuses retries when a replica goes away: %v", th)
	}
	p := checkRetryPolicy(500 * time.Millisecond)
	if p.GetRetryOn() == "" || p.GetRetryHostPredicate()[0].GetName() != "envoy.retry_host_predicates.previous_hosts" {
		t.Errorf("Checks are not retried on another replica: %v", p)
	}
	// Envoy uses max_interval as the per-try timeout: shorter than the
	// Check's timeout, a slow Check would be decided twice.
	if got := p.GetRetryBackOff().GetMaxInterval().AsDuration(); got != 500*time.Millisecond {
		t.Errorf("max_interval (Envoy's per-try timeout) %s, want the Check timeout 500ms", got)
	}
}

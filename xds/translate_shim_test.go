package xds

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"

	"github.com/gatehouse-dev/gatehouse/model"
	"github.com/gatehouse-dev/gatehouse/xds/translate"
)

// meshCluster is the translator's, for the tests of this package written
// when the translator lived here.
func meshCluster(svc *model.MeshService, opts Options) (*clusterv3.Cluster, error) {
	return translate.MeshCluster(svc, opts)
}

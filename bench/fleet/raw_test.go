package main

import (
	"testing"

	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
)

// The simulated Envoys read what protobuf reads.
func TestParseResponse(t *testing.T) {
	c1, _ := anypb.New(&clusterv3.Cluster{Name: "a", AltStatName: "x"})
	c2, _ := anypb.New(&clusterv3.Cluster{Name: "b"})
	b, _ := proto.Marshal(&discoverygrpc.DiscoveryResponse{VersionInfo: "v1", TypeUrl: resourcev3.ClusterType, Nonce: "3", Resources: []*anypb.Any{c1, c2}})
	r, err := parseResponse(b, false)
	if err != nil {
		t.Fatal(err)
	}
	if r.version != "v1" || r.typeURL != resourcev3.ClusterType || r.nonce != "3" || len(r.resources) != 2 ||
		r.resources[0].name != "a" || string(r.resources[0].value) != string(c1.Value) || r.resources[1].name != "b" {
		t.Fatalf("SotW: %+v", r)
	}
	b, _ = proto.Marshal(&discoverygrpc.DeltaDiscoveryResponse{SystemVersionInfo: "v2", TypeUrl: resourcev3.ClusterType, Nonce: "4",
		Resources:        []*discoverygrpc.Resource{{Name: "a", Version: "h1", Resource: c1}},
		RemovedResources: []string{"b", "c"}})
	r, err = parseResponse(b, true)
	if err != nil {
		t.Fatal(err)
	}
	if r.version != "v2" || r.nonce != "4" || len(r.resources) != 1 || r.resources[0].name != "a" || r.resources[0].version != "h1" ||
		string(r.resources[0].value) != string(c1.Value) || len(r.removed) != 2 || r.removed[1] != "c" {
		t.Fatalf("delta: %+v", r)
	}
	if _, err := parseResponse([]byte{0x12, 0x05, 0x01}, true); err == nil {
		t.Fatal("a truncated message was read")
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"gopkg.in/yaml.v3"

	cs "github.com/gatehouse-dev/gatehouse/catalogsync"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/examples"
	"github.com/gatehouse-dev/gatehouse/xds"
)

// runTranslateCmd runs `gatehouse translate args...` and returns stdout.
func runTranslateCmd(t *testing.T, args ...string) []byte {
	t.Helper()
	cmd := translateCmd()
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	if err := cmd.Execute(); err != nil {
		t.Fatalf("gatehouse translate %v: %v\n%s", args, err, errOut.String())
	}
	return out.Bytes()
}

// `gatehouse translate` prints what a connected Envoy receives: the example
// catalog (from its files and as built into gatehouse), translated offline,
// equals the clusters, listeners and routes the ADS server sends an edge
// of the same configuration.
func TestTranslateEqualsWhatEnvoyReceives(t *testing.T) {
	embedded := runTranslateCmd(t, "--output", "json")
	files := runTranslateCmd(t, "--output", "json", "--catalog", repoFile(t, "examples/catalog/catalog-info.yaml"))
	if !bytes.Equal(embedded, files) {
		t.Fatal("the embedded example catalog and examples/catalog translate differently")
	}
	var printed map[string][]json.RawMessage
	if err := json.Unmarshal(embedded, &printed); err != nil {
		t.Fatal(err)
	}
	if _, ok := printed["secrets"]; ok {
		t.Error("an edge names no SDS secrets, but translate printed some")
	}

	received := receiveFromADS(t)
	kinds := map[string]struct {
		typeURL string
		msg     func() proto.Message
	}{
		"clusters":  {resourcev3.ClusterType, func() proto.Message { return &clusterv3.Cluster{} }},
		"listeners": {resourcev3.ListenerType, func() proto.Message { return &listenerv3.Listener{} }},
		"routes":    {resourcev3.RouteType, func() proto.Message { return &routev3.RouteConfiguration{} }},
	}
	for kind, k := range kinds {
		got, want := printed[kind], received[k.typeURL]
		if len(got) != len(want) || len(got) == 0 {
			t.Fatalf("%s: translate printed %d, Envoy received %d", kind, len(got), len(want))
		}
		for i := range got {
			m := k.msg()
			if err := protojson.Unmarshal(got[i], m); err != nil {
				t.Fatalf("%s[%d]: %v", kind, i, err)
			}
			if !proto.Equal(m, want[i]) {
				t.Errorf("%s[%d] differs:\nprinted:  %s\nreceived: %s", kind, i, m, want[i])
			}
		}
	}
}

// `gatehouse translate` prints a golden case's files: the mesh-egress
// case's catalog, translated for its sidecar with the mesh settings serve
// would use, is its out.{listeners,routes,clusters,secrets}.yaml under
// "# <kind>" lines.
func TestTranslatePrintsTheGoldens(t *testing.T) {
	dir := repoFile(t, "xds/testdata")
	raw, err := os.ReadFile(filepath.Join(dir, "mesh-egress.in.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var in struct {
		Catalog string `yaml:"catalog"`
	}
	if err := yaml.Unmarshal(raw, &in); err != nil {
		t.Fatal(err)
	}
	catalog := filepath.Join(t.TempDir(), "catalog-info.yaml")
	if err := os.WriteFile(catalog, []byte(in.Catalog), 0o644); err != nil {
		t.Fatal(err)
	}
	got := runTranslateCmd(t, "--catalog", catalog, "--role", "sidecar", "--component", "component:default/checkout",
		"--app-port", "8080", "--trust-domain", "example.test")
	var want strings.Builder
	for _, kind := range []string{"listeners", "routes", "clusters", "secrets"} {
		b, err := os.ReadFile(filepath.Join(dir, "mesh-egress.out."+kind+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		want.WriteString("# " + kind + "\n")
		want.Write(b)
	}
	if string(got) != want.String() {
		t.Fatalf("gatehouse translate differs from the mesh-egress goldens:\n%s", got)
	}
}

// receiveFromADS serves the example catalog from the real ADS server, with
// the default configuration translate used, and returns what an edge
// receives, by type URL.
func receiveFromADS(t *testing.T) map[string][]proto.Message {
	t.Helper()
	cfg := config.Defaults()
	opts := xdsOptions(cfg)
	opts.AuthzAddress = cfg.Authz.Listen
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := xds.NewServer(ctx, opts, nil)
	m, _, _ := compileCatalog(&cs.FileSource{Name: "embedded", FS: examples.DefaultCatalog, Paths: []string{examples.DefaultCatalogRoot}})
	srv.SetModel(m)
	g := grpc.NewServer(xds.GRPCServerOptions()...)
	srv.Register(g)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(l) }()
	defer g.Stop()
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sctx, stop := context.WithTimeout(ctx, 10*time.Second)
	defer stop()
	stream, err := discoverygrpc.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(sctx)
	if err != nil {
		t.Fatal(err)
	}
	md, _ := structpb.NewStruct(map[string]any{"role": xds.RoleEdge})
	reqs := []*discoverygrpc.DiscoveryRequest{
		{Node: &core.Node{Id: "edge-translate-test", Metadata: md}, TypeUrl: resourcev3.ClusterType},
		{TypeUrl: resourcev3.ListenerType},
		{TypeUrl: resourcev3.RouteType, ResourceNames: []string{xds.EdgeRouteConfigName}},
	}
	for _, r := range reqs {
		if err := stream.Send(r); err != nil {
			t.Fatal(err)
		}
	}
	out := map[string][]proto.Message{}
	for len(out) < len(reqs) {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("after %d of %d types: %v", len(out), len(reqs), err)
		}
		for _, a := range resp.GetResources() {
			msg, err := a.UnmarshalNew()
			if err != nil {
				t.Fatal(err)
			}
			out[resp.GetTypeUrl()] = append(out[resp.GetTypeUrl()], msg)
		}
	}
	return out
}

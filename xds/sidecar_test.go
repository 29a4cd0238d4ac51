package xds

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/proto"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/gatehouse-dev/gatehouse/internal/testcatalog"
	"github.com/gatehouse-dev/gatehouse/meshca"
	"github.com/gatehouse-dev/gatehouse/model"
)

const testTrustDomain = "example.test"

// meshCatalog: a consumes b's API and depends on d; then n components that
// have nothing to do with a (each in the mesh and at the edge, each with an
// API some other of them consumes, half of them depending on b).
func meshCatalog(n int) string {
	var b strings.Builder
	b.WriteString(`apiVersion: backstage.io/v1alpha1
kind: Group
metadata: {name: team}
spec: {type: team, children: []}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: a
  annotations: {gatehouse.dev/mesh-address: "a.svc:15006"}
spec: {type: service, lifecycle: production, owner: team, consumesApis: [b-api], dependsOn: [component:d]}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: b
  annotations: {gatehouse.dev/mesh-address: "b.svc:15006"}
spec: {type: service, lifecycle: production, owner: team, providesApis: [b-api]}
---
apiVersion: backstage.io/v1alpha1
kind: API
metadata:
  name: b-api
  annotations: {gatehouse.dev/path-prefix: /b/v1}
spec: {type: openapi, lifecycle: production, owner: team, definition: x}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: d
  annotations: {gatehouse.dev/mesh-address: "10.0.0.4:15006"}
spec: {type: service, lifecycle: production, owner: team}
`)
	for i := 0; i < n; i++ {
		deps := "[]"
		if i%2 == 0 {
			deps = "[component:b]"
		}
		fmt.Fprintf(&b, `---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: u%d
  annotations:
    gatehouse.dev/mesh-address: "u%d.svc:15006"
    gatehouse.dev/upstream: "http://10.1.%d.%d:8080"
spec: {type: service, lifecycle: production, owner: team, providesApis: [u%d-api], consumesApis: [u%d-api], dependsOn: %s}
---
apiVersion: backstage.io/v1alpha1
kind: API
metadata:
  name: u%d-api
  annotations: {gatehouse.dev/path-prefix: /u%d/v1}
spec: {type: openapi, lifecycle: production, owner: team, definition: x}
`, i, i, i/200, i%200+1, i, (i+1)%n, deps, i, i)
	}
	return b.String()
}

func meshOptions(ttl time.Duration) Options {
	o := DefaultOptions()
	o.TrustDomain, o.MeshCertTTL = testTrustDomain, ttl
	return o
}

func marshalAll(t *testing.T, items []types.Resource) [][]byte {
	t.Helper()
	var out [][]byte
	for _, it := range items {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(it)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// A sidecar's configuration is a function of its component and what it
// declares, not of the catalog: the same component in a catalog of 5 and of
// 500 unrelated components gets the same resources, byte for byte (so a
// change elsewhere in the catalog pushes nothing to it, and a big catalog
// does not make every sidecar big).
func TestSidecarConfigIndependentOfCatalog(t *testing.T) {
	small, big := testcatalog.Must(t, meshCatalog(5)), testcatalog.Must(t, meshCatalog(500))
	if len(big.Mesh) != 503 || small.Version == big.Version {
		t.Fatalf("test catalogs: %d mesh components, versions %s %s", len(big.Mesh), small.Version, big.Version)
	}
	n := Node{ID: "a-1", Role: RoleSidecar, Sidecar: &Sidecar{Component: "component:default/a", AppPort: 8080, InboundPort: 15006, OutboundPort: 15001}}
	opts := meshOptions(time.Hour)
	rs, err := Translate(small, n, opts)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := Translate(big, n, opts)
	if err != nil {
		t.Fatal(err)
	}
	// What a's sidecar gets: ext_authz, its application, b and d.
	var names []string
	for _, c := range rs.Clusters {
		names = append(names, cachev3.GetResourceName(c))
	}
	if want := "gatehouse_ext_authz sidecar_local_app mesh|component:default/b mesh|component:default/d"; strings.Join(names, " ") != want {
		t.Errorf("clusters %v; want %s", names, want)
	}
	for kind, pair := range map[string][2][]types.Resource{
		"listeners": {rs.Listeners, rb.Listeners}, "routes": {rs.Routes, rb.Routes}, "clusters": {rs.Clusters, rb.Clusters},
	} {
		a, b := marshalAll(t, pair[0]), marshalAll(t, pair[1])
		if len(a) != len(b) {
			t.Errorf("%s: %d resources with 5 unrelated components, %d with 500", kind, len(a), len(b))
			continue
		}
		for i := range a {
			if string(a[i]) != string(b[i]) {
				ya, _ := ToYAML(pair[0][i].(proto.Message))
				yb, _ := ToYAML(pair[1][i].(proto.Message))
				t.Errorf("%s %s differs between a catalog of 5 and of 500 unrelated components:\n%s", kind, cachev3.GetResourceName(pair[0][i]), lineDiff(string(ya), string(yb)))
			}
		}
	}
}

func lineDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			out = append(out, "  5:   "+x, "  500: "+y)
		}
		if len(out) > 10 {
			break
		}
	}
	return strings.Join(out, "\n")
}

// The SAN a mesh cluster pins is exactly the ID the CA puts in the
// provider's certificates, and Check maps it back to the component.
func TestSpiffeIDMatchesCA(t *testing.T) {
	for _, comp := range []string{"component:default/orders", "component:shop/orders-v2", "component:a.b/c_d"} {
		want, err := meshca.SPIFFEID(testTrustDomain, comp)
		if err != nil {
			t.Fatal(err)
		}
		c, err := meshCluster(&model.MeshService{Component: comp, Address: model.Endpoint{Host: "127.0.0.1", Port: 15006}, Discovery: model.DiscoveryStatic}, Options{TrustDomain: testTrustDomain})
		if err != nil {
			t.Fatal(err)
		}
		var utc tlsv3.UpstreamTlsContext
		if err := c.GetTransportSocket().GetTypedConfig().UnmarshalTo(&utc); err != nil {
			t.Fatal(err)
		}
		sans := utc.GetCommonTlsContext().GetCombinedValidationContext().GetDefaultValidationContext().GetMatchTypedSubjectAltNames()
		if len(sans) != 1 || sans[0].GetMatcher().GetExact() != want {
			t.Errorf("%s: cluster pins %v, certificate carries %s", comp, sans, want)
		}
		if back := meshca.ComponentOf(testTrustDomain, want); back != comp {
			t.Errorf("%s: ComponentOf gives %s", comp, back)
		}
	}
}

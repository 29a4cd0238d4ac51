package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/gatehouse-dev/gatehouse/bench/catgen"
	cs "github.com/gatehouse-dev/gatehouse/catalogsync"
	"github.com/gatehouse-dev/gatehouse/model"
	"github.com/gatehouse-dev/gatehouse/model/compile"
)

// The benchmark's own entities, the same in every catalog size: the route
// under test is bench-orders, owned by bench-owners. bench-alice is allowed
// by its second access rule (GET under /bench-orders/items/), after the
// owner check and the first rule fail; bench-bob matches nothing (403).
// So an allow exercises token verification, group membership and a
// path/method rule.
const benchYAML = `apiVersion: backstage.io/v1alpha1
kind: Group
metadata: {name: bench-org}
spec: {type: department, children: []}
---
apiVersion: backstage.io/v1alpha1
kind: Group
metadata: {name: bench-owners}
spec: {type: team, parent: bench-org, children: []}
---
apiVersion: backstage.io/v1alpha1
kind: Group
metadata: {name: bench-readers}
spec: {type: team, parent: bench-org, children: []}
---
apiVersion: backstage.io/v1alpha1
kind: Group
metadata: {name: bench-outsiders}
spec: {type: team, parent: bench-org, children: []}
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata: {name: bench-alice}
spec: {profile: {email: bench-alice@example.com}, memberOf: [bench-readers]}
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata: {name: bench-bob}
spec: {profile: {email: bench-bob@example.com}, memberOf: [bench-outsiders]}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: bench-orders
  annotations:
    gatehouse.dev/upstream: http://127.0.0.1:9
    gatehouse.dev/access: |
      - allow: [group:default/bench-owners]
        methods: [POST, DELETE]
        paths: ["/bench-orders/admin/**"]
      - allow: [group:default/bench-readers]
        methods: [GET, HEAD]
        paths: ["/bench-orders/items/**"]
spec: {type: service, lifecycle: production, owner: bench-owners}
`

const (
	benchAlice  = "user:default/bench-alice"
	benchBob    = "user:default/bench-bob"
	benchEntity = "component:default/bench-orders"
	benchPath   = "/bench-orders/items/42"
)

// benchCatalog is a catalog on disk and its compiled model.
type benchCatalog struct {
	name     string // "small" or "10k"
	dir      string
	entities int
	model    *model.Model
	routeID  string // the route of bench-orders
}

// writeCatalog writes the benchmark entities (and extra documents) and, when components > 0, a
// catgen catalog of that many components (each with an API, ~3.1 entities
// per component) into dir, then compiles it as gatehouse would.
func writeCatalog(name, dir string, components int, extra ...string) (*benchCatalog, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	yaml := benchYAML
	for _, e := range extra {
		yaml += "---\n" + e
	}
	if err := os.WriteFile(filepath.Join(dir, "bench.yaml"), []byte(yaml), 0o644); err != nil {
		return nil, err
	}
	if components > 0 {
		if _, err := catgen.New(catgen.Options{Components: components}).WriteDir(dir); err != nil {
			return nil, err
		}
	}
	parsed, _ := (&cs.FileSource{Name: "files", Paths: []string{dir}}).Load()
	snap := cs.NewStore("files").ReplaceSource("files", parsed)
	m, ps := compile.Compile(snap)
	ps = append(append(cs.Problems(nil), snap.Problems...), ps...)
	if ps.Errors() > 0 {
		return nil, fmt.Errorf("catalog %s: %d errors, first: %v", name, ps.Errors(), ps[0])
	}
	c := &benchCatalog{name: name, dir: dir, entities: len(parsed.Entities), model: m}
	for _, p := range m.Policies {
		if p.Entity == benchEntity && p.API == "" {
			c.routeID = p.RouteID
		}
	}
	if c.routeID == "" {
		return nil, fmt.Errorf("catalog %s: no route for %s", name, benchEntity)
	}
	return c, nil
}

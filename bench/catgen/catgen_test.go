package catgen

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/testcatalog"
	"github.com/gatehouse-dev/gatehouse/model"
)

func count(m *model.Model) (routes int) {
	for _, vh := range m.VirtualHosts {
		routes += len(vh.Routes)
	}
	return routes
}

func TestGenerateValidAndDeterministic(t *testing.T) {
	o := Options{Components: 300, Seed: 7, ShardSize: 50}
	a, b := Generate(o), Generate(o)
	if !bytes.Equal(a, b) {
		t.Fatal("same seed, different output")
	}
	if bytes.Equal(a, Generate(Options{Components: 300, Seed: 8})) {
		t.Fatal("different seeds, same output")
	}
	c := New(o)
	dir := t.TempDir()
	wrote, err := c.WriteDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(wrote) != 7 { // org.yaml + 6 shards
		t.Fatalf("wrote %v", wrote)
	}
	m, ps := testcatalog.CompileFiles(dir)
	if len(ps) != 0 {
		t.Fatalf("problems: %v", ps)
	}
	if got := count(m); got != c.Routes() || len(m.Clusters) != c.Clusters() {
		t.Fatalf("routes %d clusters %d, want %d %d", got, len(m.Clusters), c.Routes(), c.Clusters())
	}
	if len(m.Directory.Users) != c.Options().Users || len(m.Directory.Groups) != c.Options().Groups {
		t.Fatalf("directory %d users %d groups", len(m.Directory.Users), len(m.Directory.Groups))
	}
	// The single stream holds the same entities as the files.
	single := filepath.Join(t.TempDir(), "all.yaml")
	if err := os.WriteFile(single, c.YAML(), 0o644); err != nil {
		t.Fatal(err)
	}
	m2, ps := testcatalog.CompileFiles(single)
	if len(ps) != 0 || m2.Version != m.Version {
		t.Fatalf("single file: version %s vs %s, problems %v", m2.Version, m.Version, ps)
	}
}

func TestMutations(t *testing.T) {
	c := New(Options{Components: 200, ShardSize: 50})
	dir := t.TempDir()
	if _, err := c.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	base, _ := testcatalog.CompileFiles(dir)
	step := func(name string, mutate func(), wantFiles []string) *model.Model {
		t.Helper()
		mutate()
		wrote, err := c.WriteDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(wrote) != len(wantFiles) {
			t.Fatalf("%s: wrote %v, want %v", name, wrote, wantFiles)
		}
		for i := range wrote {
			if wrote[i] != wantFiles[i] {
				t.Fatalf("%s: wrote %v, want %v", name, wrote, wantFiles)
			}
		}
		m, ps := testcatalog.CompileFiles(dir)
		if len(ps) != 0 {
			t.Fatalf("%s: problems %v", name, ps)
		}
		if m.Version == base.Version {
			t.Fatalf("%s: version unchanged", name)
		}
		return m
	}
	prev := base
	m := step("route", func() { c.TouchRoute(60) }, []string{c.ShardOf(60)})
	if !equalClusters(prev, m) || equalRoutes(prev, m) {
		t.Fatal("TouchRoute must change a route and no cluster")
	}
	prev = m
	m = step("upstream", func() { c.TouchUpstream(61) }, []string{c.ShardOf(61)})
	if equalClusters(prev, m) || !equalRoutes(prev, m) {
		t.Fatal("TouchUpstream must change a cluster and no route")
	}
	prev = m
	m = step("user", func() { c.MoveUser(5) }, []string{"org.yaml"})
	if !equalClusters(prev, m) || !equalRoutes(prev, m) {
		t.Fatal("MoveUser must change neither routes nor clusters")
	}
	prev = m
	var idx []int
	m = step("10%", func() { idx = c.TouchFraction(0.1) }, []string{"components-0000.yaml"})
	if len(idx) != 20 {
		t.Fatalf("TouchFraction(0.1) of 200 changed %d", len(idx))
	}
	diff := 0
	for i := range m.Clusters {
		if m.Clusters[i].Endpoints[0] != prev.Clusters[i].Endpoints[0] {
			diff++
		}
	}
	if diff != 20 {
		t.Fatalf("%d clusters changed, want 20", diff)
	}
}

func equalClusters(a, b *model.Model) bool {
	if len(a.Clusters) != len(b.Clusters) {
		return false
	}
	for i := range a.Clusters {
		if a.Clusters[i].Endpoints[0] != b.Clusters[i].Endpoints[0] {
			return false
		}
	}
	return true
}

func equalRoutes(a, b *model.Model) bool {
	if len(a.VirtualHosts) != len(b.VirtualHosts) {
		return false
	}
	for i := range a.VirtualHosts {
		ra, rb := a.VirtualHosts[i].Routes, b.VirtualHosts[i].Routes
		if len(ra) != len(rb) {
			return false
		}
		for j := range ra {
			if ra[j] != rb[j] {
				return false
			}
		}
	}
	return true
}

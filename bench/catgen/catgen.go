// Package catgen generates synthetic Backstage catalogs for gatehouse
// benchmarks: routed Components (with owner groups, static 127.0.0.1
// upstreams, path prefixes, provided and consumed APIs, some access rules,
// public paths and own hosts), a tree of Groups and Users that are members of
// them. Output is deterministic for a seed, and valid for gatehouse (no
// errors or warnings from `gatehouse validate`).
//
// A Catalog can be mutated in place to measure how a change propagates:
// TouchRoute (one route changes), TouchUpstream (one cluster changes),
// MoveUser (only a group membership changes, no route or cluster) and
// TouchFraction (a share of the components change their upstream).
package catgen

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Options of a generated catalog. Zero values get defaults (see Defaults).
type Options struct {
	Components       int   // routed Components (default 1000)
	APIsPerComponent int   // APIs each Component provides, each with its own route (default 1; -1 for none)
	Groups           int   // Groups, in a tree under one root (default Components/10, at least 1)
	Users            int   // Users, each a member of one or two groups (default Components)
	Seed             int64 // seed for everything random (default 1)
	// ShardSize is how many Components go in one file of Files/WriteDir
	// (default 100), so a one-entity change rewrites one small file.
	ShardSize int
}

// Defaults fills in zero fields.
func (o Options) Defaults() Options {
	if o.Components <= 0 {
		o.Components = 1000
	}
	if o.APIsPerComponent == 0 {
		o.APIsPerComponent = 1
	}
	if o.APIsPerComponent < 0 {
		o.APIsPerComponent = 0
	}
	if o.Groups <= 0 {
		o.Groups = max(1, o.Components/10)
	}
	if o.Users <= 0 {
		o.Users = o.Components
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.ShardSize <= 0 {
		o.ShardSize = 100
	}
	return o
}

type component struct {
	name     string
	owner    int // group index
	port     int
	timeout  int // seconds; 0 = annotation absent (default)
	host     bool
	public   bool
	access   int // group index allowed GET by an access rule; -1 = none
	consumes []int
}

type user struct {
	name   string
	groups []int
}

// Catalog is a generated catalog that can be rendered and mutated.
type Catalog struct {
	opts   Options
	rng    *rand.Rand
	comps  []component
	users  []user
	groups []string
	gen    int // mutation counter, for fresh values
	// frac is the rotating start of TouchFraction.
	frac int
	// written holds the hash of every file last written by WriteDir.
	written map[string][sha256.Size]byte
}

// New generates a catalog.
func New(opts Options) *Catalog {
	o := opts.Defaults()
	c := &Catalog{opts: o, rng: rand.New(rand.NewSource(o.Seed))}
	for g := 0; g < o.Groups; g++ {
		c.groups = append(c.groups, fmt.Sprintf("team-%04d", g))
	}
	for i := 0; i < o.Components; i++ {
		comp := component{
			name:   fmt.Sprintf("svc-%05d", i),
			owner:  c.rng.Intn(o.Groups),
			port:   10000 + c.rng.Intn(50000),
			host:   i%50 == 7,
			public: i%20 == 3,
			access: -1,
		}
		if i%10 == 5 {
			comp.access = c.rng.Intn(o.Groups)
		}
		if i%4 == 0 {
			comp.timeout = 5 + c.rng.Intn(55)
		}
		if o.APIsPerComponent > 0 && o.Components > 1 {
			for k := 0; k < 2; k++ {
				j := c.rng.Intn(o.Components)
				if j != i && !contains(comp.consumes, j) {
					comp.consumes = append(comp.consumes, j)
				}
			}
			sort.Ints(comp.consumes)
		}
		c.comps = append(c.comps, comp)
	}
	for u := 0; u < o.Users; u++ {
		us := user{name: fmt.Sprintf("user-%05d", u), groups: []int{c.rng.Intn(o.Groups)}}
		if u%3 == 0 && o.Groups > 1 {
			if g := c.rng.Intn(o.Groups); g != us.groups[0] {
				us.groups = append(us.groups, g)
			}
		}
		c.users = append(c.users, us)
	}
	return c
}

// Generate returns the whole catalog as one multi-document YAML stream.
func Generate(opts Options) []byte { return New(opts).YAML() }

// Options returns the options with defaults filled in.
func (c *Catalog) Options() Options { return c.opts }

// ComponentName is the name of component i (its route prefix is /<name>).
func (c *Catalog) ComponentName(i int) string { return c.comps[i].name }

// Routes is the number of routes the catalog should compile to: one per
// Component, one per API and one per public path.
func (c *Catalog) Routes() int {
	n := len(c.comps) * (1 + c.opts.APIsPerComponent)
	for _, comp := range c.comps {
		if comp.public {
			n++
		}
	}
	return n
}

// Clusters is the number of clusters the catalog should compile to.
func (c *Catalog) Clusters() int { return len(c.comps) }

// YAML renders the whole catalog.
func (c *Catalog) YAML() []byte {
	var b bytes.Buffer
	c.writeOrg(&b)
	for i := range c.comps {
		c.writeComponent(&b, i)
	}
	return b.Bytes()
}

// Files renders the catalog as files: org.yaml (groups and users) and
// components-NNNN.yaml with ShardSize components (and their APIs) each.
func (c *Catalog) Files() map[string][]byte {
	out := map[string][]byte{}
	var org bytes.Buffer
	c.writeOrg(&org)
	out["org.yaml"] = org.Bytes()
	for s := 0; s*c.opts.ShardSize < len(c.comps); s++ {
		out[c.shardName(s)] = c.renderShard(s)
	}
	return out
}

// ShardOf is the file (in Files) that holds component i.
func (c *Catalog) ShardOf(i int) string { return c.shardName(i / c.opts.ShardSize) }

func (c *Catalog) shardName(s int) string { return fmt.Sprintf("components-%04d.yaml", s) }

func (c *Catalog) renderShard(s int) []byte {
	var b bytes.Buffer
	for i := s * c.opts.ShardSize; i < min(len(c.comps), (s+1)*c.opts.ShardSize); i++ {
		c.writeComponent(&b, i)
	}
	return b.Bytes()
}

// WriteDir writes Files into dir, only those whose content changed since the
// last WriteDir on this Catalog, each atomically (temporary file + rename).
// It returns the names written.
func (c *Catalog) WriteDir(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if c.written == nil {
		c.written = map[string][sha256.Size]byte{}
	}
	files := c.Files()
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var wrote []string
	for _, n := range names {
		h := sha256.Sum256(files[n])
		if old, ok := c.written[n]; ok && old == h {
			continue
		}
		tmp := filepath.Join(dir, "."+n+".tmp")
		if err := os.WriteFile(tmp, files[n], 0o644); err != nil {
			return wrote, err
		}
		if err := os.Rename(tmp, filepath.Join(dir, n)); err != nil {
			return wrote, err
		}
		c.written[n] = h
		wrote = append(wrote, n)
	}
	return wrote, nil
}

// TouchRoute changes the timeout of component i: its route (and only its
// route) changes; no cluster changes.
func (c *Catalog) TouchRoute(i int) {
	c.gen++
	t := c.comps[i].timeout
	c.comps[i].timeout = 1 + (t+c.gen)%3000
	if c.comps[i].timeout == t {
		c.comps[i].timeout = t%3000 + 1
	}
}

// TouchUpstream changes the upstream port of component i: its cluster
// changes; routes do not.
func (c *Catalog) TouchUpstream(i int) {
	c.gen++
	c.comps[i].port = 10000 + (c.comps[i].port-10000+1+c.gen)%50000
}

// MoveUser moves user u to another group: only group membership (the
// authorization model) changes, no route, cluster or listener.
func (c *Catalog) MoveUser(u int) {
	c.gen++
	if len(c.groups) < 2 {
		return
	}
	us := &c.users[u]
	g := (us.groups[0] + 1 + c.gen%(len(c.groups)-1)) % len(c.groups)
	for contains(us.groups[1:], g) || g == us.groups[0] {
		g = (g + 1) % len(c.groups)
	}
	us.groups[0] = g
}

// TouchFraction changes the upstream of frac (0..1] of the components, a
// contiguous run starting after the previous call's run, and returns their
// indexes.
func (c *Catalog) TouchFraction(frac float64) []int {
	n := int(float64(len(c.comps))*frac + 0.5)
	n = max(1, min(n, len(c.comps)))
	idx := make([]int, 0, n)
	for k := 0; k < n; k++ {
		i := (c.frac + k) % len(c.comps)
		c.TouchUpstream(i)
		idx = append(idx, i)
	}
	c.frac = (c.frac + n) % len(c.comps)
	return idx
}

func (c *Catalog) writeOrg(b *bytes.Buffer) {
	// Groups: a tree, each group's parent is group (g-1)/8; group 0 is the root.
	for g, name := range c.groups {
		fmt.Fprintf(b, "---\napiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata:\n  name: %s\nspec:\n  type: %s\n", name, map[bool]string{true: "department", false: "team"}[g == 0])
		if g > 0 {
			fmt.Fprintf(b, "  parent: %s\n", c.groups[(g-1)/8])
		}
		b.WriteString("  children: []\n")
	}
	for _, u := range c.users {
		fmt.Fprintf(b, "---\napiVersion: backstage.io/v1alpha1\nkind: User\nmetadata:\n  name: %s\nspec:\n  profile: {email: %s@example.com}\n  memberOf: [", u.name, u.name)
		for k, g := range u.groups {
			if k > 0 {
				b.WriteString(", ")
			}
			b.WriteString(c.groups[g])
		}
		b.WriteString("]\n")
	}
}

func (c *Catalog) apiName(i, k int) string { return fmt.Sprintf("%s-api-%d", c.comps[i].name, k) }

func (c *Catalog) writeComponent(b *bytes.Buffer, i int) {
	comp := c.comps[i]
	fmt.Fprintf(b, "---\napiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: %s\n  annotations:\n    gatehouse.dev/upstream: http://127.0.0.1:%d\n", comp.name, comp.port)
	if comp.timeout > 0 {
		fmt.Fprintf(b, "    gatehouse.dev/timeout: %ds\n", comp.timeout)
	}
	if comp.host {
		fmt.Fprintf(b, "    gatehouse.dev/hosts: %s.example.com\n    gatehouse.dev/path-prefix: /%s\n", comp.name, comp.name)
	}
	if comp.public {
		fmt.Fprintf(b, "    gatehouse.dev/public-paths: /%s/healthz\n", comp.name)
	}
	if comp.access >= 0 {
		fmt.Fprintf(b, "    gatehouse.dev/access: |\n      - {allow: [group:default/%s], methods: [GET], paths: [\"/%s/**\"]}\n", c.groups[comp.access], comp.name)
	}
	fmt.Fprintf(b, "spec:\n  type: service\n  lifecycle: production\n  owner: %s\n", c.groups[comp.owner])
	if n := c.opts.APIsPerComponent; n > 0 {
		apis := make([]string, n)
		for k := range apis {
			apis[k] = c.apiName(i, k)
		}
		fmt.Fprintf(b, "  providesApis: [%s]\n", strings.Join(apis, ", "))
		if len(comp.consumes) > 0 {
			cons := make([]string, len(comp.consumes))
			for k, j := range comp.consumes {
				cons[k] = c.apiName(j, 0)
			}
			fmt.Fprintf(b, "  consumesApis: [%s]\n", strings.Join(cons, ", "))
		}
	}
	for k := 0; k < c.opts.APIsPerComponent; k++ {
		fmt.Fprintf(b, "---\napiVersion: backstage.io/v1alpha1\nkind: API\nmetadata:\n  name: %s\n  annotations:\n    gatehouse.dev/path-prefix: /%s/v%d\nspec:\n  type: openapi\n  lifecycle: production\n  owner: %s\n  definition: \"openapi: 3.0.0\"\n",
			c.apiName(i, k), comp.name, k+1, c.groups[comp.owner])
	}
}

func contains(xs []int, x int) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

package catalogsync

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// lineContaining returns the 1-based line of the first line of src that
// contains sub (0 when none), so expected lines read as the text they point at.
func lineContaining(t *testing.T, src, sub string) int {
	t.Helper()
	for i, l := range strings.Split(src, "\n") {
		if strings.Contains(l, sub) {
			return i + 1
		}
	}
	t.Fatalf("test bug: %q not in source", sub)
	return 0
}

func refKeys(rs []Ref) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, r.Key())
	}
	return out
}

func entityKeys(es []*Entity) []string {
	out := []string{}
	for _, e := range es {
		out = append(out, e.Ref().Key())
	}
	return out
}

const validComponent = `apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: orders
spec:
  type: service
  lifecycle: production
  owner: team-a
`

func TestParseFileMultiDocument(t *testing.T) {
	src := `# leading comment
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: orders
  namespace: billing
spec:
  type: service
  lifecycle: production
  owner: team-a
  providesApis: [orders-api]
---
apiVersion: backstage.io/v1alpha1
kind: api
metadata:
  name: orders-api
  namespace: billing
spec:
  type: openapi
  lifecycle: production
  owner: team-a
  definition: |
    openapi: 3.0.0
--- # a comment after the marker
apiVersion: backstage.io/v1beta1
kind: Group
metadata:
  name: team-a
spec:
  type: team
...
---
`
	p := ParseFile("files", "catalog.yaml", []byte(src))
	if len(p.Problems) != 0 {
		t.Fatalf("unexpected problems: %v", p.Problems)
	}
	if len(p.Rejected) != 0 {
		t.Errorf("Rejected = %v; want none", p.Rejected)
	}
	want := []struct {
		key  string
		kind string
		line int
	}{
		{"component:billing/orders", KindComponent, lineContaining(t, src, "kind: Component") - 1},
		{"api:billing/orders-api", KindAPI, lineContaining(t, src, "kind: api") - 1},
		{"group:default/team-a", KindGroup, lineContaining(t, src, "kind: Group") - 1},
	}
	if len(p.Entities) != len(want) {
		t.Fatalf("got %d entities %v; want %d", len(p.Entities), entityKeys(p.Entities), len(want))
	}
	for i, w := range want {
		e := p.Entities[i]
		if e.Ref().Key() != w.key || e.Kind != w.kind {
			t.Errorf("entity %d = %s (kind %q); want %s (kind %q)", i, e.Ref().Key(), e.Kind, w.key, w.kind)
		}
		if e.Origin != (Origin{Source: "files", File: "catalog.yaml", Line: w.line}) {
			t.Errorf("entity %d origin = %+v; want line %d", i, e.Origin, w.line)
		}
	}
	if got := p.Entities[0].Spec.ProvidesAPIs; !reflect.DeepEqual(got, []string{"orders-api"}) {
		t.Errorf("providesApis = %v", got)
	}
	if got := p.Entities[1].Spec.Definition; got != "openapi: 3.0.0\n" {
		t.Errorf("definition = %#v", got)
	}
}

func TestParseFileEmptyInputs(t *testing.T) {
	for _, src := range []string{"", "\n\n", "---\n", "---\n---\n", "# only a comment\n"} {
		p := ParseFile("files", "c.yaml", []byte(src))
		if len(p.Entities) != 0 || len(p.Problems) != 0 || len(p.Rejected) != 0 {
			t.Errorf("ParseFile(%q) = %d entities, problems %v, rejected %v; want nothing", src, len(p.Entities), p.Problems, p.Rejected)
		}
	}
}

func TestParseFileValidation(t *testing.T) {
	const hdr = "apiVersion: backstage.io/v1alpha1\n"
	cases := []struct {
		name      string
		src       string
		lineAt    string // the problem's line is the first line containing this
		field     string
		entity    string
		msg       string // substring of Message
		rejected  []string
		severity  Severity
		skipCount int // entities expected in Entities
	}{
		{name: "missing apiVersion",
			src:    "kind: Component\nmetadata:\n  name: a\nspec: {type: s, lifecycle: l, owner: o}\n",
			lineAt: "kind: Component", field: "apiVersion", entity: "component:default/a", msg: "missing",
			rejected: []string{"component:default/a"}},
		{name: "unsupported apiVersion",
			src:    "kind: Component\napiVersion: backstage.io/v2\nmetadata:\n  name: a\nspec: {type: s, lifecycle: l, owner: o}\n",
			lineAt: "apiVersion:", field: "apiVersion", entity: "component:default/a", msg: `unsupported apiVersion "backstage.io/v2"`,
			rejected: []string{"component:default/a"}},
		{name: "missing kind",
			src:    hdr + "metadata:\n  name: a\nspec: {type: s}\n",
			lineAt: "apiVersion:", field: "kind", entity: "", msg: "missing"},
		{name: "missing name",
			src:    hdr + "kind: Component\nmetadata:\n  title: Orders\nspec: {type: s, lifecycle: l, owner: o}\n",
			lineAt: "metadata:", field: "metadata.name", entity: "", msg: "missing"},
		{name: "missing metadata",
			src:    hdr + "kind: Component\nspec: {type: s, lifecycle: l, owner: o}\n",
			lineAt: "apiVersion:", field: "metadata.name", entity: "", msg: "missing"},
		{name: "invalid name",
			src:    hdr + "kind: Component\nmetadata:\n  title: x\n  name: orders--v2\nspec: {type: s, lifecycle: l, owner: o}\n",
			lineAt: "name: orders--v2", field: "metadata.name", entity: "component:default/orders--v2", msg: `invalid name "orders--v2"`,
			rejected: []string{"component:default/orders--v2"}},
		{name: "invalid namespace",
			src:    hdr + "kind: Component\nmetadata:\n  name: orders\n  namespace: bad_ns_\nspec: {type: s, lifecycle: l, owner: o}\n",
			lineAt: "namespace: bad_ns_", field: "metadata.namespace", entity: "component:bad_ns_/orders", msg: `invalid namespace "bad_ns_"`,
			rejected: []string{"component:bad_ns_/orders"}},
		{name: "component without type",
			src:    hdr + "kind: Component\nmetadata:\n  name: orders\nspec:\n  lifecycle: l\n  owner: o\n",
			lineAt: "spec:", field: "spec.type", entity: "component:default/orders", msg: "missing (required for kind Component)",
			rejected: []string{"component:default/orders"}},
		{name: "component null lifecycle",
			src:    hdr + "kind: Component\nmetadata:\n  name: orders\nspec:\n  type: service\n  lifecycle: ~\n  owner: o\n",
			lineAt: "spec:", field: "spec.lifecycle", entity: "component:default/orders", msg: "missing (required for kind Component)",
			rejected: []string{"component:default/orders"}},
		{name: "component empty owner",
			src:    hdr + "kind: Component\nmetadata:\n  name: orders\nspec:\n  type: service\n  lifecycle: l\n  owner: ''\n",
			lineAt: "spec:", field: "spec.owner", entity: "component:default/orders", msg: "missing (required for kind Component)",
			rejected: []string{"component:default/orders"}},
		{name: "domain without spec",
			src:    hdr + "kind: Domain\nmetadata:\n  name: retail\n",
			lineAt: "apiVersion:", field: "spec.owner", entity: "domain:default/retail", msg: "missing (required for kind Domain)",
			rejected: []string{"domain:default/retail"}},
		{name: "api without definition",
			src:    hdr + "kind: API\nmetadata:\n  name: orders-api\nspec:\n  type: openapi\n  lifecycle: l\n  owner: o\n",
			lineAt: "spec:", field: "spec.definition", entity: "api:default/orders-api", msg: "missing (required for kind API)",
			rejected: []string{"api:default/orders-api"}},
		{name: "system without owner",
			src:    hdr + "kind: System\nmetadata:\n  name: shop\nspec:\n  domain: retail\n",
			lineAt: "spec:", field: "spec.owner", entity: "system:default/shop", msg: "missing (required for kind System)",
			rejected: []string{"system:default/shop"}},
		{name: "domain without owner",
			src:    hdr + "kind: Domain\nmetadata:\n  name: retail\nspec:\n  x: 1\n",
			lineAt: "spec:", field: "spec.owner", entity: "domain:default/retail", msg: "missing (required for kind Domain)",
			rejected: []string{"domain:default/retail"}},
		{name: "resource without type",
			src:    hdr + "kind: Resource\nmetadata:\n  name: db\nspec:\n  owner: o\n",
			lineAt: "spec:", field: "spec.type", entity: "resource:default/db", msg: "missing (required for kind Resource)",
			rejected: []string{"resource:default/db"}},
		{name: "group without type",
			src:    hdr + "kind: Group\nmetadata:\n  name: team\nspec:\n  children: []\n",
			lineAt: "spec:", field: "spec.type", entity: "group:default/team", msg: "missing (required for kind Group)",
			rejected: []string{"group:default/team"}},
		{name: "location without target",
			src:    hdr + "kind: Location\nmetadata:\n  name: root\nspec:\n  type: file\n",
			lineAt: "spec:", field: "spec.target", entity: "location:default/root", msg: "needs spec.target or spec.targets",
			rejected: []string{"location:default/root"}},
		{name: "bad owner ref",
			src:    hdr + "kind: Component\nmetadata:\n  name: orders\nspec:\n  type: service\n  lifecycle: l\n  owner: 'group:'\n",
			lineAt: "owner: 'group:'", field: "spec.owner", entity: "component:default/orders", msg: `entity ref "group:" has an empty name`,
			rejected: []string{"component:default/orders"}},
		{name: "bad providesApis item names its line",
			src:    hdr + "kind: Component\nmetadata:\n  name: orders\nspec:\n  type: service\n  lifecycle: l\n  owner: o\n  providesApis:\n    - orders-api\n    - a:b:c\n",
			lineAt: "- a:b:c", field: "spec.providesApis", entity: "component:default/orders", msg: `entity ref "a:b:c" has a malformed name "b:c"`,
			rejected: []string{"component:default/orders"}},
		{name: "bad dependsOn ref",
			src:    hdr + "kind: Resource\nmetadata:\n  name: db\nspec:\n  type: database\n  owner: o\n  dependsOn: [\"ns/\"]\n",
			lineAt: "dependsOn:", field: "spec.dependsOn", entity: "resource:default/db", msg: `entity ref "ns/" has an empty name`,
			rejected: []string{"resource:default/db"}},
		{name: "bad group member ref",
			src:    hdr + "kind: Group\nmetadata:\n  name: team\nspec:\n  type: team\n  members:\n    - user:/bob\n",
			lineAt: "- user:/bob", field: "spec.members", entity: "group:default/team", msg: `has an empty namespace`,
			rejected: []string{"group:default/team"}},
		{name: "bad memberOf ref",
			src:    hdr + "kind: User\nmetadata:\n  name: bob\nspec:\n  memberOf: [\":team\"]\n",
			lineAt: "memberOf:", field: "spec.memberOf", entity: "user:default/bob", msg: `has an empty kind`,
			rejected: []string{"user:default/bob"}},
		{name: "bad system ref in namespace",
			src:    hdr + "kind: API\nmetadata:\n  name: orders-api\n  namespace: billing\nspec:\n  type: openapi\n  lifecycle: l\n  owner: o\n  definition: x\n  system: shop/\n",
			lineAt: "system: shop/", field: "spec.system", entity: "api:billing/orders-api", msg: `entity ref "shop/" has an empty name`,
			rejected: []string{"api:billing/orders-api"}},
		{name: "wrong type: string instead of list",
			src:    hdr + "kind: Component\nmetadata:\n  name: orders\nspec:\n  type: service\n  lifecycle: l\n  owner: o\n  providesApis: orders-api\n",
			lineAt: "providesApis:", field: "spec.providesApis", entity: "component:default/orders", msg: "wrong type: cannot unmarshal !!str",
			rejected: []string{"component:default/orders"}},
		{name: "wrong type: mapping instead of tag list",
			src:    hdr + "kind: Component\nmetadata:\n  name: orders\n  tags:\n    team: a\nspec:\n  type: service\n  lifecycle: l\n  owner: o\n",
			lineAt: "team: a", field: "metadata.tags", entity: "component:default/orders", msg: "wrong type: cannot unmarshal !!map into []string",
			rejected: []string{"component:default/orders"}},
		{name: "wrong type: annotations as a list",
			src:    hdr + "kind: Component\nmetadata:\n  name: orders\n  annotations:\n    - gatehouse.dev/upstream\nspec:\n  type: service\n  lifecycle: l\n  owner: o\n",
			lineAt: "- gatehouse.dev/upstream", field: "metadata.annotations", entity: "component:default/orders", msg: "wrong type: cannot unmarshal !!seq",
			rejected: []string{"component:default/orders"}},
		{name: "wrong type: flow mapping as a member list",
			src:    hdr + "kind: Group\nmetadata:\n  name: team\nspec:\n  members: {bob: x}\n  type: team\n",
			lineAt: "members:", field: "spec.members", entity: "group:default/team", msg: "wrong type: cannot unmarshal !!map",
			rejected: []string{"group:default/team"}},
		{name: "not a mapping",
			src:    "just a string\n",
			lineAt: "just a string", field: "", entity: "", msg: "must be a mapping"},
		{name: "unknown kind is a warning and skipped",
			src:    hdr + "kind: Template\nmetadata:\n  name: scaffold\nspec:\n  type: service\n",
			lineAt: "kind: Template", field: "kind", entity: "template:default/scaffold", msg: `kind "Template" is not one gatehouse reads`,
			severity: SeverityWarning},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := ParseFile("files", "catalog-info.yaml", []byte(c.src))
			if len(p.Problems) != 1 {
				t.Fatalf("got %d problems; want 1:\n%v", len(p.Problems), p.Problems)
			}
			pr := p.Problems[0]
			wantSev := c.severity
			if wantSev == "" {
				wantSev = SeverityError
			}
			if pr.Severity != wantSev {
				t.Errorf("severity = %q; want %q", pr.Severity, wantSev)
			}
			if want := lineContaining(t, c.src, c.lineAt); pr.Line != want {
				t.Errorf("line = %d; want %d (%q)\n%s", pr.Line, want, c.lineAt, pr)
			}
			if pr.Field != c.field {
				t.Errorf("field = %q; want %q\n%s", pr.Field, c.field, pr)
			}
			if pr.Entity != c.entity {
				t.Errorf("entity = %q; want %q", pr.Entity, c.entity)
			}
			if !strings.Contains(pr.Message, c.msg) {
				t.Errorf("message = %q; want it to contain %q", pr.Message, c.msg)
			}
			if pr.Fix == "" {
				t.Errorf("problem has no Fix: %s", pr)
			}
			if pr.File != "catalog-info.yaml" || pr.Source != "files" {
				t.Errorf("file/source = %q/%q", pr.File, pr.Source)
			}
			if len(p.Entities) != 0 {
				t.Errorf("entities = %v; want none", entityKeys(p.Entities))
			}
			if got := refKeys(p.Rejected); !reflect.DeepEqual(got, append([]string{}, c.rejected...)) {
				t.Errorf("rejected = %v; want %v", got, c.rejected)
			}
		})
	}
}

func TestParseFileBrokenDocumentsDoNotHideOthers(t *testing.T) {
	src := `apiVersion: backstage.io/v1alpha1
kind: Group
metadata:
  name: first
spec:
  type: team
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: no-owner
spec:
  type: service
  lifecycle: l
---
apiVersion: backstage.io/v1alpha1
kind: Group
metadata:
  name: second
spec:
  type: team
---
apiVersion: backstage.io/v1alpha1
kind: Group
metadata:
  name: wrong-type
spec:
  type: team
  members: bob
---
apiVersion: backstage.io/v1alpha1
kind: Template
metadata:
  name: ignored
---
apiVersion: backstage.io/v1alpha1
kind: Group
metadata:
  name: third
spec:
  type: team
`
	p := ParseFile("files", "c.yaml", []byte(src))
	if got, want := entityKeys(p.Entities), []string{"group:default/first", "group:default/second", "group:default/third"}; !reflect.DeepEqual(got, want) {
		t.Errorf("entities = %v; want %v", got, want)
	}
	if got, want := refKeys(p.Rejected), []string{"component:default/no-owner", "group:default/wrong-type"}; !reflect.DeepEqual(got, want) {
		t.Errorf("rejected = %v; want %v", got, want)
	}
	if p.Problems.Errors() != 2 || len(p.Problems) != 3 {
		t.Fatalf("problems = %v; want 2 errors and 1 warning", p.Problems)
	}
	wantLines := []int{lineContaining(t, src, "name: no-owner") + 1, lineContaining(t, src, "members: bob"), lineContaining(t, src, "kind: Template")}
	for i, pr := range p.Problems {
		if pr.Line != wantLines[i] {
			t.Errorf("problem %d line = %d; want %d (%s)", i, pr.Line, wantLines[i], pr)
		}
	}
	if p.Entities[2].Origin.Line != lineContaining(t, src, "name: third")-3 {
		t.Errorf("third entity origin line = %d", p.Entities[2].Origin.Line)
	}
}

func TestParseFileSyntaxError(t *testing.T) {
	src := `apiVersion: backstage.io/v1alpha1
kind: Group
metadata:
  name: before
spec:
  type: team
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: broken
spec:
  type: [service
  lifecycle: l
---
apiVersion: backstage.io/v1alpha1
kind: Group
metadata:
  name: after
spec:
  type: team
`
	p := ParseFile("files", "c.yaml", []byte(src))
	if got, want := entityKeys(p.Entities), []string{"group:default/before", "group:default/after"}; !reflect.DeepEqual(got, want) {
		t.Errorf("entities = %v; want %v", got, want)
	}
	if got, want := refKeys(p.Rejected), []string{"component:default/broken"}; !reflect.DeepEqual(got, want) {
		t.Errorf("rejected (guessed ref) = %v; want %v", got, want)
	}
	if len(p.Problems) != 1 {
		t.Fatalf("problems = %v", p.Problems)
	}
	pr := p.Problems[0]
	// The line is within the broken document (file-relative, not chunk-relative).
	first, last := lineContaining(t, src, "name: broken")-2, lineContaining(t, src, "lifecycle: l")+1
	if pr.Line < first || pr.Line > last {
		t.Errorf("line = %d; want within %d..%d", pr.Line, first, last)
	}
	if pr.Severity != SeverityError || !strings.HasPrefix(pr.Message, "invalid YAML: ") || pr.Fix == "" || pr.Entity != "component:default/broken" {
		t.Errorf("problem = %+v", pr)
	}
	if strings.Contains(pr.Message, "line ") {
		t.Errorf("message repeats the line: %q", pr.Message)
	}
}

func TestParseFileSyntaxErrorLine(t *testing.T) {
	// The reported line is yaml's line within the document shifted by where
	// the document starts in the file.
	broken := "kind: Group\nmetadata:\n  name: g\n\tspec: x\n"
	var n yaml.Node
	err := yaml.Unmarshal([]byte(broken), &n)
	if err == nil {
		t.Fatal("test bug: document parses")
	}
	inDoc := yamlErrLine(err)
	if inDoc == 0 {
		t.Fatalf("test bug: no line in %v", err)
	}
	src := validComponent + "---\n" + broken
	start := strings.Count(validComponent, "\n") + 2
	p := ParseFile("files", "c.yaml", []byte(src))
	if got := entityKeys(p.Entities); !reflect.DeepEqual(got, []string{"component:default/orders"}) {
		t.Errorf("entities = %v", got)
	}
	if len(p.Problems) != 1 || p.Problems[0].Line != start+inDoc-1 {
		t.Fatalf("problems = %v; want one at line %d", p.Problems, start+inDoc-1)
	}
	if got := refKeys(p.Rejected); !reflect.DeepEqual(got, []string{"group:default/g"}) {
		t.Errorf("rejected = %v", got)
	}
}

func TestParseFileSyntaxErrorWithoutRef(t *testing.T) {
	p := ParseFile("files", "c.yaml", []byte("a: [b\n---\n"+validComponent))
	if len(p.Rejected) != 0 {
		t.Errorf("rejected = %v; want none (no kind/name to guess)", p.Rejected)
	}
	if len(p.Entities) != 1 || p.Problems.Errors() != 1 || p.Problems[0].Entity != "" {
		t.Errorf("entities %d problems %v", len(p.Entities), p.Problems)
	}
}

func TestParseFileCanonicalisesKindAndKeepsFields(t *testing.T) {
	src := `apiVersion: backstage.io/v1alpha1
kind: user
metadata:
  name: bob
  namespace: people
  labels: {team: a}
  tags: [x, y]
spec:
  memberOf: [team-a]
  profile:
    email: bob@example.com
  unknownField: ignored
`
	p := ParseFile("s", "f", []byte(src))
	if len(p.Problems) != 0 || len(p.Entities) != 1 {
		t.Fatalf("problems %v entities %d", p.Problems, len(p.Entities))
	}
	e := p.Entities[0]
	if e.Kind != KindUser || e.Ref().Key() != "user:people/bob" {
		t.Errorf("kind %q ref %q", e.Kind, e.Ref().Key())
	}
	if e.Spec.Profile == nil || e.Spec.Profile.Email != "bob@example.com" || !reflect.DeepEqual(e.Metadata.Tags, []string{"x", "y"}) || e.Metadata.Labels["team"] != "a" {
		t.Errorf("fields not decoded: %+v", e)
	}
	if e.Routing != nil || e.Access != nil {
		t.Errorf("routing/access set without annotations: %+v %+v", e.Routing, e.Access)
	}
}

// annotated builds a document of the given kind whose annotations are the
// key/value pairs given; the first annotation is on line 6.
func annotated(kind string, kv ...string) string {
	var b strings.Builder
	b.WriteString("apiVersion: backstage.io/v1alpha1\nkind: " + kind + "\nmetadata:\n  name: orders\n  annotations:\n")
	for i := 0; i+1 < len(kv); i += 2 {
		b.WriteString("    " + kv[i] + ": '" + strings.ReplaceAll(kv[i+1], "'", "''") + "'\n")
	}
	b.WriteString("spec:\n  type: service\n  lifecycle: production\n  owner: team-a\n  definition: x\n")
	return b.String()
}

func TestAnnotations(t *testing.T) {
	up := func(scheme, host string, port uint32) Endpoint {
		return Endpoint{Scheme: scheme, Host: host, Port: port}
	}
	cases := []struct {
		name    string
		kind    string
		kv      []string
		want    *Routing // when no error
		errKey  string   // annotation named by the error
		errMsg  string
		warning string // expected warning message substring
	}{
		// upstream
		{name: "upstream with port", kind: "Component", kv: []string{AnnUpstream, "http://orders.svc:8080"},
			want: &Routing{Upstreams: []Endpoint{up("http", "orders.svc", 8080)}}},
		{name: "http default port", kind: "Component", kv: []string{AnnUpstream, "http://orders"},
			want: &Routing{Upstreams: []Endpoint{up("http", "orders", 80)}}},
		{name: "https default port", kind: "Resource", kv: []string{AnnUpstream, "https://orders.example.com"},
			want: &Routing{Upstreams: []Endpoint{up("https", "orders.example.com", 443)}}},
		{name: "multiple, commas and spaces", kind: "Component", kv: []string{AnnUpstream, "http://a:1, http://b:2 http://10.0.0.7:8080"},
			want: &Routing{Upstreams: []Endpoint{up("http", "a", 1), up("http", "b", 2), up("http", "10.0.0.7", 8080)}}},
		{name: "duplicates and case folded", kind: "Component", kv: []string{AnnUpstream, "http://A.svc:1,http://a.svc:1"},
			want: &Routing{Upstreams: []Endpoint{up("http", "a.svc", 1)}}},
		{name: "ipv6", kind: "Component", kv: []string{AnnUpstream, "http://[::1]:8080"},
			want: &Routing{Upstreams: []Endpoint{up("http", "::1", 8080)}}},
		{name: "trailing slash allowed", kind: "Component", kv: []string{AnnUpstream, "http://a:1/"},
			want: &Routing{Upstreams: []Endpoint{up("http", "a", 1)}}},
		{name: "bad scheme", kind: "Component", kv: []string{AnnUpstream, "ftp://a:21"},
			errKey: AnnUpstream, errMsg: `upstream "ftp://a:21" has scheme "ftp"; only http and https are supported`},
		{name: "grpc scheme", kind: "Component", kv: []string{AnnUpstream, "grpc://a:21"},
			errKey: AnnUpstream, errMsg: `has scheme "grpc"`},
		{name: "path not allowed", kind: "Component", kv: []string{AnnUpstream, "http://a:1/orders"},
			errKey: AnnUpstream, errMsg: `upstream "http://a:1/orders" has a path, query or user info; the upstream is an address only`},
		{name: "query not allowed", kind: "Component", kv: []string{AnnUpstream, "http://a:1?x=1"},
			errKey: AnnUpstream, errMsg: "has a path, query or user info"},
		{name: "user info not allowed", kind: "Component", kv: []string{AnnUpstream, "http://u:p@a:1"},
			errKey: AnnUpstream, errMsg: "has a path, query or user info"},
		{name: "mixed schemes", kind: "Component", kv: []string{AnnUpstream, "http://a:1, https://b:2"},
			errKey: AnnUpstream, errMsg: "upstreams mix http and https; one entity's endpoints must share a scheme"},
		{name: "port zero", kind: "Component", kv: []string{AnnUpstream, "http://a:0"},
			errKey: AnnUpstream, errMsg: `upstream "http://a:0" has an invalid port`},
		{name: "port too big", kind: "Component", kv: []string{AnnUpstream, "http://a:70000"},
			errKey: AnnUpstream, errMsg: `upstream "http://a:70000" has an invalid port`},
		{name: "no scheme", kind: "Component", kv: []string{AnnUpstream, "orders:8080"},
			errKey: AnnUpstream, errMsg: `invalid upstream URL "orders:8080"`},
		{name: "bare host", kind: "Component", kv: []string{AnnUpstream, "orders.svc"},
			errKey: AnnUpstream, errMsg: `invalid upstream URL "orders.svc"`},
		{name: "bad host", kind: "Component", kv: []string{AnnUpstream, "http://bad_host:1"},
			errKey: AnnUpstream, errMsg: `has an invalid host "bad_host"`},
		{name: "empty upstream", kind: "Component", kv: []string{AnnUpstream, " "},
			errKey: AnnUpstream, errMsg: "empty upstream"},
		{name: "upstream on API", kind: "API", kv: []string{AnnUpstream, "http://a:1"},
			errKey: AnnUpstream, errMsg: "only a Component or Resource can have an upstream (this is a API)"},
		{name: "upstream on System", kind: "System", kv: []string{AnnUpstream, "http://a:1"},
			errKey: AnnUpstream, errMsg: "(this is a System)"},
		// hosts
		{name: "hosts folded and wildcard", kind: "Component", kv: []string{AnnUpstream, "http://a:1", AnnHosts, "Orders.Example.COM, *.orders.example.com"},
			want: &Routing{Upstreams: []Endpoint{up("http", "a", 1)}, Hosts: []string{"orders.example.com", "*.orders.example.com"}}},
		{name: "hosts deduplicated", kind: "Component", kv: []string{AnnUpstream, "http://a:1", AnnHosts, "a.example.com A.example.com,a.example.com"},
			want: &Routing{Upstreams: []Endpoint{up("http", "a", 1)}, Hosts: []string{"a.example.com"}}},
		{name: "host with port", kind: "Component", kv: []string{AnnUpstream, "http://a:1", AnnHosts, "orders.example.com:8443"},
			errKey: AnnHosts, errMsg: `host "orders.example.com:8443" must be a bare host name (no scheme, port or path)`},
		{name: "host with scheme", kind: "Component", kv: []string{AnnUpstream, "http://a:1", AnnHosts, "https://Orders.example.com"},
			errKey: AnnHosts, errMsg: `host "https://orders.example.com" must be a bare host name`},
		{name: "host with path", kind: "Component", kv: []string{AnnUpstream, "http://a:1", AnnHosts, "orders.example.com/x"},
			errKey: AnnHosts, errMsg: "must be a bare host name"},
		{name: "bare wildcard", kind: "Component", kv: []string{AnnUpstream, "http://a:1", AnnHosts, "*"},
			errKey: AnnHosts, errMsg: `invalid host name "*"`},
		{name: "inner wildcard", kind: "Component", kv: []string{AnnUpstream, "http://a:1", AnnHosts, "a.*.example.com"},
			errKey: AnnHosts, errMsg: `invalid host name "a.*.example.com"`},
		{name: "empty hosts", kind: "Component", kv: []string{AnnUpstream, "http://a:1", AnnHosts, ", ,"},
			errKey: AnnHosts, errMsg: "empty host list"},
		{name: "hosts on API", kind: "API", kv: []string{AnnHosts, "a.example.com"},
			errKey: AnnHosts, errMsg: "only a Component or Resource can claim hosts"},
		{name: "hosts without upstream warns", kind: "Component", kv: []string{AnnHosts, "a.example.com"},
			want: &Routing{Hosts: []string{"a.example.com"}}, warning: "there is no upstream, so the entity is not routed"},
		// path-prefix
		{name: "prefix trailing slash", kind: "Component", kv: []string{AnnUpstream, "http://a:1", AnnPathPrefix, "/orders/"},
			want: &Routing{Upstreams: []Endpoint{up("http", "a", 1)}, PathPrefix: "/orders"}},
		{name: "prefix root stays root", kind: "Component", kv: []string{AnnUpstream, "http://a:1", AnnPathPrefix, "/"},
			want: &Routing{Upstreams: []Endpoint{up("http", "a", 1)}, PathPrefix: "/"}},
		{name: "prefix nested", kind: "Component", kv: []string{AnnUpstream, "http://a:1", AnnPathPrefix, " /orders/v2 "},
			want: &Routing{Upstreams: []Endpoint{up("http", "a", 1)}, PathPrefix: "/orders/v2"}},
		{name: "prefix on API", kind: "API", kv: []string{AnnPathPrefix, "/orders-api/"},
			want: &Routing{PathPrefix: "/orders-api"}},
		{name: "prefix relative", kind: "Component", kv: []string{AnnUpstream, "http://a:1", AnnPathPrefix, "orders"},
			errKey: AnnPathPrefix, errMsg: `path prefix "orders" must start with /`},
		{name: "prefix dotdot", kind: "Component", kv: []string{AnnUpstream, "http://a:1", AnnPathPrefix, "/a/../b"},
			errKey: AnnPathPrefix, errMsg: `path prefix "/a/../b" contains a . or .. segment`},
		{name: "prefix trailing dotdot", kind: "Component", kv: []string{AnnUpstream, "http://a:1", AnnPathPrefix, "/a/.."},
			errKey: AnnPathPrefix, errMsg: "contains a . or .. segment"},
		{name: "prefix double slash", kind: "Component", kv: []string{AnnUpstream, "http://a:1", AnnPathPrefix, "/a//b"},
			errKey: AnnPathPrefix, errMsg: `path prefix "/a//b" contains an empty segment (//)`},
		{name: "prefix query", kind: "Component", kv: []string{AnnUpstream, "http://a:1", AnnPathPrefix, "/a?x=1"},
			errKey: AnnPathPrefix, errMsg: `path prefix "/a?x=1" must not contain a query or fragment`},
		{name: "prefix fragment", kind: "Component", kv: []string{AnnUpstream, "http://a:1", AnnPathPrefix, "/a#x"},
			errKey: AnnPathPrefix, errMsg: "must not contain a query or fragment"},
		{name: "prefix space", kind: "Component", kv: []string{AnnUpstream, "http://a:1", AnnPathPrefix, "/a b"},
			errKey: AnnPathPrefix, errMsg: "contains characters that are not allowed in a URL path"},
		{name: "prefix on Group", kind: "Group", kv: []string{AnnPathPrefix, "/x"},
			errKey: AnnPathPrefix, errMsg: "only a Component, Resource or API can have a path prefix"},
		// timeout
		{name: "timeout", kind: "Component", kv: []string{AnnUpstream, "http://a:1", AnnTimeout, "15s"},
			want: &Routing{Upstreams: []Endpoint{up("http", "a", 1)}, Timeout: 15 * time.Second}},
		{name: "timeout max", kind: "Component", kv: []string{AnnUpstream, "http://a:1", AnnTimeout, "1h"},
			want: &Routing{Upstreams: []Endpoint{up("http", "a", 1)}, Timeout: time.Hour}},
		{name: "timeout bad", kind: "Component", kv: []string{AnnUpstream, "http://a:1", AnnTimeout, "15"},
			errKey: AnnTimeout, errMsg: `invalid duration "15"`},
		{name: "timeout words", kind: "Component", kv: []string{AnnUpstream, "http://a:1", AnnTimeout, "soon"},
			errKey: AnnTimeout, errMsg: `invalid duration "soon"`},
		{name: "timeout zero", kind: "Component", kv: []string{AnnUpstream, "http://a:1", AnnTimeout, "0s"},
			errKey: AnnTimeout, errMsg: "timeout 0s is out of range"},
		{name: "timeout negative", kind: "Component", kv: []string{AnnUpstream, "http://a:1", AnnTimeout, "-5s"},
			errKey: AnnTimeout, errMsg: "timeout -5s is out of range"},
		{name: "timeout too long", kind: "Component", kv: []string{AnnUpstream, "http://a:1", AnnTimeout, "61m"},
			errKey: AnnTimeout, errMsg: "timeout 61m is out of range"},
		{name: "timeout on API", kind: "API", kv: []string{AnnTimeout, "5s"},
			errKey: AnnTimeout, errMsg: "only a Component or Resource can have a timeout"},
		{name: "bad timeout on API names the kind rule", kind: "API", kv: []string{AnnTimeout, "soon"},
			errKey: AnnTimeout, errMsg: "only a Component or Resource can have a timeout"},
		{name: "other annotations ignored", kind: "Component", kv: []string{"backstage.io/techdocs-ref", "dir:."},
			want: nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := annotated(c.kind, c.kv...)
			p := ParseFile("files", "c.yaml", []byte(src))
			if c.errKey != "" {
				if len(p.Problems) != 1 {
					t.Fatalf("problems = %v; want one error", p.Problems)
				}
				pr := p.Problems[0]
				if pr.Severity != SeverityError || pr.Field != "metadata.annotations["+c.errKey+"]" || !strings.Contains(pr.Message, c.errMsg) || pr.Fix == "" {
					t.Errorf("problem = %+v;\nwant field metadata.annotations[%s], message containing %q", pr, c.errKey, c.errMsg)
				}
				if want := lineContaining(t, src, c.errKey+":"); pr.Line != want {
					t.Errorf("line = %d; want %d", pr.Line, want)
				}
				if pr.Entity != strings.ToLower(c.kind)+":default/orders" {
					t.Errorf("entity = %q", pr.Entity)
				}
				if len(p.Entities) != 0 || len(p.Rejected) != 1 {
					t.Errorf("entities %d rejected %v; want the entity rejected", len(p.Entities), p.Rejected)
				}
				return
			}
			if p.Problems.Errors() != 0 {
				t.Fatalf("unexpected errors: %v", p.Problems)
			}
			if c.warning != "" {
				if len(p.Problems) != 1 || !strings.Contains(p.Problems[0].Message, c.warning) || p.Problems[0].Severity != SeverityWarning || p.Problems[0].Fix == "" {
					t.Errorf("problems = %v; want one warning %q", p.Problems, c.warning)
				}
			} else if len(p.Problems) != 0 {
				t.Errorf("unexpected problems: %v", p.Problems)
			}
			if len(p.Entities) != 1 {
				t.Fatalf("entities = %d", len(p.Entities))
			}
			if got := p.Entities[0].Routing; !reflect.DeepEqual(got, c.want) {
				t.Errorf("routing = %+v; want %+v", got, c.want)
			}
		})
	}
}

func TestNormalizePathPrefix(t *testing.T) {
	cases := []struct{ in, want, err string }{
		{"/", "/", ""},
		{"/orders", "/orders", ""},
		{"/orders/", "/orders", ""},
		{"/orders/v2/", "/orders/v2", ""},
		{"/a-b_c.d~e/%20", "/a-b_c.d~e/%20", ""},
		{"/..", "", `path prefix "/.." contains a . or .. segment`},
		{"/./a", "", `path prefix "/./a" contains a . or .. segment`},
		{"//", "", `path prefix "//" contains an empty segment (//)`},
		{"/orders//", "", `path prefix "/orders//" contains an empty segment (//)`},
		{"", "", `path prefix "" must start with /`},
		{"/a?", "", `path prefix "/a?" must not contain a query or fragment`},
		{"/a\"b", "", `path prefix "/a"b" contains characters that are not allowed in a URL path`},
	}
	for _, c := range cases {
		got, err := NormalizePathPrefix(c.in)
		if got != c.want || err != c.err {
			t.Errorf("NormalizePathPrefix(%q) = %q, %q; want %q, %q", c.in, got, err, c.want, c.err)
		}
	}
}

func TestRouteClaims(t *testing.T) {
	cases := []struct {
		name string
		kv   []string
		want []string
	}{
		{"shared host, name prefix", []string{AnnUpstream, "http://a:1"}, []string{"* /orders"}},
		{"own hosts, root prefix", []string{AnnUpstream, "http://a:1", AnnHosts, "a.example.com, b.example.com"}, []string{"a.example.com /", "b.example.com /"}},
		{"shared host, explicit prefix", []string{AnnUpstream, "http://a:1", AnnPathPrefix, "/api/orders/"}, []string{"* /api/orders"}},
		{"own host, explicit prefix", []string{AnnUpstream, "http://a:1", AnnHosts, "a.example.com", AnnPathPrefix, "/v2"}, []string{"a.example.com /v2"}},
		{"explicit root on shared host", []string{AnnUpstream, "http://a:1", AnnPathPrefix, "/"}, []string{"* /"}},
		{"no upstream, no claims", []string{AnnHosts, "a.example.com"}, nil},
		{"no annotations", nil, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := ParseFile("files", "c.yaml", []byte(annotated("Component", c.kv...)))
			if p.Problems.Errors() != 0 || len(p.Entities) != 1 {
				t.Fatalf("problems %v", p.Problems)
			}
			if got := p.Entities[0].RouteClaims(); !reflect.DeepEqual(got, c.want) {
				t.Errorf("RouteClaims() = %q; want %q", got, c.want)
			}
		})
	}
	r := &Routing{}
	if got := r.RouteHosts(); !reflect.DeepEqual(got, []string{SharedHost}) || SharedHost != "*" {
		t.Errorf("RouteHosts() = %v", got)
	}
	if got := r.RoutePrefix("orders"); got != "/orders" {
		t.Errorf("RoutePrefix = %q", got)
	}
}

func TestEndpointString(t *testing.T) {
	cases := map[Endpoint]string{
		{Scheme: "http", Host: "a", Port: 80}:     "http://a:80",
		{Scheme: "https", Host: "::1", Port: 443}: "https://[::1]:443",
	}
	for ep, want := range cases {
		if got := ep.String(); got != want {
			t.Errorf("%+v.String() = %q; want %q", ep, got, want)
		}
	}
}

func TestParseFileLineNumbersAcrossMarkers(t *testing.T) {
	cases := []struct {
		name      string
		src       string
		wantLines []int
	}{
		{"leading marker", "---\n" + validComponent, []int{2}},
		{"CRLF", strings.ReplaceAll("---\n"+validComponent+"---\n\n"+validComponent, "\n", "\r\n"), []int{2, 12}},
		{"end marker then next", validComponent + "...\n---\n" + strings.Replace(validComponent, "orders", "payments", 1), []int{1, 11}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := ParseFile("files", "c.yaml", []byte(c.src))
			if p.Problems.Errors() != 0 {
				t.Fatalf("problems: %v", p.Problems)
			}
			var got []int
			for _, e := range p.Entities {
				got = append(got, e.Origin.Line)
			}
			if !reflect.DeepEqual(got, c.wantLines) {
				t.Errorf("origin lines = %v; want %v", got, c.wantLines)
			}
		})
	}
}

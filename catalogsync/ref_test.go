package catalogsync

import (
	"testing"
)

func TestParseRefValid(t *testing.T) {
	cases := []struct {
		name             string
		in, kind, ns     string
		wantKind, wantNS string
		wantName         string
		wantString       string
		wantKey          string
	}{
		{"kind from default", "orders", "group", "", KindGroup, "default", "orders", "group:default/orders", "group:default/orders"},
		{"namespace from default arg", "orders", "group", "team-ns", KindGroup, "team-ns", "orders", "group:team-ns/orders", "group:team-ns/orders"},
		{"explicit namespace beats default", "billing/orders", "api", "team-ns", KindAPI, "billing", "orders", "api:billing/orders", "api:billing/orders"},
		{"explicit kind beats default", "user:bob", "group", "", KindUser, "default", "bob", "user:default/bob", "user:default/bob"},
		{"explicit kind, no default kind", "component:default/orders", "", "", KindComponent, "default", "orders", "component:default/orders", "component:default/orders"},
		{"kind canonicalised", "COMPONENT:x", "", "", KindComponent, "default", "x", "component:default/x", "component:default/x"},
		{"api kind canonicalised", "Api:x", "", "", KindAPI, "default", "x", "api:default/x", "api:default/x"},
		{"case kept in String, folded in Key", "Component:Default/Orders", "", "", KindComponent, "Default", "Orders", "component:Default/Orders", "component:default/orders"},
		{"unknown kind kept", "Template:ns/t1", "", "", "Template", "ns", "t1", "template:ns/t1", "template:ns/t1"},
		{"whitespace trimmed", "  group:team  ", "", "", KindGroup, "default", "team", "group:default/team", "group:default/team"},
		{"default kind is canonicalised", "x", "resource", "", KindResource, "default", "x", "resource:default/x", "resource:default/x"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := ParseRef(c.in, c.kind, c.ns)
			if err != nil {
				t.Fatalf("ParseRef(%q, %q, %q): unexpected error %v", c.in, c.kind, c.ns, err)
			}
			if r.Kind != c.wantKind || r.Namespace != c.wantNS || r.Name != c.wantName {
				t.Errorf("ParseRef(%q) = %+v; want kind %q ns %q name %q", c.in, r, c.wantKind, c.wantNS, c.wantName)
			}
			if got := r.String(); got != c.wantString {
				t.Errorf("String() = %q; want %q", got, c.wantString)
			}
			if got := r.Key(); got != c.wantKey {
				t.Errorf("Key() = %q; want %q", got, c.wantKey)
			}
			if r.IsZero() {
				t.Errorf("IsZero() = true for %+v", r)
			}
		})
	}
}

func TestParseRefKeyCaseInsensitive(t *testing.T) {
	pairs := [][2]string{
		{"Component:Default/Orders", "component:default/orders"},
		{"GROUP:Team-A", "group:default/team-a"},
		{"user:DEFAULT/Bob", "User:default/bob"},
	}
	for _, p := range pairs {
		a, errA := ParseRef(p[0], "", "")
		b, errB := ParseRef(p[1], "", "")
		if errA != nil || errB != nil {
			t.Fatalf("ParseRef errors: %v, %v", errA, errB)
		}
		if a.Key() != b.Key() {
			t.Errorf("Key(%q) = %q != Key(%q) = %q", p[0], a.Key(), p[1], b.Key())
		}
		if a == b {
			t.Errorf("%q and %q should keep their written case (got equal Refs %+v)", p[0], p[1], a)
		}
	}
	a, _ := ParseRef("component:default/orders", "", "")
	b, _ := ParseRef("component:default/payments", "", "")
	if a.Key() == b.Key() {
		t.Errorf("different names have the same key %q", a.Key())
	}
	c, _ := ParseRef("api:default/orders", "", "")
	if a.Key() == c.Key() {
		t.Errorf("different kinds have the same key %q", a.Key())
	}
}

func TestParseRefErrors(t *testing.T) {
	cases := []struct {
		name, in, kind string
		wantErr        string
	}{
		{"empty", "", "group", `empty entity ref`},
		{"blank", "   ", "group", `empty entity ref`},
		{"no kind and no default", "orders", "", `entity ref "orders" has no kind; write it as kind:namespace/name`},
		{"empty kind", ":default/x", "", `entity ref ":default/x" has an empty kind before ':'`},
		{"empty kind no ns", ":x", "group", `entity ref ":x" has an empty kind before ':'`},
		{"empty namespace", "component:/x", "", `entity ref "component:/x" has an empty namespace before '/'`},
		{"empty namespace default kind", "/x", "group", `entity ref "/x" has an empty namespace before '/'`},
		{"ns with empty name", "ns/", "group", `entity ref "ns/" has an empty name`},
		{"kind ns and empty name", "component:ns/", "", `entity ref "component:ns/" has an empty name`},
		{"kind and empty name", "group:", "", `entity ref "group:" has an empty name`},
		{"two colons", "a:b:c", "", `entity ref "a:b:c" has a malformed name "b:c"`},
		{"trailing slash", "group:default/team/", "", `entity ref "group:default/team/" has a malformed name "team/"`},
		{"too many slashes", "a/b/c", "group", `entity ref "a/b/c" has a malformed name "b/c"`},
		{"colon in name after ns", "group:ns/a:b", "", `entity ref "group:ns/a:b" has a malformed name "a:b"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := ParseRef(c.in, c.kind, "")
			if err == nil {
				t.Fatalf("ParseRef(%q) = %+v; want error %q", c.in, r, c.wantErr)
			}
			if err.Error() != c.wantErr {
				t.Errorf("ParseRef(%q) error = %q; want %q", c.in, err.Error(), c.wantErr)
			}
			if !r.IsZero() {
				t.Errorf("ParseRef(%q) returned non-zero ref %+v with error", c.in, r)
			}
		})
	}
}

func TestMustRef(t *testing.T) {
	if got := MustRef("Group:default/Team").Key(); got != "group:default/team" {
		t.Errorf("MustRef key = %q", got)
	}
	defer func() {
		if recover() == nil {
			t.Errorf("MustRef(\"orders\") did not panic on a ref without kind")
		}
	}()
	MustRef("orders")
}

func TestValidName(t *testing.T) {
	long := ""
	for i := 0; i < 64; i++ {
		long += "a"
	}
	cases := map[string]bool{
		"orders": true, "Orders-API": true, "a.b_c-d": true, "a1": true, long[:63]: true,
		"": false, "-a": false, "a-": false, "a--b": false, "a b": false, "a/b": false, long: false, "ä": false,
	}
	for in, want := range cases {
		if got := validName(in); got != want {
			t.Errorf("validName(%q) = %v; want %v", in, got, want)
		}
	}
}

func TestEntityRefAndOrigin(t *testing.T) {
	e := &Entity{Kind: "component", Metadata: Metadata{Name: "Orders"}}
	if got := e.Ref(); got != (Ref{Kind: KindComponent, Namespace: "default", Name: "Orders"}) {
		t.Errorf("Ref() = %+v", got)
	}
	e.Metadata.Namespace = "billing"
	if got := e.Ref().String(); got != "component:billing/Orders" {
		t.Errorf("Ref().String() = %q", got)
	}
	origins := []struct {
		o    Origin
		want string
	}{
		{Origin{Source: "files"}, "files"},
		{Origin{Source: "files", File: "a.yaml"}, "a.yaml"},
		{Origin{Source: "files", File: "a.yaml", Line: 7}, "a.yaml:7"},
	}
	for _, c := range origins {
		if got := c.o.String(); got != c.want {
			t.Errorf("%+v.String() = %q; want %q", c.o, got, c.want)
		}
	}
}

func TestProblemString(t *testing.T) {
	cases := []struct {
		p    Problem
		want string
	}{
		{Problem{Severity: SeverityError, File: "c.yaml", Line: 3, Entity: "component:default/a", Field: "spec.owner", Message: "missing", Fix: "add it"},
			"c.yaml:3: error: component:default/a: spec.owner: missing (fix: add it)"},
		{Problem{Severity: SeverityWarning, Source: "backstage", Message: "m"}, "backstage: warning: m"},
		{Problem{Severity: SeverityError, File: "c.yaml", Message: "m"}, "c.yaml: error: m"},
	}
	for _, c := range cases {
		if got := c.p.String(); got != c.want {
			t.Errorf("String() = %q; want %q", got, c.want)
		}
	}
	ps := Problems{{Severity: SeverityError}, {Severity: SeverityWarning}, {Severity: SeverityError}}
	if ps.Errors() != 2 {
		t.Errorf("Errors() = %d; want 2", ps.Errors())
	}
}

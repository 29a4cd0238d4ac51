package catalogsync

import (
	"reflect"
	"strings"
	"testing"
)

// gatehouse.dev/mesh-address: a valid host:port puts a Component in the mesh;
// anything else rejects the entity with a problem naming the annotation, the
// line and a fix.
func TestMeshAddress(t *testing.T) {
	cases := []struct {
		name   string
		kind   string
		value  string
		want   *Mesh  // when valid
		errMsg string // substring of the problem's message when invalid
		fix    string // substring of the problem's fix
	}{
		{name: "ip and port", kind: "Component", value: "10.0.0.7:15006", want: &Mesh{Host: "10.0.0.7", Port: 15006}},
		{name: "dns name", kind: "Component", value: "orders.shop.svc:15006", want: &Mesh{Host: "orders.shop.svc", Port: 15006}},
		{name: "dns name folded, spaces trimmed", kind: "Component", value: " Orders.Shop.SVC:15006 ", want: &Mesh{Host: "orders.shop.svc", Port: 15006}},
		{name: "single label", kind: "Component", value: "orders:1", want: &Mesh{Host: "orders", Port: 1}},
		{name: "ipv6", kind: "Component", value: "[fd00::7]:65535", want: &Mesh{Host: "fd00::7", Port: 65535}},

		{name: "port zero", kind: "Component", value: "orders.svc:0", errMsg: `mesh address "orders.svc:0" has an invalid port`, fix: "1-65535"},
		{name: "port too big", kind: "Component", value: "orders.svc:65536", errMsg: "has an invalid port", fix: "1-65535"},
		{name: "port not a number", kind: "Component", value: "orders.svc:http", errMsg: "has an invalid port", fix: "1-65535"},
		{name: "port with a path", kind: "Component", value: "orders.svc:15006/x", errMsg: "has an invalid port", fix: "1-65535"},
		{name: "no port", kind: "Component", value: "orders.svc", errMsg: `mesh address "orders.svc" is not host:port`, fix: "orders.shop.svc:15006"},
		{name: "url", kind: "Component", value: "http://orders.svc:15006", errMsg: "is not host:port", fix: "inbound listener"},
		{name: "empty", kind: "Component", value: "", errMsg: `mesh address "" is not host:port`, fix: "inbound listener"},
		{name: "empty host", kind: "Component", value: ":15006", errMsg: `has an invalid host ""`, fix: "IP address or a DNS name"},
		{name: "bad host", kind: "Component", value: "bad_host:15006", errMsg: `has an invalid host "bad_host"`, fix: "IP address or a DNS name"},

		{name: "on an API", kind: "API", value: "orders.svc:15006", errMsg: "only a Component can be in the mesh (this is a API)", fix: "move the annotation to the Component"},
		{name: "on a Resource", kind: "Resource", value: "db.svc:5432", errMsg: "only a Component can be in the mesh (this is a Resource)", fix: "move the annotation"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := annotated(c.kind, AnnMeshAddress, c.value)
			p := ParseFile("files", "c.yaml", []byte(src))
			if c.want != nil {
				if len(p.Problems) != 0 || len(p.Entities) != 1 {
					t.Fatalf("problems %v, entities %d; want the entity and no problem", p.Problems, len(p.Entities))
				}
				if got := p.Entities[0].Mesh; !reflect.DeepEqual(got, c.want) {
					t.Fatalf("mesh = %+v; want %+v", got, c.want)
				}
				return
			}
			if len(p.Problems) != 1 {
				t.Fatalf("problems = %v; want one", p.Problems)
			}
			pr := p.Problems[0]
			if pr.Severity != SeverityError {
				t.Errorf("severity %q; want error", pr.Severity)
			}
			if pr.Field != "metadata.annotations["+AnnMeshAddress+"]" {
				t.Errorf("field = %q", pr.Field)
			}
			if !strings.Contains(pr.Message, c.errMsg) {
				t.Errorf("message = %q; want it to contain %q", pr.Message, c.errMsg)
			}
			if !strings.Contains(pr.Fix, c.fix) {
				t.Errorf("fix = %q; want it to contain %q", pr.Fix, c.fix)
			}
			if want := lineContaining(t, src, AnnMeshAddress+":"); pr.Line != want {
				t.Errorf("line = %d; want %d", pr.Line, want)
			}
			if want := strings.ToLower(c.kind) + ":default/orders"; pr.Entity != want || pr.File != "c.yaml" {
				t.Errorf("entity %q file %q; want %s in c.yaml", pr.Entity, pr.File, want)
			}
			if len(p.Entities) != 0 || len(p.Rejected) != 1 {
				t.Errorf("entities %d rejected %v; want the entity rejected", len(p.Entities), p.Rejected)
			}
		})
	}
}

// A Component without the annotation is not in the mesh.
func TestMeshAddressAbsent(t *testing.T) {
	p := ParseFile("files", "c.yaml", []byte(annotated("Component", AnnUpstream, "http://a:1")))
	if len(p.Problems) != 0 || len(p.Entities) != 1 || p.Entities[0].Mesh != nil {
		t.Fatalf("problems %v entities %d mesh %+v", p.Problems, len(p.Entities), p.Entities[0].Mesh)
	}
}

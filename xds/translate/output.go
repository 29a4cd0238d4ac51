package translate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"

	"github.com/gatehouse-dev/gatehouse/model"
)

// Section is one kind of a node's resources, as `gatehouse translate`
// prints them and the golden tests compare them (<case>.out.<Kind>.yaml).
type Section struct {
	Kind  string // listeners, routes, clusters or secrets
	Items []proto.Message
}

// Offline translates a model for a node as `gatehouse translate` prints
// it: the node's listeners, route configurations and clusters, then the
// SDS secrets they name (their contents, a sidecar's workload certificate
// and the mesh CA bundle, are issued per node by the running server; a
// secrets section is there only when something names one).
func Offline(m *model.Model, n Node, opts Options) ([]Section, error) {
	res, err := Translate(m, n, opts)
	if err != nil {
		return nil, err
	}
	secs := []Section{
		{Kind: "listeners", Items: messages(res.Listeners)},
		{Kind: "routes", Items: messages(res.Routes)},
		{Kind: "clusters", Items: messages(res.Clusters)},
	}
	var all []proto.Message
	for _, s := range secs {
		all = append(all, s.Items...)
	}
	if refs := secretRefs(all); len(refs) > 0 {
		secs = append(secs, Section{Kind: "secrets", Items: refs})
	}
	return secs, nil
}

func messages(rs []types.Resource) []proto.Message {
	out := make([]proto.Message, len(rs))
	for i, r := range rs {
		out[i] = r
	}
	return out
}

// YAML is the section as a YAML stream, one document per resource.
func (s Section) YAML() ([]byte, error) {
	var b bytes.Buffer
	for _, m := range s.Items {
		y, err := ToYAML(m)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.Kind, err)
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	return b.Bytes(), nil
}

// Write prints sections as "yaml" (each section's YAML stream under a
// "# <kind>" comment) or "json" (one object, a list per kind).
func Write(w io.Writer, secs []Section, format string) error {
	switch format {
	case "yaml":
		for _, s := range secs {
			y, err := s.YAML()
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintf(w, "# %s\n%s", s.Kind, y); err != nil {
				return err
			}
		}
		return nil
	case "json":
		return writeJSON(w, secs)
	default:
		return fmt.Errorf("unknown output format %q (fix: yaml or json)", format)
	}
}

func writeJSON(w io.Writer, secs []Section) error {
	var b bytes.Buffer
	b.WriteString("{")
	for i, s := range secs {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "%q:[", s.Kind)
		for j, m := range s.Items {
			if j > 0 {
				b.WriteString(",")
			}
			js, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
			if err != nil {
				return fmt.Errorf("%s: %w", s.Kind, err)
			}
			b.Write(js)
		}
		b.WriteString("]")
	}
	b.WriteString("}")
	var out bytes.Buffer
	if err := json.Indent(&out, b.Bytes(), "", "  "); err != nil {
		return err
	}
	out.WriteString("\n")
	_, err := w.Write(out.Bytes())
	return err
}

// ToYAML renders a protobuf message as YAML (via protojson, so field names
// and Any types read as in Envoy's docs).
func ToYAML(m proto.Message) ([]byte, error) {
	j, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		return nil, err
	}
	return yaml.JSONToYAML(j)
}

// secretRefs are the SDS secrets the messages name (in typed configs too),
// one per name, sorted by name.
func secretRefs(msgs []proto.Message) []proto.Message {
	byName := map[string]*tlsv3.SdsSecretConfig{}
	for _, m := range msgs {
		walkSDS(m.ProtoReflect(), byName)
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	slices.SortFunc(names, strings.Compare)
	out := make([]proto.Message, len(names))
	for i, n := range names {
		out[i] = byName[n]
	}
	return out
}

func walkSDS(m protoreflect.Message, found map[string]*tlsv3.SdsSecretConfig) {
	switch v := m.Interface().(type) {
	case *tlsv3.SdsSecretConfig:
		found[v.GetName()] = v
		return
	case *anypb.Any:
		if inner, err := v.UnmarshalNew(); err == nil {
			walkSDS(inner.ProtoReflect(), found)
		}
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			for i := 0; i < v.List().Len(); i++ {
				walkSDS(v.List().Get(i).Message(), found)
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				walkSDS(mv.Message(), found)
				return true
			})
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			walkSDS(v.Message(), found)
		}
		return true
	})
}

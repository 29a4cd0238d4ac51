package xds

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/proto"
	"gopkg.in/yaml.v3"

	"github.com/gatehouse-dev/gatehouse/internal/golden"
	"github.com/gatehouse-dev/gatehouse/model"
)

// translateCase is a test input: a model and the node it is translated for.
type translateCase struct {
	Node struct {
		ID         string `yaml:"id"`
		Role       string `yaml:"role"`
		ListenPort uint32 `yaml:"listenPort"`
		Sidecar    *struct {
			Component      string `yaml:"component"`
			AppPort        uint32 `yaml:"appPort"`
			InboundPort    uint32 `yaml:"inboundPort"`
			InboundAddress string `yaml:"inboundAddress"`
			OutboundPort   uint32 `yaml:"outboundPort"`
		} `yaml:"sidecar"`
	} `yaml:"node"`
	// Options: settings on top of DefaultOptions.
	Options struct {
		TrustDomain          string         `yaml:"trustDomain"`
		MeshCertTTL          model.Duration `yaml:"meshCertTTL"`
		CredentialCookie     string         `yaml:"credentialCookie"`
		RemoveRequestHeaders []string       `yaml:"removeRequestHeaders"`
	} `yaml:"options"`
	Model model.Model `yaml:"model"`
	// Error, when set, is a substring of the error Translate must return.
	Error string `yaml:"error"`
}

// TestTranslateGolden: testdata/<case>.in.yaml translates to
// <case>.out.{listeners,routes,clusters}.yaml.
func TestTranslateGolden(t *testing.T) {
	cases := golden.Cases(t, "testdata")
	golden.RemoveStale(t, "testdata", cases)
	for _, name := range cases {
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata", name+".in.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			var tc translateCase
			if err := yaml.Unmarshal(raw, &tc); err != nil {
				t.Fatalf("%s.in.yaml: %v", name, err)
			}
			before := model.ContentVersion(&tc.Model)
			opts := DefaultOptions()
			opts.TrustDomain, opts.MeshCertTTL = tc.Options.TrustDomain, tc.Options.MeshCertTTL.Std()
			opts.CredentialCookie = tc.Options.CredentialCookie
			if tc.Options.RemoveRequestHeaders != nil {
				opts.RemoveRequestHeaders = tc.Options.RemoveRequestHeaders
			}
			n := Node{ID: tc.Node.ID, Role: tc.Node.Role, ListenPort: tc.Node.ListenPort}
			if sc := tc.Node.Sidecar; sc != nil {
				n.Sidecar = &Sidecar{Component: sc.Component, AppPort: sc.AppPort, InboundPort: sc.InboundPort, InboundAddress: sc.InboundAddress, OutboundPort: sc.OutboundPort}
			}
			res, err := Translate(&tc.Model, n, opts)
			if tc.Error != "" {
				if err == nil || !strings.Contains(err.Error(), tc.Error) {
					t.Fatalf("want error containing %q, got %v", tc.Error, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if model.ContentVersion(&tc.Model) != before {
				t.Fatal("Translate modified its input model")
			}
			for kind, items := range map[string][]types.Resource{"listeners": res.Listeners, "routes": res.Routes, "clusters": res.Clusters} {
				golden.Assert(t, filepath.Join("testdata", name+".out."+kind+".yaml"), resourcesYAML(t, items))
			}
			// Every resource passes Envoy's own proto validation rules.
			for _, items := range [][]types.Resource{res.Listeners, res.Routes, res.Clusters} {
				for _, r := range items {
					if v, ok := r.(interface{ ValidateAll() error }); ok {
						if err := v.ValidateAll(); err != nil {
							t.Errorf("invalid resource: %v", err)
						}
					}
				}
			}
			// The config built from them is consistent and versioned by content.
			s1, err := buildConfig(res)
			if err != nil {
				t.Fatal(err)
			}
			n.ID = "another-node"
			res2, _ := Translate(&tc.Model, n, opts)
			s2, err := buildConfig(res2)
			if err != nil {
				t.Fatal(err)
			}
			for _, typ := range []string{"type.googleapis.com/envoy.config.listener.v3.Listener", "type.googleapis.com/envoy.config.cluster.v3.Cluster"} {
				if s1.sets[typ].version != s2.sets[typ].version {
					t.Errorf("%s version differs between two translations of one model: %s vs %s", typ, s1.sets[typ].version, s2.sets[typ].version)
				}
			}
		})
	}
}

func resourcesYAML(t *testing.T, items []types.Resource) []byte {
	t.Helper()
	var b strings.Builder
	for _, r := range items {
		y, err := ToYAML(r.(proto.Message))
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	return []byte(b.String())
}

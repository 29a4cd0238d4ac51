package xds

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"gopkg.in/yaml.v3"

	cs "github.com/gatehouse-dev/gatehouse/catalogsync"
	"github.com/gatehouse-dev/gatehouse/internal/golden"
	"github.com/gatehouse-dev/gatehouse/model"
	"github.com/gatehouse-dev/gatehouse/model/compile"
	"github.com/gatehouse-dev/gatehouse/xds/translate"
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
		SignInAddress        string         `yaml:"signInAddress"`
		ExchangeAddress      string         `yaml:"exchangeAddress"`
		RemoveRequestHeaders []string       `yaml:"removeRequestHeaders"`
	} `yaml:"options"`
	Model model.Model `yaml:"model"`
	// Catalog, instead of Model: catalog-info.yaml entities, compiled as
	// gatehouse serves them (its problems go to <case>.out.problems.txt).
	Catalog string `yaml:"catalog"`
	// Error, when set, is a substring of the error Translate must return.
	Error string `yaml:"error"`
}

// TestTranslateGolden: testdata/<case>.in.yaml translates to
// <case>.out.{listeners,routes,clusters,secrets}.yaml, through
// translate.Offline, the function `gatehouse translate` prints.
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
			if tc.Catalog != "" {
				tc.Model = compileGoldenCatalog(t, name, tc.Catalog)
			}
			before := model.ContentVersion(&tc.Model)
			opts := DefaultOptions()
			opts.TrustDomain, opts.MeshCertTTL = tc.Options.TrustDomain, tc.Options.MeshCertTTL.Std()
			opts.CredentialCookie, opts.SignInAddress = tc.Options.CredentialCookie, tc.Options.SignInAddress
			opts.ExchangeAddress = tc.Options.ExchangeAddress
			if tc.Options.RemoveRequestHeaders != nil {
				opts.RemoveRequestHeaders = tc.Options.RemoveRequestHeaders
			}
			n := Node{ID: tc.Node.ID, Role: tc.Node.Role, ListenPort: tc.Node.ListenPort}
			if sc := tc.Node.Sidecar; sc != nil {
				n.Sidecar = &Sidecar{Component: sc.Component, AppPort: sc.AppPort, InboundPort: sc.InboundPort, InboundAddress: sc.InboundAddress, OutboundPort: sc.OutboundPort}
			}
			secs, err := translate.Offline(&tc.Model, n, opts)
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
			for _, sec := range secs {
				y, err := sec.YAML()
				if err != nil {
					t.Fatal(err)
				}
				golden.Assert(t, filepath.Join("testdata", name+".out."+sec.Kind+".yaml"), y)
			}
			res, err := Translate(&tc.Model, n, opts)
			if err != nil {
				t.Fatal(err)
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

// compileGoldenCatalog compiles a case's catalog as gatehouse serves one;
// its problems (a route conflict, say) are golden too.
func compileGoldenCatalog(t *testing.T, name, src string) model.Model {
	t.Helper()
	parsed := cs.ParseFile("files", "catalog-info.yaml", []byte(src))
	snap := cs.NewStore("files").ReplaceSource("files", parsed)
	m, problems := compile.Compile(snap)
	var b strings.Builder
	for _, p := range append(append(parsed.Problems, snap.Problems...), problems...) {
		b.WriteString(p.String() + "\n")
	}
	golden.Assert(t, filepath.Join("testdata", name+".out.problems.txt"), []byte(b.String()))
	return *m
}

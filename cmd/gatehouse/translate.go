package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	cs "github.com/gatehouse-dev/gatehouse/catalogsync"
	"github.com/gatehouse-dev/gatehouse/examples"
	"github.com/gatehouse-dev/gatehouse/xds"
	"github.com/gatehouse-dev/gatehouse/xds/translate"
)

// translateFlags are what `gatehouse translate` is told about the node.
type translateFlags struct {
	cfgPath, role, nodeID, component, trustDomain, output string
	catalog                                               []string
	port, appPort                                         uint16
}

func translateCmd() *cobra.Command {
	var f translateFlags
	cmd := &cobra.Command{
		Use:   "translate [--catalog PATH] [--role edge|sidecar] [--component REF] [--port N] [--output yaml|json]",
		Short: "Print the Envoy resources gatehouse would serve a node, offline (no server, no Envoy)",
		Long: `Print the listeners, route configurations and clusters that gatehouse's ADS
server sends one Envoy for a catalog, and the SDS secrets they name (a
sidecar's certificate and CA bundle are issued per node by the running
server, so only their names are printed). Compile problems go to stderr.
The catalog is --catalog, else catalog.files of --config, else the example
catalog built into gatehouse.`,
		Example: `  # the edge's configuration for the example catalog built into gatehouse
  gatehouse translate
  # an edge listening on 8443, for your catalog, as JSON
  gatehouse translate --catalog catalog/ --port 8443 --output json
  # a sidecar of orders (the mesh needs a trust domain: --trust-domain or mesh.trust_domain)
  gatehouse translate --catalog catalog/ --role sidecar --component component:shop/orders \
    --app-port 8080 --trust-domain example.org
  # what a catalog change does to Envoy's configuration
  diff <(gatehouse translate --catalog old/) <(gatehouse translate --catalog new/)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runTranslate(cmd, f) },
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.cfgPath, "config", "c", "", "configuration file (edge, authz and mesh settings; catalog.files)")
	fl.StringSliceVar(&f.catalog, "catalog", nil, "catalog files, directories or globs (overrides catalog.files)")
	fl.StringVar(&f.role, "role", xds.RoleEdge, "node role: edge or sidecar")
	fl.StringVar(&f.nodeID, "node-id", "translate", "Envoy node id (appears only in errors)")
	fl.StringVar(&f.component, "component", "", "sidecar: the Component it fronts, e.g. component:default/orders")
	fl.Uint16Var(&f.port, "port", 0, "the port the node listens on: edge listener (default edge.port), sidecar inbound (default 15006)")
	fl.Uint16Var(&f.appPort, "app-port", 0, "sidecar: the port the application listens on at 127.0.0.1")
	fl.StringVar(&f.trustDomain, "trust-domain", "", "sidecar: the mesh's SPIFFE trust domain (default mesh.trust_domain)")
	fl.StringVarP(&f.output, "output", "o", "yaml", "output format: yaml or json")
	return cmd
}

func runTranslate(cmd *cobra.Command, f translateFlags) error {
	if f.output != "yaml" && f.output != "json" {
		return fmt.Errorf("--output %q: use yaml or json", f.output)
	}
	cfg, err := loadConfig(f.cfgPath)
	if err != nil {
		return err
	}
	opts := xdsOptions(cfg)
	if opts.AuthzAddress == "" {
		opts.AuthzAddress = cfg.Authz.Listen
	}
	if f.trustDomain != "" {
		// As serve enables the mesh: certificates of mesh.cert_ttl.
		opts.TrustDomain, opts.MeshCertTTL = f.trustDomain, cfg.Mesh.CertTTL
	}
	n, err := translateNode(f)
	if err != nil {
		return err
	}
	src := &cs.FileSource{Name: "files", Paths: f.catalog}
	if len(src.Paths) == 0 {
		src.Paths = cfg.Catalog.Files
	}
	if len(src.Paths) == 0 {
		src = &cs.FileSource{Name: "embedded", FS: examples.DefaultCatalog, Paths: []string{examples.DefaultCatalogRoot}}
	}
	m, _, problems := compileCatalog(src)
	for _, p := range problems {
		fmt.Fprintln(cmd.ErrOrStderr(), p.String())
	}
	secs, err := translate.Offline(m, n, opts)
	if err != nil {
		return err
	}
	return translate.Write(cmd.OutOrStdout(), secs, f.output)
}

// translateNode is the node the flags describe, as the ADS server reads
// one from its bootstrap's metadata.
func translateNode(f translateFlags) (xds.Node, error) {
	n := xds.Node{ID: f.nodeID, Role: f.role}
	switch f.role {
	case xds.RoleEdge:
		n.ListenPort = uint32(f.port)
	case xds.RoleSidecar:
		if f.appPort == 0 {
			return n, fmt.Errorf("--app-port is required for a sidecar: the port the application listens on at 127.0.0.1")
		}
		sc := &xds.Sidecar{Component: strings.ToLower(f.component), AppPort: uint32(f.appPort),
			InboundPort: uint32(f.port), OutboundPort: xds.DefaultOutboundPort}
		if sc.InboundPort == 0 {
			sc.InboundPort = xds.DefaultInboundPort
		}
		n.Sidecar = sc
	default:
		return n, fmt.Errorf("--role %q: use %s or %s", f.role, xds.RoleEdge, xds.RoleSidecar)
	}
	return n, nil
}

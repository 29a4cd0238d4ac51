package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/gatehouse-dev/gatehouse/xds"
)

func bootstrapCmd() *cobra.Command {
	var o xds.BootstrapOptions
	var adminPort, listenPort, appPort, inPort, outPort uint16
	var tls xds.UpstreamTLS
	cmd := &cobra.Command{
		Use:   "bootstrap",
		Short: "Print an Envoy bootstrap that takes its configuration from gatehouse",
		Example: `  gatehouse bootstrap --role edge --node-id edge-1 --xds-address 127.0.0.1:18000 > edge.yaml
  envoy -c edge.yaml
  # delta xDS, and a listener port of its own
  gatehouse bootstrap --role edge --node-id edge-2 --delta --listen-port 10001
  # two gatehouse replicas: the xDS cluster lists both, health-checked
  gatehouse bootstrap --node-id edge-3 --xds-address 10.0.0.5:18000 --xds-address 10.0.0.6:18000
  # a mesh sidecar in front of the orders Component's application on port 8080
  gatehouse bootstrap --role sidecar --node-id orders-7f9c --component component:default/orders --app-port 8080`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.AdminPort, o.ListenPort = uint32(adminPort), uint32(listenPort)
			o.Sidecar.AppPort, o.Sidecar.InboundPort, o.Sidecar.OutboundPort = uint32(appPort), uint32(inPort), uint32(outPort)
			if tls.CAFile != "" {
				o.XDSTLS = &tls
			} else if tls.CertFile != "" || tls.ServerName != "" {
				return fmt.Errorf("--xds-cert and --xds-server-name need --xds-ca (the CA that signed gatehouse's xDS certificate)")
			}
			b, err := xds.Bootstrap(o)
			if err != nil {
				return err
			}
			y, err := xds.ToYAML(b)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(y)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Role, "role", xds.RoleEdge, "node role: edge or sidecar")
	f.StringVar(&o.NodeID, "node-id", "edge-1", "Envoy node id (unique per Envoy)")
	f.StringVar(&o.Cluster, "cluster", "", "Envoy service cluster (default gatehouse-<role>)")
	f.StringSliceVar(&o.XDSAddresses, "xds-address", []string{"127.0.0.1:18000"}, "gatehouse xDS address host:port; repeat it (or separate with commas) for every replica")
	f.BoolVar(&o.Delta, "delta", false, "use delta xDS (DELTA_GRPC) instead of state of the world")
	f.Uint16Var(&adminPort, "admin-port", 9901, "Envoy admin port (bound to 127.0.0.1)")
	f.Uint16Var(&listenPort, "listen-port", 0, "edge listener port for this Envoy (default: gatehouse's edge.port)")
	f.StringVar(&o.Sidecar.Component, "component", "", "sidecar: the Component it fronts, e.g. component:default/orders")
	f.Uint16Var(&appPort, "app-port", 0, "sidecar: the port the application listens on at 127.0.0.1")
	f.Uint16Var(&inPort, "inbound-port", xds.DefaultInboundPort, "sidecar: the mTLS inbound listener's port (other sidecars call it)")
	f.Uint16Var(&outPort, "outbound-port", xds.DefaultOutboundPort, "sidecar: the outbound listener's port on 127.0.0.1 (the application calls it)")
	f.StringVar(&o.Sidecar.InboundAddress, "inbound-address", "", "sidecar: the address the inbound listener binds (default 0.0.0.0)")
	f.StringVar(&tls.CAFile, "xds-ca", "", "TLS to gatehouse's xDS listener: CA file (path on the Envoy host)")
	f.StringVar(&tls.CertFile, "xds-cert", "", "mutual TLS: the Envoy's client certificate file")
	f.StringVar(&tls.KeyFile, "xds-key", "", "mutual TLS: the Envoy's client key file")
	f.StringVar(&tls.ServerName, "xds-server-name", "", "SNI and the DNS name gatehouse's certificate must carry")
	return cmd
}

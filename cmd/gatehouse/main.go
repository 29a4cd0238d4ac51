// Command gatehouse is the control plane: it reads the service catalog,
// serves Envoy configuration over xDS and answers operators.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// Set by the linker: -X main.version=...
var version = "dev"

func main() {
	if err := rootCmd().Execute(); err != nil {
		var ec exitCode
		if asExit(err, &ec) {
			os.Exit(int(ec))
		}
		fmt.Fprintln(os.Stderr, "gatehouse:", err)
		os.Exit(2)
	}
}

func rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "gatehouse",
		Short:         "Catalog-driven Envoy control plane with identity-aware access control",
		Version:       version, // gatehouse --version, -v
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("gatehouse {{.Version}}\n")
	root.AddCommand(serveCmd(), validateCmd(), bootstrapCmd(), translateCmd(), explainCmd(), tokenCmd(), versionCmd())
	return root
}

// exitCode is returned by commands that already printed what went wrong.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit %d", int(e)) }

func asExit(err error, ec *exitCode) bool {
	e, ok := err.(exitCode)
	if ok {
		*ec = e
	}
	return ok
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the gatehouse version",
		Example: `  gatehouse version
  gatehouse --version`,
		Args: cobra.NoArgs,
		Run:  func(cmd *cobra.Command, _ []string) { fmt.Fprintln(cmd.OutOrStdout(), "gatehouse", version) },
	}
}

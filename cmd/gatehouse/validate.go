package main

import (
	"fmt"

	"github.com/spf13/cobra"

	cs "github.com/gatehouse-dev/gatehouse/catalogsync"
	"github.com/gatehouse-dev/gatehouse/model"
	"github.com/gatehouse-dev/gatehouse/model/compile"
)

func validateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "validate PATH...",
		Short: "Check catalog files; print every problem with file, line and fix (exit 1 on errors)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, snap, all := compileCatalog(&cs.FileSource{Name: "files", Paths: args})
			out := cmd.OutOrStdout()
			for _, p := range all {
				fmt.Fprintln(out, p.String())
			}
			routes := 0
			for _, vh := range m.VirtualHosts {
				routes += len(vh.Routes)
			}
			errs := all.Errors()
			mesh := ""
			if len(m.Mesh) > 0 {
				mesh = fmt.Sprintf(", %d mesh components", len(m.Mesh))
			}
			fmt.Fprintf(out, "%d entities, %d routes, %d clusters%s; %d errors, %d warnings\n",
				len(snap.All()), routes, len(m.Clusters), mesh, errs, len(all)-errs)
			if errs > 0 {
				return exitCode(1)
			}
			return nil
		},
	}
}

// compileCatalog reads a catalog once and compiles it as serve does; the
// problems are the files' and the compiler's.
func compileCatalog(src *cs.FileSource) (*model.Model, *cs.Snapshot, cs.Problems) {
	parsed, _ := src.Load()
	snap := cs.NewStore(src.Name).ReplaceSource(src.Name, parsed)
	m, problems := compile.Compile(snap)
	return m, snap, append(append(cs.Problems(nil), snap.Problems...), problems...)
}

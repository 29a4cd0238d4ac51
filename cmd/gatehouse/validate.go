package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	cs "github.com/gatehouse-dev/gatehouse/catalogsync"
	"github.com/gatehouse-dev/gatehouse/model"
	"github.com/gatehouse-dev/gatehouse/model/compile"
)

func validateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "validate PATH...",
		Short: "Check catalog files; print every problem with file, line and fix (exit 1 on errors)",
		Example: `  gatehouse validate catalog/
  gatehouse validate catalog-info.yaml 'teams/*.yaml'
  # in CI: fail the build on errors, keep the report
  gatehouse validate catalog/ | tee validate.txt`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, snap, all := compileCatalog(&cs.FileSource{Name: "files", Paths: args, PathsFrom: "the command line"})
			all.Sort()
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
				mesh = ", " + count(len(m.Mesh), "mesh component")
			}
			fmt.Fprintf(out, "%s, %s, %s%s; %s, %s\n", count(len(snap.All()), "entity"), count(routes, "route"),
				count(len(m.Clusters), "cluster"), mesh, count(errs, "error"), count(len(all)-errs, "warning"))
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

// count writes n and the noun, plural unless n is 1 ("1 route", "2 routes",
// "3 entities").
func count(n int, noun string) string {
	if n != 1 {
		if strings.HasSuffix(noun, "y") {
			noun = strings.TrimSuffix(noun, "y") + "ie"
		}
		noun += "s"
	}
	return fmt.Sprintf("%d %s", n, noun)
}

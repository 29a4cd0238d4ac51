// Command catgen writes a synthetic catalog (package catgen) into a
// directory, as org.yaml and components-NNNN.yaml shards, or to stdout.
//
//	go run ./bench/catgen/cmd/catgen -components 10000 -out /tmp/cat10k
//	go run ./cmd/gatehouse validate /tmp/cat10k
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/gatehouse-dev/gatehouse/bench/catgen"
)

func main() {
	var o catgen.Options
	flag.IntVar(&o.Components, "components", 1000, "routed components")
	flag.IntVar(&o.APIsPerComponent, "apis", 1, "APIs provided per component, each with its own route (-1: none)")
	flag.IntVar(&o.Groups, "groups", 0, "groups (default components/10)")
	flag.IntVar(&o.Users, "users", 0, "users (default = components)")
	flag.Int64Var(&o.Seed, "seed", 1, "random seed")
	flag.IntVar(&o.ShardSize, "shard", 100, "components per file")
	out := flag.String("out", "", "directory to write (default: one YAML stream on stdout)")
	flag.Parse()
	c := catgen.New(o)
	if *out == "" {
		os.Stdout.Write(c.YAML())
		return
	}
	files, err := c.WriteDir(*out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "catgen:", err)
		os.Exit(1)
	}
	o = c.Options()
	fmt.Fprintf(os.Stderr, "catgen: %d files in %s: %d components, %d APIs, %d groups, %d users, %d routes expected\n",
		len(files), *out, o.Components, o.Components*o.APIsPerComponent, o.Groups, o.Users, c.Routes())
}

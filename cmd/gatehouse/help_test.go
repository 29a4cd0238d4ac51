package main

import (
	"bytes"
	"strings"
	"testing"
)

// gatehouse --version (and -v) prints the version as gatehouse version
// does; it was an unknown flag.
func TestVersionFlag(t *testing.T) {
	for _, arg := range []string{"--version", "-v", "version"} {
		root := rootCmd()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetArgs([]string{arg})
		if err := root.Execute(); err != nil || out.String() != "gatehouse "+version+"\n" {
			t.Errorf("%s: %q, %v", arg, out.String(), err)
		}
	}
}

// Every subcommand's help shows examples.
func TestEverySubcommandHasExamples(t *testing.T) {
	for _, c := range rootCmd().Commands() {
		if c.Name() == "help" || c.Name() == "completion" {
			continue
		}
		if !strings.Contains(c.Example, "gatehouse "+c.Name()) {
			t.Errorf("gatehouse %s --help has no example of itself", c.Name())
		}
	}
}

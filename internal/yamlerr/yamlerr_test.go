package yamlerr

import (
	"testing"

	"gopkg.in/yaml.v3"
)

func TestSyntaxLine(t *testing.T) {
	cases := []struct {
		src  string
		line int
	}{
		{"# comment\nedge: [1\n", 2},                // parser error: yaml.v3 says line 1
		{"edge: {port: 1\n", 1},                     // parser error on line 1: yaml.v3 gives no line
		{"xds:\n  listen: [\n", 2},                  // found at the end of the input
		{"log:\nlevel: debug\n  format: json\n", 3}, // scanner error: already right
		{"xds:\n\tlisten: x\n", 2},
		{"a: 1\nb: \"open\n\n\n", 2},
	}
	for _, c := range cases {
		var n yaml.Node
		err := yaml.Unmarshal([]byte(c.src), &n)
		if err == nil {
			t.Fatalf("%q parses", c.src)
		}
		if line, msg := Syntax(err, []byte(c.src)); line != c.line || msg == "" || msg[:5] == "yaml:" {
			t.Errorf("%q: line %d msg %q (yaml.v3: %v); want line %d", c.src, line, msg, err, c.line)
		}
	}
}

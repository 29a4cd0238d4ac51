package catalogsync

import (
	"encoding/json"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// jsonNode reads JSON that was not validated first: it must reject what
// encoding/json rejects, with an error (never a panic or a hang), and accept
// what it accepts.
var jsonValidity = []struct {
	in    string
	valid bool
}{
	{``, false}, {` `, false}, {`{`, false}, {`[`, false}, {`}`, false}, {`]`, false}, {`@`, false},
	{`"abc`, false}, {`"a\`, false}, {`"a\x"`, false}, {`"\u12"`, false}, {`"\u12g4"`, false}, {"\"a\tb\"", false}, {"\"a\nb\"", false},
	{`{"a":}`, false}, {`{"a" 1}`, false}, {`{"a":1,}`, false}, {`{,}`, false}, {`{"a":1 "b":2}`, false}, {`{"a"}`, false}, {`{a:1}`, false}, {`{1:1}`, false},
	{`[1,]`, false}, {`[,1]`, false}, {`[1 2]`, false}, {`[1,,2]`, false}, {`[1}`, false}, {`{"a":1]`, false}, {`{"a":[1,2,{"b":`, false},
	{`t`, false}, {`tru`, false}, {`nul`, false}, {`nulll`, false}, {`True`, false}, {`falsey`, false},
	{`-`, false}, {`+1`, false}, {`01`, false}, {`1.`, false}, {`.5`, false}, {`1e`, false}, {`1e+`, false}, {`-a`, false}, {`0x1`, false}, {`1.5.2`, false},
	{`{"a":1}{}`, false}, {`1 2`, false}, {`"a" "b"`, false}, {`[]]`, false},
	{strings.Repeat("[", 10001) + strings.Repeat("]", 10001), false},

	{`{}`, true}, {`[]`, true}, {` { } `, true}, {"\t[\r\n]\n", true}, {`""`, true}, {`"a\"b\\c\/d\b\f\n\r\t\u00e9"`, true}, {"\"caf\xc3\xa9\"", true}, {"\"\xff\"", true},
	{`{"a":1,"b":[true,false,null],"c":{"d":"e"}}`, true}, {`[1,[2,[3,[]]],{}]`, true}, {`{"a":{"a":{"a":{}}}}`, true},
	{`0`, true}, {`-0`, true}, {`7`, true}, {`-12`, true}, {`1.5`, true}, {`1.5e3`, true}, {`1E-2`, true}, {`0.25`, true}, {`10e+10`, true},
	{`true`, true}, {`false`, true}, {`null`, true},
	{strings.Repeat("[", 10000) + strings.Repeat("]", 10000), true},
}

func TestJSONNodeRejectsMalformed(t *testing.T) {
	for _, c := range jsonValidity {
		name := c.in
		if len(name) > 40 {
			name = name[:40] + "..."
		}
		if json.Valid([]byte(c.in)) != c.valid {
			t.Fatalf("table: encoding/json says %q valid=%v", name, !c.valid)
		}
		n, err := jsonNode([]byte(c.in))
		switch {
		case c.valid && (err != nil || n == nil):
			t.Errorf("jsonNode(%q) rejected valid JSON: %v", name, err)
		case !c.valid && err == nil:
			t.Errorf("jsonNode(%q) accepted malformed JSON", name)
		}
	}
}

// FuzzJSONNode: jsonNode accepts exactly what json.Valid accepts, and a
// string it reads is the string encoding/json reads.
func FuzzJSONNode(f *testing.F) {
	for _, c := range jsonValidity {
		if len(c.in) < 1000 {
			f.Add([]byte(c.in))
		}
	}
	f.Add([]byte(`{"kind":"Component","metadata":{"name":"a","annotations":{"x":"caf\u00e9 \"q\""}},"spec":{"n":-1.5e3}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := jsonNode(data)
		if valid := json.Valid(data); valid != (err == nil) {
			t.Fatalf("jsonNode(%q): error %v; json.Valid says %v", data, err, valid)
		}
		if err != nil || n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
			return
		}
		var want string
		if err := json.Unmarshal(data, &want); err != nil || n.Value != want {
			t.Fatalf("jsonNode(%q) read %q; encoding/json %q (%v)", data, n.Value, want, err)
		}
	})
}

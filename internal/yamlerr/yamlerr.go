// Package yamlerr finds the line of a YAML syntax error from yaml.v3
// (gopkg.in/yaml.v3 and go.yaml.in/yaml/v3, which viper uses).
//
// yaml.v3 numbers lines from 1 for errors of libyaml's scanner but from 0
// for errors of its parser ("did not find expected ',' or ']'"), so a
// parser error on line 2 says "line 1", and one on line 1 has no line.
package yamlerr

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
)

var lineRe = regexp.MustCompile(`^(?:yaml: )?(?:line (\d+): )?`)

// parserProblems are the messages of libyaml's parser errors (parserc.go);
// every other syntax error comes from its scanner.
var parserProblems = []string{
	"did not find expected <", "did not find expected key", "did not find expected node content",
	"did not find expected '-' indicator", "did not find expected ',' or",
	"found duplicate %", "found incompatible YAML document", "found undefined tag handle",
}

// Syntax returns the 1-based line in src of a yaml.v3 syntax error and the
// message without its "yaml: line N: " prefix. An error found at the end of
// the input is placed on src's last non-blank line. Line is 0 when the
// error carries no line and is not a parser error.
func Syntax(err error, src []byte) (line int, msg string) {
	text := err.Error()
	m := lineRe.FindStringSubmatch(text)
	msg = text[len(m[0]):]
	if m[1] != "" {
		line, _ = strconv.Atoi(m[1])
	}
	for _, p := range parserProblems {
		if strings.HasPrefix(msg, p) {
			line++
			break
		}
	}
	if last := lastLine(src); line > last {
		line = last
	}
	return line, msg
}

// lastLine is the number of the last line of src that is not blank.
func lastLine(src []byte) int {
	src = bytes.TrimRight(src, " \t\r\n")
	if len(src) == 0 {
		return 1
	}
	return bytes.Count(src, []byte("\n")) + 1
}

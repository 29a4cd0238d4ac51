package catalogsync

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/gatehouse-dev/gatehouse/internal/yamlerr"
)

// Parsed is the outcome of reading one catalog file: the valid entities, and
// the problems found. An entity with an error-severity problem is not in
// Entities; Rejected lists the refs of those (when the ref could be read), so
// a store can keep their last good version.
type Parsed struct {
	Entities []*Entity
	Rejected []Ref
	Problems Problems
	// ReadErrors counts files that could not be read (file source).
	ReadErrors int
}

// ParseFile reads a multi-document YAML catalog file. Each document is parsed
// and validated on its own: one broken entity never hides the others. file is
// used for positions in problems; source names the catalog source.
func ParseFile(source, file string, data []byte) Parsed {
	var out Parsed
	for _, chunk := range splitDocuments(data) {
		var doc yaml.Node
		if err := yaml.Unmarshal(chunk.text, &doc); err != nil {
			// A syntax error spoils only its own document: the file is split
			// on document markers first, so the others still parse.
			line, _ := yamlerr.Syntax(err, chunk.text)
			if line > 0 {
				line += chunk.line - 1
			} else {
				line = chunk.line
			}
			p := Problem{Severity: SeverityError, Source: source, File: file, Line: line,
				Message: "invalid YAML: " + strings.TrimSpace(yamlLineRe.ReplaceAllString(trimYAMLErr(err), "")),
				Fix:     "fix the YAML syntax of this document"}
			if r, ok := guessRef(chunk.text); ok {
				p.Entity = r.String()
				out.Rejected = append(out.Rejected, r)
			}
			out.Problems = append(out.Problems, p)
			continue
		}
		if len(doc.Content) == 0 {
			continue // empty document (e.g. a trailing ---)
		}
		shiftLines(&doc, chunk.line-1)
		e, probs := parseDocument(source, file, doc.Content[0])
		out.Problems = append(out.Problems, probs...)
		if e == nil {
			continue
		}
		if _, known := kindByLower[strings.ToLower(e.Kind)]; !known {
			continue // reported as a warning; gatehouse does not read other kinds
		}
		if Problems(probs).Errors() > 0 {
			if e.Kind != "" && e.Metadata.Name != "" {
				out.Rejected = append(out.Rejected, e.Ref())
			}
			continue
		}
		out.Entities = append(out.Entities, e)
	}
	return out
}

type docChunk struct {
	text []byte
	line int // 1-based line of the chunk's first line in the file
}

// splitDocuments splits a multi-document YAML file on "---" lines at column
// 0 (a document marker cannot appear there inside a block of an entity).
func splitDocuments(data []byte) []docChunk {
	var out []docChunk
	lines := bytes.SplitAfter(data, []byte("\n"))
	cur := docChunk{line: 1}
	var buf bytes.Buffer
	for i, l := range lines {
		t := bytes.TrimRight(l, " \t\r\n")
		if bytes.Equal(t, []byte("---")) || bytes.HasPrefix(t, []byte("--- ")) {
			if buf.Len() > 0 {
				cur.text = append([]byte(nil), buf.Bytes()...)
				out = append(out, cur)
			}
			buf.Reset()
			cur = docChunk{line: i + 2}
			continue
		}
		if bytes.Equal(t, []byte("...")) {
			continue
		}
		buf.Write(l)
	}
	if len(bytes.TrimSpace(buf.Bytes())) > 0 {
		cur.text = buf.Bytes()
		out = append(out, cur)
	}
	return out
}

func shiftLines(n *yaml.Node, by int) {
	if by == 0 {
		return
	}
	n.Line += by
	for _, c := range n.Content {
		shiftLines(c, by)
	}
}

var (
	guessKind = regexp.MustCompile(`(?m)^kind:\s*["']?([A-Za-z]+)`)
	guessName = regexp.MustCompile(`(?m)^\s+name:\s*["']?([A-Za-z0-9._-]+)`)
	guessNS   = regexp.MustCompile(`(?m)^\s+namespace:\s*["']?([A-Za-z0-9._-]+)`)
)

// guessRef finds the kind and name of a document that does not parse, so
// that the last good version of that entity can be kept.
func guessRef(text []byte) (Ref, bool) {
	k := guessKind.FindSubmatch(text)
	n := guessName.FindSubmatch(text)
	if k == nil || n == nil {
		return Ref{}, false
	}
	ns := DefaultNamespace
	if m := guessNS.FindSubmatch(text); m != nil {
		ns = string(m[1])
	}
	return Ref{Kind: canonicalKind(string(k[1])), Namespace: ns, Name: string(n[1])}, true
}

// parseDocument decodes and validates one YAML document. It returns the entity
// (possibly partially filled, for its ref) and its problems.
func parseDocument(source, file string, n *yaml.Node) (*Entity, Problems) {
	at := func(line int, field, msg, fix string) Problem {
		return Problem{Severity: SeverityError, Source: source, File: file, Line: line, Field: field, Message: msg, Fix: fix}
	}
	if n.Kind != yaml.MappingNode {
		return nil, Problems{at(n.Line, "", "a catalog document must be a mapping with apiVersion, kind, metadata and spec",
			"write the document as a YAML mapping (apiVersion: backstage.io/v1alpha1, kind: ..., metadata: ..., spec: ...)")}
	}
	e := &Entity{Origin: Origin{Source: source, File: file, Line: n.Line}}
	if err := n.Decode(e); err != nil {
		if p, ok := duplicateKey(n, err, at, e); ok {
			return e, Problems{p}
		}
		// Decode the header alone so the problem can name the entity.
		var hdr struct {
			Kind     string `yaml:"kind"`
			Metadata struct {
				Name      string `yaml:"name"`
				Namespace string `yaml:"namespace"`
			} `yaml:"metadata"`
		}
		_ = n.Decode(&hdr)
		e = &Entity{Kind: hdr.Kind, Origin: e.Origin}
		e.Metadata.Name, e.Metadata.Namespace = hdr.Metadata.Name, hdr.Metadata.Namespace
		line := yamlErrLine(err)
		if line == 0 {
			line = n.Line
		}
		msg := yamlLineRe.ReplaceAllString(trimYAMLErr(err), "")
		msg = strings.TrimPrefix(strings.TrimSpace(msg), ": ")
		p := at(line, faultPath(n, line, err.Error()), "wrong type: "+msg, "check the field against the Backstage descriptor format (lists must be YAML lists, annotation values strings)")
		if e.Kind != "" && e.Metadata.Name != "" {
			p.Entity = e.Ref().String()
		}
		return e, Problems{p}
	}
	probs := validate(e, n)
	for i := range probs {
		probs[i].Source, probs[i].File = source, file
		if probs[i].Entity == "" && e.Kind != "" && e.Metadata.Name != "" {
			probs[i].Entity = e.Ref().String()
		}
	}
	return e, probs
}

var dupKeyRe = regexp.MustCompile(`line (\d+): mapping key "([^"]*)" already defined at line (\d+)`)

// duplicateKey turns yaml.v3's first "mapping key already defined" error
// into a problem at the second occurrence; e gets the first kind and name
// written, so the entity's last good version is kept. Two entities without
// a --- between them read as one document with every top-level key twice.
func duplicateKey(n *yaml.Node, err error, at func(int, string, string, string) Problem, e *Entity) (Problem, bool) {
	m := dupKeyRe.FindStringSubmatch(err.Error())
	if m == nil {
		return Problem{}, false
	}
	line, _ := strconv.Atoi(m[1])
	field := pathAtLine(n, line, "")
	if field == "" {
		field = m[2]
	}
	fix := "keep one of the two"
	if !strings.Contains(field, ".") {
		fix = "if these are two entities, put a line with only --- between them; otherwise keep one " + m[2]
	}
	p := at(line, field, "key "+quote(m[2])+" is written twice (first at line "+m[3]+")", fix)
	e.Kind = firstValue(n, "kind")
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "metadata" && e.Metadata.Name == "" {
			e.Metadata.Name, e.Metadata.Namespace = firstValue(n.Content[i+1], "name"), firstValue(n.Content[i+1], "namespace")
		}
	}
	if e.Kind != "" && e.Metadata.Name != "" {
		p.Entity = e.Ref().String()
	}
	return p, true
}

// firstValue is the value of the first key of a mapping with that name.
func firstValue(n *yaml.Node, key string) string {
	for i := 0; n.Kind == yaml.MappingNode && i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1].Value
		}
	}
	return ""
}

var yamlLineRe = regexp.MustCompile(`line (\d+):?`)

func yamlErrLine(err error) int {
	if m := yamlLineRe.FindStringSubmatch(err.Error()); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return 0
}

func trimYAMLErr(err error) string {
	s := strings.TrimPrefix(err.Error(), "yaml: ")
	s = strings.ReplaceAll(s, "unmarshal errors:\n  ", "")
	return strings.ReplaceAll(s, "\n  ", "; ")
}

// lineOf returns the line of the value at path (mapping keys) below n, or of
// the deepest node found on the way.
func lineOf(n *yaml.Node, path ...string) int {
	line := n.Line
	cur := n
	for _, key := range path {
		if cur.Kind != yaml.MappingNode {
			return line
		}
		found := false
		for i := 0; i+1 < len(cur.Content); i += 2 {
			if cur.Content[i].Value == key {
				// The key's line: for a block value that is where the field
				// is written.
				line = cur.Content[i].Line
				cur = cur.Content[i+1]
				found = true
				break
			}
		}
		if !found {
			return line
		}
	}
	return line
}

// lineOfItem returns the line of item i of the sequence at path.
func lineOfItem(n *yaml.Node, i int, path ...string) int {
	line := lineOf(n, path...)
	cur := n
	for _, key := range path {
		next := (*yaml.Node)(nil)
		for j := 0; cur.Kind == yaml.MappingNode && j+1 < len(cur.Content); j += 2 {
			if cur.Content[j].Value == key {
				next = cur.Content[j+1]
			}
		}
		if next == nil {
			return line
		}
		cur = next
	}
	if cur.Kind == yaml.SequenceNode && i < len(cur.Content) {
		return cur.Content[i].Line
	}
	return line
}

var unmarshalTagRe = regexp.MustCompile(`cannot unmarshal !!(map|seq)`)

// faultPath returns the dotted path of the field a decode error points at:
// the deepest mapping value of the kind the error names (!!map, !!seq, else a
// scalar) that starts on the error's line, or else the key on that line. (A
// block mapping or list starts on the line after its key.)
func faultPath(n *yaml.Node, line int, errText string) string {
	kind := yaml.ScalarNode
	if m := unmarshalTagRe.FindStringSubmatch(errText); m != nil {
		kind = map[string]yaml.Kind{"map": yaml.MappingNode, "seq": yaml.SequenceNode}[m[1]]
	}
	if p := valuePathAt(n, line, kind, ""); p != "" {
		return p
	}
	return pathAtLine(n, line, "")
}

func valuePathAt(n *yaml.Node, line int, kind yaml.Kind, prefix string) string {
	if n.Kind != yaml.MappingNode {
		return ""
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		p := k.Value
		if prefix != "" {
			p = prefix + "." + k.Value
		}
		if sub := valuePathAt(v, line, kind, p); sub != "" {
			return sub
		}
		if v.Line == line && v.Kind == kind {
			return p
		}
	}
	return ""
}

// pathAtLine returns the dotted path of the mapping key on a given line.
func pathAtLine(n *yaml.Node, line int, prefix string) string {
	if n.Kind != yaml.MappingNode {
		return ""
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		p := k.Value
		if prefix != "" {
			p = prefix + "." + k.Value
		}
		if k.Line == line {
			return p
		}
		if sub := pathAtLine(v, line, p); sub != "" {
			return sub
		}
	}
	return ""
}

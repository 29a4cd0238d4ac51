package catalogsync

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// jsonNode builds the yaml.Node that yaml.Unmarshal builds from one JSON
// value, so that entities from Backstage go through the same parseDocument
// as files. yaml.v3 reads the long one-line JSON documents Backstage sends
// slowly (its flow scanner re-queues tokens): it was 40% of a full sync's
// CPU. jsonNode reads JSON in one pass and rejects what encoding/json
// rejects (json.Valid): a missing value, a trailing comma, a misspelt
// literal, a bad number or escape, a control character in a string, nesting
// deeper than 10000, anything after the value.
func jsonNode(raw []byte) (*yaml.Node, error) {
	s := &jsonScan{data: raw}
	n, err := s.value()
	if err != nil {
		return nil, err
	}
	if s.space(); s.i < len(s.data) {
		return nil, s.unexpected()
	}
	return n, nil
}

// maxJSONDepth is encoding/json's limit on nested arrays and objects.
const maxJSONDepth = 10000

type jsonScan struct {
	data  []byte
	i     int
	depth int
	slab  []yaml.Node // nodes are allocated in blocks
}

func (s *jsonScan) node(kind yaml.Kind, tag string, style yaml.Style, value string) *yaml.Node {
	if len(s.slab) == 0 {
		s.slab = make([]yaml.Node, 64)
	}
	n := &s.slab[0]
	s.slab = s.slab[1:]
	n.Kind, n.Tag, n.Style, n.Value, n.Line = kind, tag, style, value, 1
	return n
}

var errJSONEnd = errors.New("unexpected end of JSON")

// unexpected is the error for the byte at s.i (or the end).
func (s *jsonScan) unexpected() error {
	if s.i >= len(s.data) {
		return errJSONEnd
	}
	return fmt.Errorf("invalid character %q at offset %d of JSON", s.data[s.i], s.i)
}

// space skips JSON whitespace.
func (s *jsonScan) space() {
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// at reports whether the next byte is c.
func (s *jsonScan) at(c byte) bool { return s.i < len(s.data) && s.data[s.i] == c }

// next skips whitespace and reports whether the next byte is c (and
// consumes it then).
func (s *jsonScan) next(c byte) bool {
	if s.space(); s.at(c) {
		s.i++
		return true
	}
	return false
}

func (s *jsonScan) value() (*yaml.Node, error) {
	s.space()
	if s.i >= len(s.data) {
		return nil, errJSONEnd
	}
	switch s.data[s.i] {
	case '{':
		return s.container(yaml.MappingNode, "!!map", '}')
	case '[':
		return s.container(yaml.SequenceNode, "!!seq", ']')
	case '"':
		str, err := s.str()
		if err != nil {
			return nil, err
		}
		return s.node(yaml.ScalarNode, "!!str", yaml.DoubleQuotedStyle, str), nil
	case 't':
		return s.literal("true", "!!bool")
	case 'f':
		return s.literal("false", "!!bool")
	case 'n':
		return s.literal("null", "!!null")
	default:
		return s.number()
	}
}

// container reads an object (a mapping whose keys and values alternate in
// Content) or an array, from its opening bracket.
func (s *jsonScan) container(kind yaml.Kind, tag string, end byte) (*yaml.Node, error) {
	if s.depth++; s.depth > maxJSONDepth {
		return nil, fmt.Errorf("JSON nested deeper than %d at offset %d", maxJSONDepth, s.i)
	}
	n := s.node(kind, tag, yaml.FlowStyle, "")
	s.i++
	if s.next(end) {
		s.depth--
		return n, nil
	}
	for {
		if kind == yaml.MappingNode {
			if s.space(); !s.at('"') {
				return nil, s.unexpected() // keys are strings
			}
			k, err := s.value()
			if err != nil {
				return nil, err
			}
			if !s.next(':') {
				return nil, s.unexpected()
			}
			n.Content = append(n.Content, k)
		}
		v, err := s.value()
		if err != nil {
			return nil, err
		}
		n.Content = append(n.Content, v)
		switch {
		case s.next(','):
		case s.next(end):
			s.depth--
			return n, nil
		default:
			return nil, s.unexpected()
		}
	}
}

func (s *jsonScan) literal(word, tag string) (*yaml.Node, error) {
	if !bytes.HasPrefix(s.data[s.i:], []byte(word)) {
		for j := 0; j < len(word) && s.at(word[j]); j++ {
			s.i++ // point the error at the first wrong byte
		}
		return nil, s.unexpected()
	}
	s.i += len(word)
	return s.node(yaml.ScalarNode, tag, 0, word), nil
}

// number reads -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?; one with a
// fraction or an exponent is a !!float, as yaml.v3 resolves it.
func (s *jsonScan) number() (*yaml.Node, error) {
	start, tag := s.i, "!!int"
	if s.at('-') {
		s.i++
	}
	switch {
	case s.at('0'):
		s.i++
	case !s.digits():
		return nil, s.unexpected()
	}
	if s.at('.') {
		s.i++
		tag = "!!float"
		if !s.digits() {
			return nil, s.unexpected()
		}
	}
	if s.at('e') || s.at('E') {
		s.i++
		tag = "!!float"
		if s.at('+') || s.at('-') {
			s.i++
		}
		if !s.digits() {
			return nil, s.unexpected()
		}
	}
	return s.node(yaml.ScalarNode, tag, 0, string(s.data[start:s.i])), nil
}

// digits skips [0-9]* and reports whether there was one.
func (s *jsonScan) digits() bool {
	start := s.i
	for s.i < len(s.data) && '0' <= s.data[s.i] && s.data[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}

// str reads a string; one with escapes (or invalid UTF-8, which becomes
// U+FFFD) goes through encoding/json, which also checks the escapes.
func (s *jsonScan) str() (string, error) {
	start, escaped := s.i, false
	for s.i++; s.i < len(s.data); s.i++ {
		switch c := s.data[s.i]; {
		case c == '"':
			s.i++
			if !escaped && utf8.Valid(s.data[start+1:s.i-1]) {
				return string(s.data[start+1 : s.i-1]), nil
			}
			var out string
			if err := json.Unmarshal(s.data[start:s.i], &out); err != nil {
				return "", fmt.Errorf("invalid JSON string at offset %d: %w", start, err)
			}
			return out, nil
		case c == '\\':
			escaped = true
			s.i++ // the escaped byte does not end the string
		case c < 0x20:
			return "", s.unexpected()
		}
	}
	return "", errJSONEnd
}

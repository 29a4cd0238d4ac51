package catalogsync

import (
	"cmp"
	"fmt"
	"log/slog"
	"slices"
	"strings"
)

// Severity of a Problem.
type Severity string

const (
	// SeverityError: the entity (or the part of it named) is not used.
	SeverityError Severity = "error"
	// SeverityWarning: the entity is used, but something in it looks wrong.
	SeverityWarning Severity = "warning"
)

// Problem is something wrong with the catalog, reported with enough context
// for a person to find and fix it: where, which entity, which field, what is
// wrong and what to do.
type Problem struct {
	Severity Severity `json:"severity" yaml:"severity"`
	File     string   `json:"file,omitempty" yaml:"file,omitempty"`
	Line     int      `json:"line,omitempty" yaml:"line,omitempty"`
	Source   string   `json:"source,omitempty" yaml:"source,omitempty"`
	Entity   string   `json:"entity,omitempty" yaml:"entity,omitempty"` // ref, when known
	Field    string   `json:"field,omitempty" yaml:"field,omitempty"`   // e.g. metadata.annotations[gatehouse.dev/upstream]
	Message  string   `json:"message" yaml:"message"`
	Fix      string   `json:"fix,omitempty" yaml:"fix,omitempty"`
}

// String renders the problem on one line, compiler style:
// file:line: severity: entity: field: message (fix: ...).
func (p Problem) String() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		if p.Line > 0 {
			fmt.Fprintf(&b, ":%d", p.Line)
		}
		b.WriteString(": ")
	} else if p.Source != "" {
		b.WriteString(p.Source + ": ")
	}
	b.WriteString(string(p.Severity))
	b.WriteString(": ")
	if p.Entity != "" {
		b.WriteString(p.Entity + ": ")
	}
	if p.Field != "" {
		b.WriteString(p.Field + ": ")
	}
	b.WriteString(p.Message)
	if p.Fix != "" {
		b.WriteString(" (fix: " + p.Fix + ")")
	}
	return b.String()
}

// Level is the log level of the problem: ERROR for an error, else WARN.
func (p Problem) Level() slog.Level {
	if p.Severity == SeverityError {
		return slog.LevelError
	}
	return slog.LevelWarn
}

// Problems is a list of problems with helpers.
type Problems []Problem

// Errors counts the error-severity problems.
func (ps Problems) Errors() int {
	n := 0
	for _, p := range ps {
		if p.Severity == SeverityError {
			n++
		}
	}
	return n
}

// Sort orders the problems by file and line (problems without a file, by
// source, after those with one), keeping the order of problems at the same
// place.
func (ps Problems) Sort() {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		if (a.File == "") != (b.File == "") {
			if a.File == "" {
				return 1
			}
			return -1
		}
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Source, b.Source), cmp.Compare(a.Line, b.Line))
	})
}

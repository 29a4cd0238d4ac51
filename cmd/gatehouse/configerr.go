package main

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
	"gopkg.in/yaml.v3"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/internal/suggest"
)

// envPrefix is the prefix of the environment variables that set keys.
const envPrefix = "GATEHOUSE_"

// envName is the environment variable that sets a key (xds.listen:
// GATEHOUSE_XDS_LISTEN).
func envName(key string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// configFile is a configuration file as read, for the places of keys.
type configFile struct {
	path string
	root *yaml.Node // nil without a file
}

// where says where the value of key came from: the environment variable
// that sets it, else the file and the key's line, else the defaults.
func (f configFile) where(key string) (place string, env string) {
	if v, ok := os.LookupEnv(envName(key)); ok && !strings.Contains(key, "[") {
		return "environment variable " + envName(key) + "=" + v, envName(key)
	}
	if f.path == "" {
		return "(defaults and environment)", ""
	}
	if line := keyLine(f.root, key); line > 0 {
		return f.path + ":" + strconv.Itoa(line), ""
	}
	return f.path, ""
}

var indexRe = regexp.MustCompile(`\[(\d+)\]`)

// keyLine is the line of a dotted key ("issuers[0].name") in a YAML file.
func keyLine(n *yaml.Node, key string) int {
	line, _ := keyNode(n, key)
	return line
}

// keyNode returns the line of a dotted key in a YAML file and its value
// node (nil when the key is not there).
func keyNode(n *yaml.Node, key string) (int, *yaml.Node) {
	if n == nil {
		return 0, nil
	}
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := 0
	for _, part := range strings.Split(indexRe.ReplaceAllString(key, ".[$1]"), ".") {
		switch {
		case strings.HasPrefix(part, "["):
			i, _ := strconv.Atoi(strings.Trim(part, "[]"))
			if n.Kind != yaml.SequenceNode || i >= len(n.Content) {
				return line, nil
			}
			n = n.Content[i]
			line = n.Line
		case part == "":
		default:
			found := false
			for i := 0; n.Kind == yaml.MappingNode && i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == part {
					line, n, found = n.Content[i].Line, n.Content[i+1], true
					break
				}
			}
			if !found {
				return line, nil
			}
		}
	}
	return line, n
}

// knownKeys lists every configuration key, lists of sections as
// "issuers[].name", from the mapstructure tags of config.Config.
func knownKeys() []string {
	var out []string
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			key := f.Tag.Get("mapstructure")
			if prefix != "" {
				key = prefix + "." + key
			}
			out = append(out, key)
			switch {
			case f.Type.Kind() == reflect.Struct:
				walk(f.Type, key)
			case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
				walk(f.Type.Elem(), key+"[]")
			}
		}
	}
	walk(reflect.TypeOf(config.Config{}), "")
	sort.Strings(out)
	return out
}

// decodeErrors rewrites mapstructure's decoding errors (a Go type and a
// strconv error) into one line per key: where the value came from, the
// key, the bad value, what the key takes, and the fix.
func decodeErrors(err error, f configFile, defaults map[string]any, get func(string) any) error {
	var out []error
	for _, e := range leafErrors(err) {
		var de *mapstructure.DecodeError
		if !errors.As(e, &de) {
			out = append(out, e)
			continue
		}
		key := de.Name()
		if key == reflect.TypeOf(config.Config{}).String() {
			key = "" // the top level, named by its Go type
		}
		inner := de.Unwrap()
		if rest, ok := strings.CutPrefix(inner.Error(), "has invalid keys: "); ok {
			for _, k := range strings.Split(rest, ", ") {
				full := k
				if key != "" {
					full = key + "." + k
				}
				place, _ := f.where(full)
				fix := "remove it, or check the key names against docs/configuration.md"
				if s := suggestKey(full); s != "" {
					fix = "did you mean " + s + "?"
				}
				out = append(out, fmt.Errorf("%s: %s: unknown key (fix: %s)", place, full, fix))
			}
			continue
		}
		place, env := f.where(key)
		value, want := get(key), typeOfKey(key)
		if _, n := keyNode(f.root, key); n != nil && n.Kind == yaml.ScalarNode && env == "" && strings.Contains(key, "[") {
			value = n.Value // viper cannot look into lists
		}
		var pe *mapstructure.ParseError
		var ue *mapstructure.UnconvertibleTypeError
		switch {
		case errors.As(inner, &pe):
			value = pe.Value
		case errors.As(inner, &ue):
			value = ue.Value
		}
		if want == nil || value == nil {
			out = append(out, fmt.Errorf("%s: %s: %v (fix: see docs/configuration.md)", place, key, inner))
			continue
		}
		takes, example := describeType(want)
		if d, ok := defaults[key]; ok && d != nil && fmt.Sprint(d) != "" && fmt.Sprint(d) != "[]" {
			example = fmt.Sprint(d) + " (the default)"
		}
		fix := "write " + takes + ", e.g. " + example
		if want.Kind() == reflect.Struct {
			fix = "write the keys of " + key + " indented below it (docs/configuration.md)"
		}
		if env != "" {
			fix = "set " + env + " to " + takes + ", e.g. " + example + ", or unset it"
		}
		out = append(out, fmt.Errorf("%s: %s: %s is not %s (fix: %s)", place, key, showValue(value), takes, fix))
	}
	return errors.Join(out...)
}

// typeOfKey is the Go type of a key ("issuers[0].clock_skew"), or nil.
func typeOfKey(key string) reflect.Type {
	t := reflect.TypeOf(config.Config{})
	for _, part := range strings.Split(indexRe.ReplaceAllString(key, ".[]"), ".") {
		switch {
		case part == "[]" && t.Kind() == reflect.Slice:
			t = t.Elem()
		case t.Kind() == reflect.Struct:
			f, ok := fieldByTag(t, part)
			if !ok {
				return nil
			}
			t = f.Type
		default:
			return nil
		}
	}
	return t
}

func fieldByTag(t reflect.Type, tag string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		if t.Field(i).Tag.Get("mapstructure") == tag {
			return t.Field(i), true
		}
	}
	return reflect.StructField{}, false
}

// leafErrors flattens errors.Join trees.
func leafErrors(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, leafErrors(e)...)
		}
		return out
	}
	return []error{err}
}

// suggestKey is the known key a misspelled one probably meant.
func suggestKey(key string) string {
	norm := indexRe.ReplaceAllString(key, "[]")
	s := suggest.Closest(norm, knownKeys())
	if s == "" {
		return ""
	}
	// Put the list index of the misspelled key back.
	if m := indexRe.FindString(key); m != "" {
		s = strings.Replace(s, "[]", m, 1)
	}
	return s
}

var durationType = reflect.TypeOf(time.Duration(0))

// describeType says in words what a key of type t takes, and an example.
func describeType(t reflect.Type) (string, string) {
	switch {
	case t == durationType:
		return "a duration", "500ms, 30s or 2m"
	case t.Kind() == reflect.Bool:
		return "true or false", "true"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return "a whole number", "10"
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		return "a number", "0.5"
	case t.Kind() == reflect.String:
		return "a string", `"text"`
	case t.Kind() == reflect.Slice:
		return "a list", "[a, b]"
	case t.Kind() == reflect.Struct || t.Kind() == reflect.Map:
		return "a section of keys", ""
	}
	return t.String(), "see docs/configuration.md"
}

func showValue(v any) string {
	switch x := v.(type) {
	case string:
		return strconv.Quote(x)
	case map[string]any:
		return "a mapping"
	case []any:
		return "a list"
	}
	return fmt.Sprint(v)
}

// blameEnvironment adds, to each of Validate's errors ("key: message
// (fix: ...)"), the environment variable that set the key, if one did.
func blameEnvironment(err error) error {
	var out []error
	for _, e := range leafErrors(err) {
		key, _, _ := strings.Cut(e.Error(), ": ")
		if v, ok := os.LookupEnv(envName(key)); ok && !strings.Contains(key, "[") {
			e = fmt.Errorf("environment variable %s=%s: %w", envName(key), v, e)
		}
		out = append(out, e)
	}
	return errors.Join(out...)
}

// secretEnvNames are the environment variables the configuration names
// as holding secrets (catalog.backstage.token_env, each
// issuers[].sign_in.client_secret_env): they set no key and are used.
func secretEnvNames(v *viper.Viper) []string {
	names := []string{v.GetString("catalog.backstage.token_env")}
	issuers, _ := v.Get("issuers").([]any)
	for _, is := range issuers {
		m, _ := is.(map[string]any)
		signIn, _ := m["sign_in"].(map[string]any)
		if name, ok := signIn["client_secret_env"].(string); ok && name != "" {
			names = append(names, name)
		}
	}
	return names
}

// unknownEnv returns a warning for each GATEHOUSE_* environment variable
// that sets no key, with the variable it was probably meant to be. skip
// are variables used for something else (secretEnvNames).
func unknownEnv(skip ...string) []string {
	var known []string
	for _, k := range knownKeys() {
		if !strings.Contains(k, "[]") {
			known = append(known, envName(k))
		}
	}
	var out []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, envPrefix) || slices.Contains(skip, name) || slices.Contains(known, name) {
			continue
		}
		w := "environment variable " + name + " sets no configuration key and is ignored"
		if s := suggest.Closest(name, known); s != "" {
			w += " (fix: did you mean " + s + "?)"
		} else {
			w += " (fix: unset it, or see docs/configuration.md for the GATEHOUSE_<SECTION>_<KEY> names)"
		}
		out = append(out, w)
	}
	sort.Strings(out)
	return out
}

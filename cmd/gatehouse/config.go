package main

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
	"gopkg.in/yaml.v3"

	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/internal/yamlerr"
)

// loadConfig reads the configuration file (if any) over the defaults, applies
// GATEHOUSE_* environment overrides, and validates. Unknown keys are errors;
// warnings (a GATEHOUSE_* variable that sets nothing) go to stderr.
func loadConfig(path string) (config.Config, error) {
	return loadConfigWarn(path, func(w string) { fmt.Fprintln(os.Stderr, "gatehouse: warning:", w) })
}

// loadConfigWarn is loadConfig, passing each warning to warn.
func loadConfigWarn(path string, warn func(string)) (config.Config, error) {
	cfg := config.Defaults()
	v := viper.New()
	v.SetEnvPrefix("GATEHOUSE")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	// Every key gets its default registered, so environment overrides work
	// without a file and AllSettings sees the whole tree.
	// (Through YAML so nested sections become nested maps: a section kept
	// as a struct value would be replaced whole by one overridden key.)
	var defaults map[string]any
	raw, err := yaml.Marshal(cfg)
	if err != nil {
		return cfg, err
	}
	if err := yaml.Unmarshal(raw, &defaults); err != nil {
		return cfg, err
	}
	flat := flatten("", defaults)
	for k, val := range flat {
		v.SetDefault(k, val)
	}
	file := configFile{path: path}
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("reading config: %w", err)
		}
		// Parsed here first for the line of a syntax error (yaml.v3 gets
		// some wrong) and of each key.
		file.root = &yaml.Node{}
		if err := yaml.Unmarshal(data, file.root); err != nil {
			line, msg := yamlerr.Syntax(err, data)
			return cfg, fmt.Errorf("config %s:%d: invalid YAML: %s (fix: correct the YAML syntax on or just before that line)", path, line, msg)
		}
		v.SetConfigType("yaml")
		if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
			// What yaml.v3 refuses beyond syntax, e.g. a key written twice.
			if m := yamlLineRe.FindStringSubmatch(err.Error()); m != nil {
				return cfg, fmt.Errorf("config %s:%s: %s (fix: write each key once, as docs/configuration.md shows)", path, m[1], m[2])
			}
			return cfg, fmt.Errorf("reading config %s: %w", path, err)
		}
	}
	for _, w := range unknownEnv(secretEnvNames(v)...) {
		warn(w)
	}
	var md mapstructure.Metadata
	err = v.Unmarshal(&cfg, func(dc *mapstructure.DecoderConfig) {
		dc.ErrorUnused = true
		dc.ZeroFields = false
		dc.Metadata = &md
		dc.DecodeHook = mapstructure.ComposeDecodeHookFunc(
			mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.StringToSliceHookFunc(","),
		)
	})
	if err != nil {
		return cfg, fmt.Errorf("config %s is invalid:\n%w", orDefault(path), decodeErrors(err, file, flat, v.Get))
	}

	// Relative catalog paths are relative to the config file.
	if path != "" {
		base := filepath.Dir(path)
		for i, f := range cfg.Catalog.Files {
			if !filepath.IsAbs(f) {
				cfg.Catalog.Files[i] = filepath.Join(base, f)
			}
		}
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("config %s is invalid:\n%w", orDefault(path), blameEnvironment(err))
	}
	return cfg, nil
}

var yamlLineRe = regexp.MustCompile(`line (\d+): (.*)`)

func orDefault(path string) string {
	if path == "" {
		return "(defaults and environment)"
	}
	return path
}

// flatten turns a nested map into dotted keys.
func flatten(prefix string, m map[string]any) map[string]any {
	out := map[string]any{}
	for k, val := range m {
		key := k
		if prefix != "" {
			key = prefix + "." + k
		}
		if sub, ok := val.(map[string]any); ok {
			for k2, v2 := range flatten(key, sub) {
				out[k2] = v2
			}
			continue
		}
		out[key] = val
	}
	return out
}

// logLevel is the level of the process logger; a reload changes it.
var logLevel = new(slog.LevelVar)

func setLogLevel(level string) {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(level)) // validated by config.Validate
	logLevel.Set(lvl)
}

func newLogger(c config.Log) *slog.Logger { return newLoggerTo(os.Stderr, c) }

func newLoggerTo(w io.Writer, c config.Log) *slog.Logger {
	setLogLevel(c.Level)
	opts := &slog.HandlerOptions{Level: logLevel, ReplaceAttr: durationString}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// durationString logs a duration as "1.5s", not as JSON's nanosecond
// integer.
func durationString(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.String(a.Key, a.Value.Duration().String())
	}
	return a
}

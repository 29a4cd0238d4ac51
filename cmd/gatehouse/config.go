package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
	"gopkg.in/yaml.v3"

	"github.com/gatehouse-dev/gatehouse/config"
)

// loadConfig reads the configuration file (if any) over the defaults, applies
// GATEHOUSE_* environment overrides, and validates. Unknown keys are errors.
func loadConfig(path string) (config.Config, error) {
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
	for k, val := range flatten("", defaults) {
		v.SetDefault(k, val)
	}
	if path != "" {
		v.SetConfigFile(path)
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil {
			return cfg, fmt.Errorf("reading config %s: %w", path, err)
		}
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
		return cfg, fmt.Errorf("config %s: %w (fix: check the key names against docs/configuration.md)", orDefault(path), err)
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
		return cfg, fmt.Errorf("config %s is invalid:\n%w", orDefault(path), err)
	}
	return cfg, nil
}

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

func newLogger(c config.Log) *slog.Logger {
	setLogLevel(c.Level)
	opts := &slog.HandlerOptions{Level: logLevel}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

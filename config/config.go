// Package config is gatehouse's typed configuration: Defaults() fills every
// key, Validate() names the key and the fix of anything wrong. Reading files,
// environment and flags is cmd's job; packages receive this struct.
package config

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// Config is the whole configuration (gatehouse.yaml).
type Config struct {
	XDS     XDS     `mapstructure:"xds" yaml:"xds"`
	Edge    Edge    `mapstructure:"edge" yaml:"edge"`
	Admin   Admin   `mapstructure:"admin" yaml:"admin"`
	Catalog Catalog `mapstructure:"catalog" yaml:"catalog"`
	Log     Log     `mapstructure:"log" yaml:"log"`
}

// XDS is the xDS (ADS) gRPC listener.
type XDS struct {
	Listen string `mapstructure:"listen" yaml:"listen"`
	// Holdoff coalesces bursts of catalog changes into one push.
	Holdoff time.Duration `mapstructure:"holdoff" yaml:"holdoff"`
}

// Edge configures the edge gateway's listener (served over LDS).
type Edge struct {
	Address        string `mapstructure:"address" yaml:"address"`
	Port           uint32 `mapstructure:"port" yaml:"port"`
	UpstreamCAFile string `mapstructure:"upstream_ca_file" yaml:"upstream_ca_file"`
}

// Admin is the admin HTTP listener (health, metrics, debug).
type Admin struct {
	Listen string `mapstructure:"listen" yaml:"listen"`
}

// Catalog lists the catalog sources.
type Catalog struct {
	// Files: catalog-info.yaml files, directories or globs. Relative paths
	// are relative to the configuration file.
	Files        []string      `mapstructure:"files" yaml:"files"`
	PollInterval time.Duration `mapstructure:"poll_interval" yaml:"poll_interval"`
}

// Log configures logging.
type Log struct {
	Level  string `mapstructure:"level" yaml:"level"`
	Format string `mapstructure:"format" yaml:"format"`
}

// Defaults returns a configuration with every key at its default.
func Defaults() Config {
	return Config{
		XDS:     XDS{Listen: "127.0.0.1:18000", Holdoff: 100 * time.Millisecond},
		Edge:    Edge{Address: "0.0.0.0", Port: 10000, UpstreamCAFile: "/etc/ssl/certs/ca-certificates.crt"},
		Admin:   Admin{Listen: "127.0.0.1:9090"},
		Catalog: Catalog{PollInterval: time.Second},
		Log:     Log{Level: "info", Format: "text"},
	}
}

// Validate checks every key and returns all problems at once, each naming
// the key and the fix.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, msg, fix string) { errs = append(errs, fmt.Errorf("%s: %s (fix: %s)", key, msg, fix)) }
	addr := func(key, v string) {
		if _, port, err := net.SplitHostPort(v); err != nil || port == "" {
			bad(key, fmt.Sprintf("%q is not host:port", v), "write an address such as 127.0.0.1:18000")
		}
	}
	addr("xds.listen", c.XDS.Listen)
	addr("admin.listen", c.Admin.Listen)
	if c.XDS.Holdoff < 0 || c.XDS.Holdoff > 10*time.Second {
		bad("xds.holdoff", fmt.Sprintf("%s is out of range", c.XDS.Holdoff), "use a duration from 0 to 10s, e.g. 100ms")
	}
	if net.ParseIP(c.Edge.Address) == nil {
		bad("edge.address", fmt.Sprintf("%q is not an IP address", c.Edge.Address), "use 0.0.0.0 to listen on every interface, or one IP")
	}
	if c.Edge.Port == 0 || c.Edge.Port > 65535 {
		bad("edge.port", fmt.Sprintf("%d is not a port", c.Edge.Port), "use 1-65535, e.g. 10000")
	}
	if c.Catalog.PollInterval < 100*time.Millisecond {
		bad("catalog.poll_interval", fmt.Sprintf("%s is too short", c.Catalog.PollInterval), "use at least 100ms, e.g. 1s")
	}
	for i, f := range c.Catalog.Files {
		if strings.TrimSpace(f) == "" {
			bad(fmt.Sprintf("catalog.files[%d]", i), "empty path", "remove the entry or name a file, directory or glob")
		}
	}
	switch strings.ToLower(c.Log.Level) {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", fmt.Sprintf("%q is not a level", c.Log.Level), "use debug, info, warn or error")
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", fmt.Sprintf("%q is not a format", c.Log.Format), "use text or json")
	}
	return errors.Join(errs...)
}

package harness

import (
	"fmt"
	"strconv"
	"time"
)

// EnvoySpec says how to run a real Envoy.
type EnvoySpec struct {
	Bin       string // from EnvoyBin
	Name      string
	Bootstrap string // the bootstrap file
	AdminPort int    // the bootstrap's admin port, polled for /ready
	Workers   int    // --concurrency (default 1)
	LogFile   string
	// ReadyTimeout bounds the wait for /ready (default 20s).
	ReadyTimeout time.Duration
	// NoWait returns as soon as Envoy has started (one that should never
	// become ready, having no configuration).
	NoWait bool
}

// StartEnvoy runs Envoy on a bootstrap (no hot restart, log level warn)
// and returns once its admin says /ready (unless NoWait).
func StartEnvoy(s EnvoySpec) (*Proc, error) {
	if s.Workers == 0 {
		s.Workers = 1
	}
	if s.ReadyTimeout == 0 {
		s.ReadyTimeout = 20 * time.Second
	}
	p, err := Start(Spec{Name: s.Name, LogFile: s.LogFile, Args: []string{s.Bin, "-c", s.Bootstrap, "--disable-hot-restart",
		"--concurrency", strconv.Itoa(s.Workers), "--log-level", "warn"}})
	if err != nil {
		return nil, err
	}
	if s.NoWait {
		return p, nil
	}
	if err := WaitHTTP(p, fmt.Sprintf("http://127.0.0.1:%d/ready", s.AdminPort), s.ReadyTimeout); err != nil {
		p.Stop(10 * time.Second)
		return nil, err
	}
	return p, nil
}

package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// GatehouseSpec says how to run `gatehouse serve`.
type GatehouseSpec struct {
	Bin  string // the gatehouse binary
	Name string // for messages and file names (default "gatehouse")
	Dir  string // where Name.yaml (and the log file) are written
	// Ports are the listeners; zero means four free ports.
	Ports Ports
	// Config returns the configuration YAML for the chosen listeners.
	Config func(Ports) string
	Env    []string
	// Flags are more arguments of serve (e.g. --dev).
	Flags []string
	// LogFile, when set, receives gatehouse's output as well.
	LogFile string
	OnLine  func(line string)
	// ReadyTimeout bounds the wait for /readyz (default 10s).
	ReadyTimeout time.Duration
}

// Gatehouse is a running `gatehouse serve`.
type Gatehouse struct {
	*Proc
	Ports      Ports
	ConfigPath string
}

// XDSAddr, AdminAddr and AuthzAddr are the loopback addresses of the listeners.
func (g *Gatehouse) XDSAddr() string   { return loopback(g.Ports.XDS) }
func (g *Gatehouse) AdminAddr() string { return loopback(g.Ports.Admin) }
func (g *Gatehouse) AuthzAddr() string { return loopback(g.Ports.Authz) }

func loopback(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }

// StartGatehouse writes the configuration, runs `gatehouse serve` and
// returns once /readyz answers 200. A gatehouse that exits or is not ready
// in time is stopped and the error carries the end of its log.
func StartGatehouse(s GatehouseSpec) (*Gatehouse, error) {
	if s.Name == "" {
		s.Name = "gatehouse"
	}
	if s.ReadyTimeout == 0 {
		s.ReadyTimeout = 10 * time.Second
	}
	g := &Gatehouse{Ports: s.Ports}
	if g.Ports == (Ports{}) {
		var err error
		if g.Ports, err = FreePorts(); err != nil {
			return nil, err
		}
	}
	g.ConfigPath = filepath.Join(s.Dir, s.Name+".yaml")
	if err := os.WriteFile(g.ConfigPath, []byte(s.Config(g.Ports)), 0o644); err != nil {
		return nil, err
	}
	p, err := Start(Spec{Name: s.Name, Args: append([]string{s.Bin, "serve", "--config", g.ConfigPath}, s.Flags...), Env: s.Env, LogFile: s.LogFile, OnLine: s.OnLine})
	if err != nil {
		return nil, err
	}
	g.Proc = p
	if err := WaitHTTP(p, "http://"+g.AdminAddr()+"/readyz", s.ReadyTimeout); err != nil {
		p.Stop(10 * time.Second)
		return nil, err
	}
	return g, nil
}

package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/harness"
)

// gatehouse is the control plane under test: the real `gatehouse serve`, a
// child process following a catalog directory, so that its CPU and memory
// are measured apart from the simulated fleet.
type gatehouse struct {
	*harness.Gatehouse
	xdsAddr string
	logPath string

	mu        sync.Mutex
	published map[string]time.Time // model version -> when it was published (from the log)
	lastErr   string
	waiters   []chan struct{}
}

// startGatehouse runs bin serve on catalogDir, logging JSON to a file in work.
func startGatehouse(bin, work, catalogDir string, p harness.Ports, poll time.Duration) (*gatehouse, error) {
	g := &gatehouse{xdsAddr: fmt.Sprintf("127.0.0.1:%d", p.XDS), logPath: filepath.Join(work, "gatehouse.log"), published: map[string]time.Time{}}
	h, err := harness.StartGatehouse(harness.GatehouseSpec{Bin: bin, Dir: work, Ports: p, Env: []string{"GOMAXPROCS=2", "GATEHOUSE_SHUTDOWN_DRAIN=0s"}, // no drain on stop; older builds (-gatehouse) ignore it
		LogFile: g.logPath, OnLine: g.readLog, ReadyTimeout: 60 * time.Second,
		Config: func(p harness.Ports) string {
			return fmt.Sprintf(`xds: {listen: "127.0.0.1:%d"}
edge: {address: 127.0.0.1, port: %d}
authz: {listen: "127.0.0.1:%d", envoy_address: "127.0.0.1:%d"}
admin: {listen: "127.0.0.1:%d"}
audit: {output: "off"}
catalog: {files: [%q], poll_interval: %s}
log: {level: info, format: json}
`, p.XDS, p.Edge, p.Authz, p.Authz, p.Admin, catalogDir, poll)
		}})
	if err != nil {
		return nil, fmt.Errorf("%w (log %s)", err, g.logPath)
	}
	g.Gatehouse = h
	return g, nil
}

// readLog records when each model version was published, and the last
// error, from one line of the JSON log.
func (g *gatehouse) readLog(line string) {
	var rec struct {
		Time    time.Time `json:"time"`
		Level   string    `json:"level"`
		Msg     string    `json:"msg"`
		Version string    `json:"version"`
		Error   string    `json:"error"`
	}
	if json.Unmarshal([]byte(line), &rec) != nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if rec.Msg == "model published" {
		g.published[rec.Version] = rec.Time
		for _, c := range g.waiters {
			close(c)
		}
		g.waiters = nil
	}
	if rec.Level == "ERROR" {
		g.lastErr = rec.Msg + ": " + rec.Error
	}
}

func (g *gatehouse) lastError() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.lastErr
}

// waitPublished waits until the model version was published and returns when.
func (g *gatehouse) waitPublished(version string, timeout time.Duration) (time.Time, error) {
	deadline := time.After(timeout)
	for {
		g.mu.Lock()
		t, ok := g.published[version]
		ch := make(chan struct{})
		g.waiters = append(g.waiters, ch)
		g.mu.Unlock()
		if ok {
			return t, nil
		}
		select {
		case <-ch:
		case <-deadline:
			return time.Time{}, fmt.Errorf("model %s not published within %s (log %s)", version, timeout, g.logPath)
		case <-g.Done():
			return time.Time{}, fmt.Errorf("gatehouse exited: %s (log %s)", g.lastError(), g.logPath)
		}
	}
}

func (g *gatehouse) stop() { g.Stop(10 * time.Second) }

// usage is a process's CPU time and memory from /proc.
type usage struct {
	cpu time.Duration // user + system
	rss int64         // bytes
}

func readUsage(pid int) (usage, error) {
	cpu, rss, err := harness.Usage(pid)
	return usage{cpu: cpu, rss: rss}, err
}

// sampler polls a process's RSS to find the peak of a phase, and calls
// over (once) if it passes limit.
type sampler struct {
	pid  int
	mu   sync.Mutex
	peak int64
	over bool
	stop chan struct{}
}

func newSampler(pid int, limit int64, over func()) *sampler {
	s := &sampler{pid: pid, stop: make(chan struct{})}
	go func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				if u, err := readUsage(pid); err == nil {
					s.mu.Lock()
					s.peak = max(s.peak, u.rss)
					first := u.rss > limit && !s.over
					s.over = s.over || u.rss > limit
					s.mu.Unlock()
					if first {
						over()
					}
				}
			}
		}
	}()
	return s
}

// reset starts a new phase and returns the peak of the last one.
func (s *sampler) reset() int64 {
	u, _ := readUsage(s.pid)
	s.mu.Lock()
	defer s.mu.Unlock()
	p := max(s.peak, u.rss)
	s.peak = u.rss
	return p
}

func (s *sampler) exceeded() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.over
}

func (s *sampler) close() { close(s.stop) }

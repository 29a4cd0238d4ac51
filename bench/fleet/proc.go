package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// freePort returns a port that was free a moment ago on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// gatehouse is the control plane under test: the real `gatehouse serve`, a
// child process following a catalog directory, so that its CPU and memory
// are measured apart from the simulated fleet.
type gatehouse struct {
	cmd                       *exec.Cmd
	xdsAddr, authzAddr, admin string
	edgePort                  int
	logPath                   string
	done                      chan struct{}

	mu        sync.Mutex
	published map[string]time.Time // model version -> when it was published (from the log)
	lastErr   string
	waiters   []chan struct{}
}

// gatehouseConfig is what the harness needs to reproduce the translation.
type ports struct{ xds, authz, admin, edge int }

func pickPorts() (ports, error) {
	var p ports
	for _, q := range []*int{&p.xds, &p.authz, &p.admin, &p.edge} {
		v, err := freePort()
		if err != nil {
			return p, err
		}
		*q = v
	}
	return p, nil
}

// startGatehouse runs bin serve on catalogDir, logging JSON to a file in work.
func startGatehouse(bin, work, catalogDir string, p ports, poll time.Duration) (*gatehouse, error) {
	cfg := fmt.Sprintf(`xds: {listen: "127.0.0.1:%d"}
edge: {address: 127.0.0.1, port: %d}
authz: {listen: "127.0.0.1:%d", envoy_address: "127.0.0.1:%d"}
admin: {listen: "127.0.0.1:%d"}
audit: {output: "off"}
catalog: {files: [%q], poll_interval: %s}
log: {level: info, format: json}
`, p.xds, p.edge, p.authz, p.authz, p.admin, catalogDir, poll)
	cfgPath := filepath.Join(work, "gatehouse.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	g := &gatehouse{
		xdsAddr: fmt.Sprintf("127.0.0.1:%d", p.xds), authzAddr: fmt.Sprintf("127.0.0.1:%d", p.authz),
		admin: fmt.Sprintf("127.0.0.1:%d", p.admin), edgePort: p.edge,
		logPath: filepath.Join(work, "gatehouse.log"), done: make(chan struct{}), published: map[string]time.Time{},
	}
	logf, err := os.Create(g.logPath)
	if err != nil {
		return nil, err
	}
	g.cmd = exec.Command(bin, "serve", "--config", cfgPath)
	g.cmd.Env = append(os.Environ(), "GOMAXPROCS=2")
	g.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	pr, pw := io.Pipe()
	g.cmd.Stdout = logf
	g.cmd.Stderr = pw
	if err := g.cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	go func() {
		g.cmd.Wait()
		pw.Close()
		logf.Close()
		close(g.done)
	}()
	go g.readLog(pr, logf)
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-g.done:
			return nil, fmt.Errorf("gatehouse exited: %s (log %s)", g.lastError(), g.logPath)
		default:
		}
		resp, err := http.Get("http://" + g.admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return g, nil
			}
		}
		if time.Now().After(deadline) {
			g.stop()
			return nil, fmt.Errorf("gatehouse not ready after 60s (log %s)", g.logPath)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// readLog copies the JSON log to the log file and records when each model
// version was published.
func (g *gatehouse) readLog(r io.Reader, w io.Writer) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		w.Write(line)
		w.Write([]byte("\n"))
		var rec struct {
			Time    time.Time `json:"time"`
			Level   string    `json:"level"`
			Msg     string    `json:"msg"`
			Version string    `json:"version"`
			Error   string    `json:"error"`
		}
		if json.Unmarshal(line, &rec) != nil {
			continue
		}
		g.mu.Lock()
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
		g.mu.Unlock()
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
		case <-g.done:
			return time.Time{}, fmt.Errorf("gatehouse exited: %s (log %s)", g.lastError(), g.logPath)
		}
	}
}

func (g *gatehouse) pid() int { return g.cmd.Process.Pid }

// kill stops gatehouse at once (it went over the memory limit).
func (g *gatehouse) kill() { g.cmd.Process.Kill() }

func (g *gatehouse) stop() {
	g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.done:
	case <-time.After(10 * time.Second):
		g.cmd.Process.Kill()
		<-g.done
	}
}

// usage is a process's CPU time and memory from /proc.
type usage struct {
	cpu time.Duration // user + system
	rss int64         // bytes
}

var clockTick = 100 // USER_HZ on Linux

func readUsage(pid int) (usage, error) {
	var u usage
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return u, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	// fields after ")": state(0) ... utime(11) stime(12)
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	u.cpu = time.Duration(ut+st) * time.Second / time.Duration(clockTick)
	st2, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, err
	}
	for _, line := range strings.Split(string(st2), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			kb, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			u.rss = kb << 10
		}
	}
	return u, nil
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

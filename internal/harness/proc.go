package harness

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Spec says how to start a child process.
type Spec struct {
	Name string   // for messages ("envoy edge-1")
	Args []string // Args[0] is the program
	Env  []string // added to the harness's own environment
	// LogFile, when set, receives all of the output as well.
	LogFile string
	// Stdout, when set, receives standard output instead of the log
	// (a READY line reader); standard error still goes to the log.
	Stdout io.Writer
	// OnLine, when set, is called with each line of the log, in order.
	OnLine func(line string)
}

// Proc is a running child process in its own process group. It is killed
// if the harness dies (Pdeathsig) and stopped with Stop.
type Proc struct {
	name string
	cmd  *exec.Cmd
	log  *logSink
	done chan struct{}
	err  error
}

// Start starts the process described by s.
func Start(s Spec) (*Proc, error) {
	if len(s.Args) == 0 {
		return nil, fmt.Errorf("starting %s: no program", s.Name)
	}
	p := &Proc{name: s.Name, cmd: exec.Command(s.Args[0], s.Args[1:]...), log: &logSink{onLine: s.OnLine}, done: make(chan struct{})}
	if s.LogFile != "" {
		f, err := os.Create(s.LogFile)
		if err != nil {
			return nil, err
		}
		p.log.file = f
	}
	if s.Env != nil {
		p.cmd.Env = append(os.Environ(), s.Env...)
	}
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if s.Stdout != nil {
		p.cmd.Stdout = s.Stdout
	}
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		p.log.close()
		return nil, fmt.Errorf("starting %s: %w", s.Name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		p.log.close()
		close(p.done)
	}()
	return p, nil
}

// Name is the name given in the Spec.
func (p *Proc) Name() string { return p.name }

// Pid is the process id (also its process group id).
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited says whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err is how the process ended (nil while it runs).
func (p *Proc) Err() error {
	if !p.Exited() {
		return nil
	}
	return p.err
}

// Log is the output so far (its last 4 MiB).
func (p *Proc) Log() string { return p.log.String() }

// Tail is the last n lines of the output, for failure messages.
func (p *Proc) Tail(n int) string { return Tail(p.log.String(), n) }

// Stop sends SIGTERM to the process group and waits up to grace for the
// process to exit, then sends SIGKILL. It reports whether it had to kill.
func (p *Proc) Stop(grace time.Duration) (killed bool) {
	if p.Exited() {
		return false
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
		return false
	case <-time.After(grace):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		return true
	}
}

// Kill sends SIGKILL to the process group at once.
func (p *Proc) Kill() { _ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL) }

// CPU is the process's user+system CPU time so far (all threads).
func (p *Proc) CPU() time.Duration {
	cpu, _, _ := Usage(p.Pid())
	return cpu
}

// Usage reads a process's user+system CPU time and resident set size from
// /proc.
func Usage(pid int) (cpu time.Duration, rss int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// Fields after the parenthesised command name; utime and stime are
	// fields 14 and 15 of the whole line, in clock ticks (USER_HZ = 100).
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	cpu = time.Duration(ut+st) * (time.Second / 100)
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return cpu, 0, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			rss = kb << 10
		}
	}
	return cpu, rss, nil
}

// Tail is the last n lines of s.
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// maxLog bounds the output a Proc keeps in memory.
const maxLog = 4 << 20

// logSink keeps the last maxLog bytes of a process's output, copies it to
// a file and hands complete lines to onLine.
type logSink struct {
	mu      sync.Mutex
	b       bytes.Buffer
	file    *os.File
	onLine  func(string)
	partial []byte
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.Write(p)
	if l.b.Len() > 2*maxLog {
		keep := append([]byte(nil), l.b.Bytes()[l.b.Len()-maxLog:]...)
		l.b.Reset()
		l.b.Write(keep)
	}
	if l.file != nil {
		_, _ = l.file.Write(p)
	}
	if l.onLine != nil {
		l.partial = append(l.partial, p...)
		for {
			i := bytes.IndexByte(l.partial, '\n')
			if i < 0 {
				break
			}
			l.onLine(string(l.partial[:i]))
			l.partial = l.partial[i+1:]
		}
	}
	return len(p), nil
}

func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.b.String()
	if len(s) > maxLog {
		s = s[len(s)-maxLog:]
	}
	return s
}

func (l *logSink) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.onLine != nil && len(l.partial) > 0 {
		l.onLine(string(l.partial))
		l.partial = nil
	}
	if l.file != nil {
		l.file.Close()
	}
}

package e2e

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// readmeStep is one numbered step of README.md's "Five minutes with the
// demo": the `make demo …` it starts in the demo's terminal, if any, and
// the shell its ```sh blocks paste into the other terminal.
type readmeStep struct {
	n      int
	demo   string
	script string
}

var (
	stepStart = regexp.MustCompile(`(?m)^(\d+)\. `)
	shBlock   = regexp.MustCompile("(?ms)^( *)```sh\n(.*?)^ *```")
	demoCmd   = regexp.MustCompile("`(make demo[^`]*)`")
)

func readmeSteps(t *testing.T, path string) []readmeStep {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "\n## Five minutes with the demo\n")
	if !ok {
		t.Fatalf("%s has no section \"Five minutes with the demo\"", path)
	}
	if i := strings.Index(section, "\n## "); i >= 0 {
		section = section[:i]
	}
	starts := stepStart.FindAllStringSubmatchIndex(section, -1)
	var steps []readmeStep
	for i, m := range starts {
		end := len(section)
		if i+1 < len(starts) {
			end = starts[i+1][0]
		}
		text := section[m[0]:end]
		n, _ := strconv.Atoi(section[m[2]:m[3]])
		st := readmeStep{n: n}
		if dm := demoCmd.FindStringSubmatch(text); dm != nil {
			st.demo = dm[1]
		}
		for _, b := range shBlock.FindAllStringSubmatch(text, -1) {
			indent := b[1]
			for _, line := range strings.SplitAfter(b[2], "\n") {
				st.script += strings.TrimPrefix(line, indent)
			}
		}
		steps = append(steps, st)
	}
	if len(steps) < 3 {
		t.Fatalf("README.md: %d five-minute steps found", len(steps))
	}
	return steps
}

// stepShell is one bash, the second terminal of the README: variables set
// in one step (ALICE) live on in the next, across demo restarts.
type stepShell struct {
	cmd    *exec.Cmd
	stdin  interface{ Write([]byte) (int, error) }
	lines  chan string
	stderr *syncBuffer
}

func startStepShell(t *testing.T, dir string, ports demoPorts) *stepShell {
	t.Helper()
	cmd := exec.Command("bash", "--noprofile", "--norc")
	cmd.Dir = dir
	// As the demo's banner says to when its admin port moved.
	cmd.Env = append(os.Environ(), fmt.Sprintf("GATEHOUSE_ADMIN_LISTEN=127.0.0.1:%d", ports.admin))
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &stepShell{cmd: cmd, stdin: in, lines: make(chan string, 64), stderr: &syncBuffer{}}
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
		close(s.lines)
	}()
	t.Cleanup(func() {
		in.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return s
}

// checked is one `command   #=> expected` line and what it printed.
type checked struct {
	cmd, want, out, err string
}

// run pastes script into the shell; each line with a `#=>` comment runs
// with its output (stdout and stderr) captured and checked: every part of
// the comment between " … " must appear, in order.
func (s *stepShell) run(t *testing.T, script string) []checked {
	t.Helper()
	var checks []checked
	var b strings.Builder
	for _, line := range strings.SplitAfter(script, "\n") {
		i := strings.LastIndex(line, "#=>")
		if i < 0 {
			b.WriteString(line)
			continue
		}
		cmd, want := strings.TrimSpace(line[:i]), strings.TrimSpace(line[i+3:])
		fmt.Fprintf(&b, "__o=$( { %s\n} 2>&1 ); printf '@@RESULT %d %%s\\n' \"$(printf '%%s' \"$__o\" | base64 -w0)\"\n", cmd, len(checks))
		checks = append(checks, checked{cmd: cmd, want: want})
	}
	b.WriteString("\nprintf '@@DONE\\n'\n")
	if _, err := s.stdin.Write([]byte(b.String())); err != nil {
		t.Fatalf("the step shell: %v\n%s", err, s.stderr.String())
	}
	timeout := time.After(120 * time.Second)
	for {
		select {
		case line, ok := <-s.lines:
			if !ok {
				t.Fatalf("the step shell exited\n%s", s.stderr.String())
			}
			if line == "@@DONE" {
				for i := range checks {
					if checks[i].err == "" && checks[i].out == "" {
						checks[i].err = "did not run"
					}
				}
				return checks
			}
			rest, ok := strings.CutPrefix(line, "@@RESULT ")
			if !ok {
				continue
			}
			num, enc, _ := strings.Cut(rest, " ")
			i, _ := strconv.Atoi(num)
			out, _ := base64.StdEncoding.DecodeString(enc)
			checks[i].out = string(out)
			checks[i].err = contains(checks[i].out, checks[i].want)
		case <-timeout:
			t.Fatalf("the README step did not finish within 120 s\n%s", s.stderr.String())
		}
	}
}

// contains says what is missing when out lacks the parts of want (split
// at " … "), in order; "" when all are there.
func contains(out, want string) string {
	rest := out
	for _, part := range strings.Split(want, " … ") {
		part = strings.TrimSpace(strings.Trim(strings.TrimSpace(part), "…"))
		i := strings.Index(rest, part)
		if i < 0 {
			return fmt.Sprintf("the README says it prints %q; missing (in order): %q", want, part)
		}
		rest = rest[i+len(part):]
	}
	return ""
}

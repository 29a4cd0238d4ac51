package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMakeDemo runs `make demo` as a new user would, on a copy of the
// repository (the files git would have in a fresh clone) and on free ports:
//
//   - it waits for the banner and runs the curl commands it prints, checking
//     the status each comment promises;
//   - it runs README.md's "Five minutes with the demo" steps, taken from the
//     README itself, in order, in one shell (as pasted into one terminal),
//     restarting the demo where a step says `make demo …`, and checks what
//     each `#=>` comment says the line prints (among them the MCP steps:
//     examples/agent listing and calling tools of examples/mcp-server as
//     alice, as bob, and for alice through the token exchange);
//   - Ctrl-C stops everything within 10 s and exits 0; a process of the demo
//     that dies (Envoy, killed) makes it stop and exit non-zero.
func TestMakeDemo(t *testing.T) {
	dir := copyRepo(t)
	ports := newDemoPorts(t)
	steps := readmeSteps(t, filepath.Join(repoRoot, "README.md"))

	sh := startStepShell(t, dir, ports)
	var d *demo
	mcpChecks := 0 // checked lines of the MCP agent (bin/agent), the exchange among them
	exchange := false
	for _, st := range steps {
		if st.demo != "" {
			if d != nil {
				d.interrupt(t, ports)
			}
			d = startDemo(t, dir, ports, strings.Fields(st.demo)[2:]...)
			if st.n == 1 {
				d.runBannerCurls(t)
			}
		}
		if d == nil {
			t.Fatalf("README step %d runs commands before any step starts the demo", st.n)
		}
		checks := sh.run(t, ports.rewrite(st.script))
		t.Logf("README step %d: %d checked lines", st.n, len(checks))
		for _, c := range checks {
			if strings.HasPrefix(c.cmd, "bin/agent ") && strings.Contains(c.cmd, "/tools/mcp") {
				mcpChecks++
				exchange = exchange || strings.Contains(c.cmd, "--exchange-url")
			}
			if c.err != "" {
				t.Errorf("README step %d: %s\n  %s\n  printed: %q", st.n, c.cmd, c.err, tail(c.out, 20))
			}
		}
	}
	if d == nil {
		t.Fatal("no README step starts the demo")
	}
	// The MCP steps: alice's and bob's tools, and the agent acting for
	// alice through the token exchange (examples/agent, examples/mcp-server).
	if mcpChecks < 3 || !exchange {
		t.Errorf("README's demo steps check %d lines of bin/agent on /tools/mcp (exchange: %v); want alice's, bob's and the agent acting for alice", mcpChecks, exchange)
	}

	// A process of the demo dies: the demo notices, stops the rest, fails.
	envoyPid, ok := d.pids["envoy"]
	if !ok {
		t.Fatalf("the banner names no envoy process:\n%s", d.banner.String())
	}
	_ = syscall.Kill(envoyPid, syscall.SIGKILL)
	select {
	case err := <-d.done:
		d.stopped = true
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() == 0 {
			t.Errorf("the demo exited with %v after Envoy died; want a non-zero exit", err)
		}
		if out := d.banner.String() + d.log.String(); !strings.Contains(out, "envoy exited") {
			t.Errorf("the demo did not say that Envoy exited:\n%s", tail(out, 40))
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("the demo still runs 15 s after its Envoy died\n%s", d.log.String())
	}
	ports.expectClosed(t)
}

// A port in use stops the demo before it starts anything, with a non-zero
// exit and the variable that moves it.
func TestMakeDemoRefusesBusyPort(t *testing.T) {
	ports := newDemoPorts(t)
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", ports.admin))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cmd := exec.Command("make", "-s", "demo")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), ports.env()...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Fatalf("make demo with its admin port taken: %v, want a non-zero exit\n%s", err, out)
	}
	want := fmt.Sprintf("127.0.0.1:%d (DEMO_ADMIN_PORT) is in use", ports.admin)
	if !strings.Contains(string(out), want) {
		t.Errorf("make demo did not say %q:\n%s", want, out)
	}
}

// demoPorts are the demo's ports (examples/demo/run.sh), all free.
type demoPorts struct{ edge, admin, xds, authz, envoyAdmin, orders, shop, signin, platform, mcp int }

func newDemoPorts(t *testing.T) demoPorts {
	return demoPorts{freePort(t), freePort(t), freePort(t), freePort(t), freePort(t), freePort(t), freePort(t), freePort(t), freePort(t), freePort(t)}
}

func (p demoPorts) env() []string {
	return []string{
		"DEMO_EDGE_PORT=" + strconv.Itoa(p.edge), "DEMO_ADMIN_PORT=" + strconv.Itoa(p.admin),
		"DEMO_XDS_PORT=" + strconv.Itoa(p.xds), "DEMO_AUTHZ_PORT=" + strconv.Itoa(p.authz),
		"DEMO_ENVOY_ADMIN_PORT=" + strconv.Itoa(p.envoyAdmin),
		"DEMO_ORDERS_PORT=" + strconv.Itoa(p.orders), "DEMO_SHOP_PORT=" + strconv.Itoa(p.shop),
		"DEMO_SIGNIN_PORT=" + strconv.Itoa(p.signin),
		"DEMO_PLATFORM_PORT=" + strconv.Itoa(p.platform), "DEMO_MCP_PORT=" + strconv.Itoa(p.mcp),
	}
}

// rewrite maps the default ports the README's commands use to these. The
// upstream ports stay: they are the catalog's, which the demo maps.
func (p demoPorts) rewrite(s string) string {
	return strings.NewReplacer(
		"localhost:10000", fmt.Sprintf("localhost:%d", p.edge),
		"127.0.0.1:9090", fmt.Sprintf("127.0.0.1:%d", p.admin),
		"localhost:9090", fmt.Sprintf("localhost:%d", p.admin),
		"localhost:9901", fmt.Sprintf("localhost:%d", p.envoyAdmin),
	).Replace(s)
}

func (p demoPorts) expectClosed(t *testing.T) {
	t.Helper()
	for _, port := range []int{p.edge, p.admin, p.xds, p.authz, p.envoyAdmin, p.orders, p.shop, p.signin, p.platform, p.mcp} {
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond); err == nil {
			c.Close()
			t.Errorf("port %d still answers after the demo stopped", port)
		}
	}
}

// demo is one `make demo` run, up to its banner.
type demo struct {
	cmd     *exec.Cmd
	done    chan error
	log     *syncBuffer // stderr
	banner  *syncBuffer // stdout
	curls   []string    // the banner's curl commands with a "# 200" etc.
	pids    map[string]int
	stopped bool
}

func startDemo(t *testing.T, dir string, ports demoPorts, args ...string) *demo {
	t.Helper()
	cmd := exec.Command("make", append([]string{"-s", "demo"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), ports.env()...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	d := &demo{cmd: cmd, done: make(chan error, 1), log: &syncBuffer{}, banner: &syncBuffer{}, pids: map[string]int{}}
	cmd.Stderr = d.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if !d.stopped {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-d.done
		}
	})

	sc := bufio.NewScanner(io.TeeReader(out, d.banner))
	// The first build of a fresh clone takes minutes; a warm cache, seconds.
	deadline := time.AfterFunc(300*time.Second, func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	up := false
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "curl ") && regexp.MustCompile(`# (200|401|403)`).MatchString(line) {
			d.curls = append(d.curls, line)
		}
		if rest, ok := strings.CutPrefix(line, "Processes:"); ok {
			f := strings.Fields(rest)
			for i := 0; i+1 < len(f); i += 2 {
				d.pids[f[i]], _ = strconv.Atoi(f[i+1])
			}
		}
		if strings.Contains(line, "Ctrl-C to stop") {
			up = true
			break
		}
	}
	deadline.Stop()
	if !up {
		t.Fatalf("make demo %s did not come up:\n%s\n%s", strings.Join(args, " "), d.banner.String(), d.log.String())
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()
	return d
}

// runBannerCurls runs the curl commands the banner prints and checks the
// status each one's comment promises.
func (d *demo) runBannerCurls(t *testing.T) {
	t.Helper()
	if len(d.curls) < 3 {
		t.Fatalf("the demo printed %d curl commands with an expected status:\n%s\n%s", len(d.curls), d.banner.String(), d.log.String())
	}
	tokens := map[string]string{}
	for name, args := range map[string][]string{"ALICE": {"--user", "user:default/alice"}, "BOB": {"--user", "user:default/bob"}, "SHOP": {"--client-id", "shop"}} {
		tok, err := exec.Command(d.cmd.Dir+"/bin/gatehouse", append([]string{"token", "--admin", d.adminURL()}, args...)...).Output()
		if err != nil {
			t.Fatalf("gatehouse token %v: %v", args, err)
		}
		tokens[name] = strings.TrimSpace(string(tok))
	}
	seen := map[string]bool{}
	for _, c := range d.curls {
		want := regexp.MustCompile(`# (\d{3})`).FindStringSubmatch(c)[1]
		command := strings.SplitN(c, "#", 2)[0]
		// Ask curl for the status alone, whatever the printed command shows.
		command = strings.Replace(command, "curl ", `curl -s -o /dev/null -w '%{http_code}' `, 1)
		command = strings.ReplaceAll(command, "| head -1", "")
		sh := exec.Command("bash", "-c", command)
		sh.Env = append(sh.Environ(), "ALICE="+tokens["ALICE"], "BOB="+tokens["BOB"], "SHOP="+tokens["SHOP"])
		got, err := sh.Output()
		if err != nil || strings.TrimSpace(string(got)) != want {
			t.Errorf("%s\n  -> %q (%v), the demo promised %s", c, got, err, want)
		}
		seen[want] = true
	}
	for _, code := range []string{"200", "401", "403"} {
		if !seen[code] {
			t.Errorf("no printed command shows a %s", code)
		}
	}
}

func (d *demo) adminURL() string {
	for _, e := range d.cmd.Env {
		if v, ok := strings.CutPrefix(e, "DEMO_ADMIN_PORT="); ok {
			return "http://127.0.0.1:" + v
		}
	}
	return "http://127.0.0.1:9090"
}

// interrupt presses Ctrl-C (SIGINT to the process group, as a terminal
// does) and expects the demo to stop within 10 s, exit 0 and free its ports.
func (d *demo) interrupt(t *testing.T, ports demoPorts) {
	t.Helper()
	start := time.Now()
	_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGINT)
	select {
	case err := <-d.done:
		d.stopped = true
		// make itself dies of the SIGINT (as in a terminal); the script's
		// own failure would show as make's "Error 1", exit status 2.
		var ee *exec.ExitError
		if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == -1 && strings.Contains(err.Error(), "interrupt")) {
			t.Errorf("the demo exited with %v after Ctrl-C; want 0 or make's own interrupt\n%s", err, tail(d.log.String(), 40))
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the demo did not stop within 10 s of Ctrl-C\n%s", d.log.String())
	}
	t.Logf("demo stopped %s after Ctrl-C", time.Since(start).Round(time.Millisecond))
	ports.expectClosed(t)
}

// copyRepo copies the files git would check out (tracked, and new files
// not ignored: the change under test) to a temporary directory, with .tools
// linked to the repository's (Envoy and the FastAPI venv, installed once).
func copyRepo(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("git", "-C", repoRoot, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	dst := t.TempDir()
	for _, rel := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		src := filepath.Join(repoRoot, rel)
		st, err := os.Lstat(src)
		if err != nil || !st.Mode().IsRegular() {
			continue // deleted in the work tree, or a link such as .tools
		}
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dst, filepath.Dir(rel)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, rel), data, st.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	tools := filepath.Join(repoRoot, ".tools")
	if err := os.MkdirAll(tools, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(tools, filepath.Join(dst, ".tools")); err != nil {
		t.Fatal(err)
	}
	return dst
}

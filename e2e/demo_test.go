package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMakeDemo runs `make demo` as a user would: waits for its banner, runs
// the curl commands it prints, checks each answers with the status its
// comment promises, then presses Ctrl-C and expects everything to stop
// within 10 s. The demo uses fixed ports (10000, 9090, 18000, 18001, 9901,
// 8081, 8082).
func TestMakeDemo(t *testing.T) {
	for _, port := range []int{10000, 9090, 18000, 18001, 9901, 8081, 8082} {
		if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err != nil {
			t.Fatalf("port %d, which the demo uses, is taken: %v", port, err)
		} else {
			l.Close()
		}
	}
	cmd := exec.Command("make", "-s", "demo")
	cmd.Dir = repoRoot
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	log := &syncBuffer{}
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})

	banner := &syncBuffer{}
	sc := bufio.NewScanner(io.TeeReader(out, banner))
	var curls []string
	deadline := time.AfterFunc(120*time.Second, func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(strings.TrimSpace(line), "curl ") && regexp.MustCompile(`# (200|401|403)`).MatchString(line) {
			curls = append(curls, strings.TrimSpace(line))
		}
		if strings.Contains(line, "Ctrl-C to stop") {
			break
		}
	}
	deadline.Stop()
	if len(curls) < 3 {
		t.Fatalf("the demo printed %d curl commands with an expected status:\n%s\n%s", len(curls), banner.String(), log.String())
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()

	tokens := map[string]string{}
	for _, u := range []string{"alice", "bob"} {
		tok, err := exec.Command(repoRoot+"/bin/gatehouse", "token", "--user", "user:default/"+u).Output()
		if err != nil {
			t.Fatalf("gatehouse token --user %s: %v", u, err)
		}
		tokens[strings.ToUpper(u)] = strings.TrimSpace(string(tok))
	}
	seen := map[string]bool{}
	for _, c := range curls {
		want := regexp.MustCompile(`# (\d{3})`).FindStringSubmatch(c)[1]
		command := strings.SplitN(c, "#", 2)[0]
		// Ask curl for the status alone, whatever the printed command shows.
		command = strings.Replace(command, "curl ", `curl -s -o /dev/null -w '%{http_code}' `, 1)
		command = strings.ReplaceAll(command, "| head -1", "")
		sh := exec.Command("bash", "-c", command)
		sh.Env = append(sh.Environ(), "ALICE="+tokens["ALICE"], "BOB="+tokens["BOB"])
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

	// Ctrl-C: SIGINT to the whole foreground process group.
	start := time.Now()
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
	select {
	case <-done:
		stopped = true
	case <-time.After(10 * time.Second):
		t.Fatalf("the demo did not stop within 10 s of Ctrl-C\n%s", log.String())
	}
	t.Logf("demo stopped %s after Ctrl-C", time.Since(start).Round(time.Millisecond))
	for _, port := range []int{10000, 9090, 18000, 8081} {
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond); err == nil {
			c.Close()
			t.Errorf("port %d still answers after the demo stopped", port)
		}
	}
}

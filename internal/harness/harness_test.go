package harness

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestFreePortNeverTwice(t *testing.T) {
	seen := map[int]bool{}
	for range 50 {
		p, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if seen[p] || p < 20000 || p >= 32000 {
			t.Fatalf("port %d: repeated or outside 20000-32000", p)
		}
		seen[p] = true
	}
}

func TestProcLogLinesAndStop(t *testing.T) {
	var lines []string
	// The trap is set before the first line (so "two" means it is in
	// place), and the shell only ever waits on short foreground sleeps: a
	// TERM that arrived while it forked a long background sleep left that
	// sleep holding the output pipes for 30 s (seen under load in CI).
	// (Its stderr then goes away: the shell reports a killed sleep there.)
	p, err := Start(Spec{Name: "sh", Args: []string{"sh", "-c", "trap 'exit 0' TERM; echo one; echo two >&2; exec 2>/dev/null; while :; do sleep 0.1; done"},
		OnLine: func(l string) { lines = append(lines, l) }})
	if err != nil {
		t.Fatal(err)
	}
	if err := Poll(p, 5*time.Second, 10*time.Millisecond, "two lines", func() error {
		if !strings.Contains(p.Log(), "two") {
			return context.DeadlineExceeded
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if p.Exited() {
		t.Fatal("exited early")
	}
	if killed := p.Stop(5 * time.Second); killed {
		t.Fatal("SIGTERM did not stop it")
	}
	if got := strings.Join(lines, ","); got != "one,two" {
		t.Fatalf("lines %q", got)
	}
	if p.Tail(1) != "two" {
		t.Fatalf("tail %q", p.Tail(1))
	}
}

func TestStopKillsWhatIgnoresSIGTERM(t *testing.T) {
	p, err := Start(Spec{Name: "stubborn", Args: []string{"sh", "-c", "trap '' TERM; echo up; while :; do sleep 1; done"}})
	if err != nil {
		t.Fatal(err)
	}
	_ = Poll(p, 5*time.Second, 10*time.Millisecond, "up", func() error {
		if p.Log() == "" {
			return context.DeadlineExceeded
		}
		return nil
	})
	if !p.Stop(200 * time.Millisecond) {
		t.Fatal("Stop did not report the kill")
	}
}

func TestPollSaysTheProcessExited(t *testing.T) {
	p, err := Start(Spec{Name: "quitter", Args: []string{"sh", "-c", "echo bye; exit 3"}})
	if err != nil {
		t.Fatal(err)
	}
	err = WaitHTTP(p, "http://127.0.0.1:1/", 5*time.Second)
	if err == nil || !strings.Contains(err.Error(), "quitter exited (exit status 3)") || !strings.Contains(err.Error(), "bye") {
		t.Fatalf("error %v", err)
	}
}

func TestStartReady(t *testing.T) {
	p, url, err := StartReady(context.Background(), Spec{Name: "runner", Args: []string{"sh", "-c", "echo starting >&2; echo READY http://x; sleep 30"}}, 5*time.Second)
	if err != nil || url != "http://x" {
		t.Fatalf("%q %v", url, err)
	}
	p.Stop(time.Second)
	p, _, err = StartReady(context.Background(), Spec{Name: "runner", Args: []string{"sh", "-c", "echo broken >&2; exit 1"}}, 5*time.Second)
	if err == nil || !strings.Contains(err.Error(), "exited before it was ready") || !strings.Contains(p.Log(), "broken") {
		t.Fatalf("error %v, log %q", err, p.Log())
	}
}

func TestStartFailsWithTheReason(t *testing.T) {
	_, err := Start(Spec{Name: "nothing", Args: []string{"/nonexistent/binary"}})
	if err == nil || !strings.Contains(err.Error(), "starting nothing") {
		t.Fatalf("error %v", err)
	}
}

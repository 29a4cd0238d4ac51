package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// backstage is the real Backstage backend of examples/backstage, run as a
// child process (run.sh execs node, so the child's pid is node's).
type backstage struct {
	cmd     *exec.Cmd // nil when attached to a running Backstage
	pid     int       // node's pid (0: unknown)
	done    chan struct{}
	logPath string
	url     string
	token   string
	client  *http.Client
}

// startBackstage runs examples/backstage/run.sh on a free loopback port and
// waits for its READY line.
func startBackstage(ctx context.Context, repo, catalogFile, logPath, token string, processingSeconds int) (*backstage, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child holds its own descriptor
	cmd := exec.Command("bash", filepath.Join(repo, "examples", "backstage", "run.sh"), strconv.Itoa(port), catalogFile)
	cmd.Env = append(os.Environ(),
		"BACKSTAGE_STATIC_TOKEN="+token,
		"BACKSTAGE_PROCESSING_INTERVAL_SECONDS="+strconv.Itoa(processingSeconds),
		"BACKSTAGE_READY_TIMEOUT=300",
		"NODE_ENV=production")
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting examples/backstage/run.sh: %w", err)
	}
	b := &backstage{cmd: cmd, pid: cmd.Process.Pid, done: make(chan struct{}), logPath: logPath, token: token,
		client: &http.Client{Timeout: 2 * time.Minute}}
	go func() { _ = cmd.Wait(); close(b.done) }()
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "READY "); ok {
				ready <- strings.TrimSpace(rest)
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case b.url = <-ready:
		return b, nil
	case <-b.done:
		return nil, fmt.Errorf("Backstage exited before it was ready; its log:\n%s", tailFile(logPath, 30))
	case <-ctx.Done():
		b.stop()
		return nil, ctx.Err()
	case <-time.After(6 * time.Minute):
		b.stop()
		return nil, fmt.Errorf("Backstage not ready after 6 minutes; its log:\n%s", tailFile(logPath, 30))
	}
}

// stop sends SIGTERM to the process group, then SIGKILL after 20 s.
// attachBackstage uses a Backstage that is already running (pid, if not 0,
// is its node process, for its CPU time).
func attachBackstage(url, token string, pid int) *backstage {
	return &backstage{url: strings.TrimSuffix(url, "/"), token: token, pid: pid, done: make(chan struct{}),
		client: &http.Client{Timeout: 2 * time.Minute}}
}

func (b *backstage) stop() {
	if b.cmd == nil {
		return
	}
	select {
	case <-b.done:
		return
	default:
	}
	_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-b.done:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
		<-b.done
	}
}

// cpu is the CPU time (user + system) node has used so far, from
// /proc/<pid>/stat; ok is false if the child is not node (yet).
func (b *backstage) cpu() (time.Duration, bool) {
	pid := b.pid
	if pid == 0 {
		return 0, false
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil || strings.TrimSpace(string(comm)) != "node" {
		return 0, false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// Fields after the parenthesised command: state is field 3, utime 14, stime 15.
	s := string(stat)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0, false
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / clockTicks, true
}

const clockTicks = 100 // USER_HZ on Linux

// get is a GET of Backstage's API with the static token, decoded into out.
func (b *backstage) get(ctx context.Context, path string, out any) error {
	return b.call(ctx, "GET", path, nil, out)
}

func (b *backstage) call(ctx context.Context, method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, b.url+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+b.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %.200s", method, path, resp.Status, data)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(data, out)
}

// total is Backstage's count of (stitched) entities.
func (b *backstage) total(ctx context.Context) (int, error) {
	var r struct {
		TotalItems int `json:"totalItems"`
	}
	err := b.get(ctx, "/api/catalog/entities/by-query?limit=1&fields=metadata.uid", &r)
	return r.TotalItems, err
}

// entity is one entity from Backstage, by kind and name (default namespace).
type bsEntity struct {
	Metadata struct {
		Name        string            `json:"name"`
		UID         string            `json:"uid"`
		Etag        string            `json:"etag"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
}

func (b *backstage) entity(ctx context.Context, kind, name string) (bsEntity, error) {
	var e bsEntity
	err := b.get(ctx, "/api/catalog/entities/by-name/"+url.PathEscape(kind)+"/default/"+url.PathEscape(name), &e)
	return e, err
}

// refreshLocations asks Backstage to re-read every Location entity now
// (otherwise the file is re-read on the processing interval).
func (b *backstage) refreshLocations(ctx context.Context) error {
	var r struct {
		Items []struct {
			Metadata struct {
				Namespace string `json:"namespace"`
				Name      string `json:"name"`
			} `json:"metadata"`
		} `json:"items"`
	}
	if err := b.get(ctx, "/api/catalog/entities/by-query?filter=kind=location&fields=metadata.namespace,metadata.name", &r); err != nil {
		return err
	}
	if len(r.Items) == 0 {
		return fmt.Errorf("Backstage lists no Location entity")
	}
	for _, it := range r.Items {
		ref := "location:" + it.Metadata.Namespace + "/" + it.Metadata.Name
		if err := b.call(ctx, "POST", "/api/catalog/refresh", map[string]string{"entityRef": ref}, nil); err != nil {
			return err
		}
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tailFile(path string, n int) string {
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func execOutput(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).Output()
	return string(out), err
}

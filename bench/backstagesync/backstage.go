package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/harness"
)

// backstage is the real Backstage backend of examples/backstage, run as a
// child process (run.sh execs node, so the child's pid is node's).
type backstage struct {
	proc    *harness.Proc // nil when attached to a running Backstage
	pid     int           // node's pid (0: unknown)
	done    <-chan struct{}
	logPath string
	url     string
	token   string
	client  *http.Client
}

// startBackstage runs examples/backstage/run.sh on a free loopback port and
// waits for its READY line.
func startBackstage(ctx context.Context, repo, catalogFile, logPath, token string, processingSeconds int) (*backstage, error) {
	port, err := harness.FreePort()
	if err != nil {
		return nil, err
	}
	p, u, err := harness.StartReady(ctx, harness.Spec{Name: "backstage", LogFile: logPath,
		Args: []string{"bash", filepath.Join(repo, "examples", "backstage", "run.sh"), strconv.Itoa(port), catalogFile},
		Env: []string{
			"BACKSTAGE_STATIC_TOKEN=" + token,
			"BACKSTAGE_PROCESSING_INTERVAL_SECONDS=" + strconv.Itoa(processingSeconds),
			"BACKSTAGE_READY_TIMEOUT=300",
			"NODE_ENV=production"}}, 6*time.Minute)
	if p == nil {
		return nil, err
	}
	b := &backstage{proc: p, pid: p.Pid(), done: p.Done(), logPath: logPath, url: u, token: token,
		client: &http.Client{Timeout: 2 * time.Minute}}
	if err != nil {
		b.stop()
		if err == ctx.Err() {
			return nil, err
		}
		return nil, fmt.Errorf("Backstage %v; its log:\n%s", err, tailFile(logPath, 30))
	}
	return b, nil
}

// stop sends SIGTERM to the process group, then SIGKILL after 20 s.
// attachBackstage uses a Backstage that is already running (pid, if not 0,
// is its node process, for its CPU time).
func attachBackstage(url, token string, pid int) *backstage {
	return &backstage{url: strings.TrimSuffix(url, "/"), token: token, pid: pid, done: make(chan struct{}),
		client: &http.Client{Timeout: 2 * time.Minute}}
}

func (b *backstage) stop() {
	if b.proc != nil {
		b.proc.Stop(20 * time.Second)
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
	cpu, _, err := harness.Usage(pid)
	if cpu == 0 && err != nil {
		return 0, false
	}
	return cpu, true
}

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

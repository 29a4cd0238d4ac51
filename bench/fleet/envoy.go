package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/gatehouse-dev/gatehouse/internal/harness"
)

type envoyRow struct {
	components int
	delta      bool
	admin      time.Duration // process start → admin answers
	ready      time.Duration // process start → listener active, all clusters, routes loaded, /ready LIVE
	route      time.Duration // one-route change: file write → Envoy's RDS update
	upstream   time.Duration // one-upstream change: file write → Envoy's CDS update
	rss        int64
	heap       int64 // tcmalloc heap_size from /memory
	allocated  int64
}

// stats reads Envoy counters and gauges by exact name.
func envoyStats(admin string, names ...string) (map[string]int64, error) {
	resp, err := http.Get("http://" + admin + "/stats?format=json&filter=" + "^(" + strings.Join(names, "|") + ")$")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Stats []struct {
			Name  string `json:"name"`
			Value any    `json:"value"`
		} `json:"stats"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, s := range body.Stats {
		if v, ok := s.Value.(float64); ok {
			out[s.Name] = int64(v)
		}
	}
	return out, nil
}

const (
	statListeners  = `listener_manager\.total_listeners_active`
	statClusters   = `cluster_manager\.active_clusters`
	statRDSOK      = `http\.edge\.rds\.edge_routes\.update_success`
	statRDSBad     = `http\.edge\.rds\.edge_routes\.update_rejected`
	statCDSOK      = `cluster_manager\.cds\.update_success`
	statCDSBad     = `cluster_manager\.cds\.update_rejected`
	statListenerOK = `listener_manager\.lds\.update_success`
)

func statKey(re string) string { return strings.ReplaceAll(re, `\.`, ".") }

// runEnvoy serves the catalog of n components to one real Envoy: how long
// until it is ready, its memory, and how long a route change and an
// upstream change take to be applied by it.
func runEnvoy(c config, bin, work string, n int, delta bool, p harness.Ports, states []*expected) (envoyRow, error) {
	proto := map[bool]string{false: "sotw", true: "delta"}[delta]
	row := envoyRow{components: n, delta: delta}
	logf("%d components, one real Envoy (%s)", n, proto)
	dir := filepath.Join(work, fmt.Sprintf("envoy-live-%d-%s", n, proto))
	defer os.RemoveAll(dir)
	cat := newCatalog(n)
	if _, err := cat.WriteDir(dir); err != nil {
		return row, err
	}
	gw := filepath.Join(work, fmt.Sprintf("gh-envoy-%d-%s", n, proto))
	os.MkdirAll(gw, 0o755)
	g, err := startGatehouse(bin, gw, dir, p, c.poll)
	if err != nil {
		return row, err
	}
	defer g.stop()
	if _, err := g.waitPublished(states[0].model, c.timeout); err != nil {
		return row, err
	}
	adminPort, err := harness.FreePort()
	if err != nil {
		return row, err
	}
	args := []string{"bootstrap", "--role", "edge", "--node-id", "bench-envoy-" + proto, "--xds-address", g.xdsAddr, "--admin-port", fmt.Sprint(adminPort)}
	if delta {
		args = append(args, "--delta")
	}
	boot, err := exec.Command(bin, args...).Output()
	if err != nil {
		return row, fmt.Errorf("gatehouse bootstrap: %w", err)
	}
	bootPath := filepath.Join(gw, "envoy.yaml")
	if err := os.WriteFile(bootPath, boot, 0o644); err != nil {
		return row, err
	}
	logPath := filepath.Join(gw, "envoy.log")
	start := time.Now()
	env, err := harness.Start(harness.Spec{Name: "envoy", LogFile: logPath,
		Args: []string{c.envoyBin, "-c", bootPath, "--use-dynamic-base-id", "-l", "warning", "--concurrency", "2"}})
	if err != nil {
		return row, err
	}
	defer env.Stop(10 * time.Second)
	exited := env.Done()
	admin := fmt.Sprintf("127.0.0.1:%d", adminPort)
	wantClusters := int64(len(states[0].names[resourcev3.ClusterType]))
	deadline := time.Now().Add(c.timeout)
	for row.ready == 0 {
		select {
		case <-exited:
			return row, fmt.Errorf("envoy exited (log %s)", logPath)
		default:
		}
		if time.Now().After(deadline) {
			return row, fmt.Errorf("envoy not ready within %s (log %s)", c.timeout, logPath)
		}
		st, err := envoyStats(admin, statListeners, statClusters, statRDSOK, statRDSBad, statCDSBad)
		if err != nil {
			time.Sleep(5 * time.Millisecond)
			continue
		}
		if row.admin == 0 {
			row.admin = time.Since(start)
		}
		if st[statKey(statRDSBad)] > 0 || st[statKey(statCDSBad)] > 0 {
			return row, fmt.Errorf("envoy rejected the configuration (log %s, gatehouse /debug/nodes)", logPath)
		}
		if st[statKey(statListeners)] >= 1 && st[statKey(statClusters)] >= wantClusters && st[statKey(statRDSOK)] >= 1 && ready(admin) {
			row.ready = time.Since(start)
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	if u, err := readUsage(env.Pid()); err == nil {
		row.rss = u.rss
	}
	row.heap, row.allocated = envoyMemory(admin)
	logf("  ready after %s (admin up after %s), RSS %d MiB", row.ready.Round(time.Millisecond), row.admin.Round(time.Millisecond), row.rss>>20)

	// Walk the change sequence; time the route and upstream changes.
	for k, ch := range changes(n) {
		exp := states[k+1]
		before, err := envoyStats(admin, statRDSOK, statCDSOK)
		if err != nil {
			return row, err
		}
		ch.mutate(cat)
		t0 := time.Now()
		if _, err := cat.WriteDir(dir); err != nil {
			return row, err
		}
		if _, err := g.waitPublished(exp.model, c.timeout); err != nil {
			return row, err
		}
		var stat string
		switch k {
		case 1:
			stat = statKey(statRDSOK)
		case 2:
			stat = statKey(statCDSOK)
		default:
			time.Sleep(300 * time.Millisecond)
			continue
		}
		for {
			st, err := envoyStats(admin, statRDSOK, statCDSOK, statRDSBad, statCDSBad)
			if err == nil && st[stat] > before[stat] {
				d := time.Since(t0)
				if k == 1 {
					row.route = d
				} else {
					row.upstream = d
				}
				break
			}
			if err == nil && (st[statKey(statRDSBad)] > 0 || st[statKey(statCDSBad)] > 0) {
				return row, fmt.Errorf("envoy rejected a change (log %s)", logPath)
			}
			if time.Since(t0) > c.timeout {
				return row, fmt.Errorf("%s: envoy did not apply it within %s", ch.name, c.timeout)
			}
			time.Sleep(5 * time.Millisecond)
		}
		logf("  %s applied by Envoy after %s", ch.name, time.Since(t0).Round(time.Millisecond))
	}
	return row, nil
}

func ready(admin string) bool {
	resp, err := http.Get("http://" + admin + "/ready")
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == 200
}

func envoyMemory(admin string) (heap, allocated int64) {
	resp, err := http.Get("http://" + admin + "/memory")
	if err != nil {
		return 0, 0
	}
	defer resp.Body.Close()
	var m struct {
		Allocated string `json:"allocated"`
		HeapSize  string `json:"heap_size"`
	}
	if json.NewDecoder(resp.Body).Decode(&m) != nil {
		return 0, 0
	}
	fmt.Sscan(m.HeapSize, &heap)
	fmt.Sscan(m.Allocated, &allocated)
	return heap, allocated
}

func printEnvoy(w io.Writer, rows []envoyRow) {
	fmt.Fprintln(w, "One real Envoy (envoy/install.sh), bootstrapped with `gatehouse bootstrap`: from process start until the edge listener is active, every cluster is loaded, RDS applied and /ready says LIVE; then a change from the file write until Envoy's update_success counter moves:")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| components | protocol | admin up | **ready** | one route applied | one upstream applied | Envoy RSS | heap / allocated |")
	fmt.Fprintln(w, "|---:|---|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		fmt.Fprintf(w, "| %d | %s | %s | **%s** | %s | %s | %s | %s / %s |\n", r.components, map[bool]string{false: "SotW", true: "delta"}[r.delta],
			fmtDur(r.admin), fmtDur(r.ready), fmtDur(r.route), fmtDur(r.upstream), mib(r.rss), mib(r.heap), mib(r.allocated))
	}
	fmt.Fprintln(w)
}

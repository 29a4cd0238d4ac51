package main

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// requests is what a scenario sends: one shared request repeated
// (cached), or a pre-built request per distinct fresh token, each sent
// once (the run ends early when they run out).
type requests struct {
	reqs   []*authv3.CheckRequest
	repeat bool
}

func (r requests) get(i int64) *authv3.CheckRequest {
	if r.repeat {
		return r.reqs[i%int64(len(r.reqs))]
	}
	if i >= int64(len(r.reqs)) {
		return nil
	}
	return r.reqs[i]
}

func checkReq(route, path, token string) *authv3.CheckRequest {
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{Address: "127.0.0.1", PortSpecifier: &core.SocketAddress_PortValue{PortValue: 40000}}}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "bench", Method: "GET", Path: path, Host: "gw.example.com", Scheme: "http", Protocol: "HTTP/1.1",
			Headers: map[string]string{
				":authority": "gw.example.com", ":method": "GET", ":path": path, ":scheme": "http",
				"authorization": "Bearer " + token, "x-request-id": "bench", "user-agent": "checkload", "accept": "*/*",
			},
		}},
		ContextExtensions: map[string]string{"route_id": route},
	}}
}

// result of one scenario run.
type result struct {
	n         int           // checks completed
	elapsed   time.Duration // wall time of the run
	lat       []time.Duration
	serverCPU time.Duration // CPU of the server process during the run
	genCPU    time.Duration // CPU of the load generator (this process) during the run
	rate      float64       // open loop: the target rate
	// open loop: p99 of how late the pacer handed checks to the senders
	// (included in the latencies).
	pacerLate99 time.Duration
}

func (r result) rps() float64 { return float64(r.n) / r.elapsed.Seconds() }

// q is a latency quantile.
func (r result) q(q float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[int(float64(len(r.lat)-1)*q)]
}

func (r result) cpuPer1k(d time.Duration) float64 {
	if r.n == 0 {
		return 0
	}
	return d.Seconds() / float64(r.n) * 1000
}

// target is a Check server and the status code a scenario expects from it.
type target struct {
	srv  *server
	want int32
}

// client is one gRPC connection to a server, reused by its scenarios.
func dial(addr string) (authv3.AuthorizationClient, func(), error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, err
	}
	return authv3.NewAuthorizationClient(conn), func() { conn.Close() }, nil
}

func check(c authv3.AuthorizationClient, req *authv3.CheckRequest, want int32) error {
	r, err := c.Check(context.Background(), req)
	if err != nil {
		return err
	}
	if got := r.GetStatus().GetCode(); got != want {
		return fmt.Errorf("status %d (want %d): %v", got, want, r)
	}
	return nil
}

// closedLoop keeps conc Checks in flight for d (or until the requests run
// out): the maximum throughput.
func closedLoop(c authv3.AuthorizationClient, t target, reqs requests, d time.Duration, conc int) (result, error) {
	var next, failed atomic.Int64
	var firstErr atomic.Value
	lats := make([][]time.Duration, conc)
	cpu0, gen0 := t.srv.cpu(), selfCPU()
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			lats[w] = make([]time.Duration, 0, 1<<14)
			for {
				t0 := time.Now()
				if !t0.Before(deadline) {
					return
				}
				req := reqs.get(next.Add(1) - 1)
				if req == nil {
					return
				}
				err := check(c, req, t.want)
				lats[w] = append(lats[w], time.Since(t0))
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		}(w)
	}
	wg.Wait()
	return finish(t, lats, start, cpu0, gen0, failed.Load(), firstErr.Load())
}

// openLoop sends Checks at a fixed rate for d, each at its scheduled time
// whatever happened to the previous ones, and measures every latency from
// the scheduled send time (no coordinated omission: when the server falls
// behind, the wait counts). One pacer hands scheduled checks to workers;
// it sleeps with nanosleep(2), which wakes within tens of µs, where Go's
// timers wake up to a millisecond late on Linux. workers bounds the checks
// in flight; when all are busy the next checks wait, and that wait counts.
func openLoop(c authv3.AuthorizationClient, t target, reqs requests, rate float64, d time.Duration, workers int) (result, error) {
	total := int64(rate * d.Seconds())
	if !reqs.repeat && total > int64(len(reqs.reqs)) {
		total = int64(len(reqs.reqs))
	}
	interval := time.Duration(float64(time.Second) / rate)
	var failed atomic.Int64
	var firstErr atomic.Value
	lats := make([][]time.Duration, workers)
	type job struct {
		i  int64
		at time.Time
	}
	jobs := make(chan job, workers)
	cpu0, gen0 := t.srv.cpu(), selfCPU()
	start := time.Now().Add(10 * time.Millisecond)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for j := range jobs {
				err := check(c, reqs.get(j.i), t.want)
				lats[w] = append(lats[w], time.Since(j.at))
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		}(w)
	}
	var late []time.Duration // how late the pacer handed each check over
	// The pacer keeps its own thread: its nanosleep wake-ups go straight
	// to it.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for i := int64(0); i < total; i++ {
		at := start.Add(time.Duration(i) * interval)
		if wait := time.Until(at); wait > 0 {
			ts := syscall.NsecToTimespec(wait.Nanoseconds())
			_ = syscall.Nanosleep(&ts, nil)
		}
		jobs <- job{i, at}
		late = append(late, time.Since(at))
	}
	close(jobs)
	wg.Wait()
	r, err := finish(t, lats, start, cpu0, gen0, failed.Load(), firstErr.Load())
	r.rate = rate
	slices.Sort(late)
	if len(late) > 0 {
		r.pacerLate99 = late[(len(late)-1)*99/100]
	}
	return r, err
}

func finish(t target, lats [][]time.Duration, start time.Time, cpu0, gen0 time.Duration, failed int64, firstErr any) (result, error) {
	el := time.Since(start)
	r := result{elapsed: el, serverCPU: t.srv.cpu() - cpu0, genCPU: selfCPU() - gen0}
	for _, l := range lats {
		r.lat = append(r.lat, l...)
	}
	r.n = len(r.lat)
	if failed > 0 {
		return r, fmt.Errorf("%d of %d checks failed or got the wrong decision; first: %v", failed, r.n, firstErr)
	}
	slices.Sort(r.lat)
	return r, nil
}

// selfCPU is this process's user+system CPU time (the load generator).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

package main

import (
	"context"
	"net"
	"net/http"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
)

// meter counts what gatehouse's Backstage source sends and receives: HTTP
// requests, and bytes on the wire (TCP payload both ways, headers included).
type meter struct {
	requests atomic.Int64
	rx, tx   atomic.Int64
}

// client is an HTTP client whose requests and connections are counted.
func (m *meter) client() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	var d net.Dialer
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &countingConn{Conn: c, m: m}, nil
	}
	return &http.Client{Timeout: 2 * time.Minute, Transport: roundTripper(func(r *http.Request) (*http.Response, error) {
		m.requests.Add(1)
		return tr.RoundTrip(r)
	})}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

type countingConn struct {
	net.Conn
	m *meter
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.m.rx.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.m.tx.Add(int64(n))
	return n, err
}

// sample is a point in time: wall clock, counters, this process's CPU and
// allocations, and Backstage's CPU.
type sample struct {
	at           time.Time
	requests     int64
	rx, tx       int64
	cpu          time.Duration
	alloc        uint64
	backstageCPU time.Duration
	backstageOK  bool
}

func take(m *meter, b *backstage) sample {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s := sample{at: time.Now(), requests: m.requests.Load(), rx: m.rx.Load(), tx: m.tx.Load(),
		cpu:   time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
		alloc: ms.TotalAlloc}
	s.backstageCPU, s.backstageOK = b.cpu()
	return s
}

// cost is the difference between two samples.
type cost struct {
	wall         time.Duration
	requests     int64
	rx, tx       int64
	cpu          time.Duration
	alloc        uint64
	backstageCPU time.Duration // -1 when unknown
}

func since(a, b sample) cost {
	c := cost{wall: b.at.Sub(a.at), requests: b.requests - a.requests, rx: b.rx - a.rx, tx: b.tx - a.tx,
		cpu: b.cpu - a.cpu, alloc: b.alloc - a.alloc, backstageCPU: -1}
	if a.backstageOK && b.backstageOK {
		c.backstageCPU = b.backstageCPU - a.backstageCPU
	}
	return c
}

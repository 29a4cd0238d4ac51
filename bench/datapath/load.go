package main

// The load generator: HTTP/1.1 over keep-alive TCP connections, written
// against the socket (one pre-built request, a minimal response reader)
// so that it costs the shared CPUs as little as possible. Two modes:
//
//   - closed loop: every connection sends its next request as soon as the
//     previous response arrived: the maximum requests/s;
//   - open loop: every connection sends on a fixed schedule (rate/conns per
//     second each, offset so the sends interleave), and latency is measured
//     from the intended send time, so a stall delays, and is charged to,
//     every request scheduled behind it (no coordinated omission, as wrk2).

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"sync"
	"time"
)

// target is what one scenario sends.
type target struct {
	addr string // host:port
	req  []byte // one complete HTTP/1.1 request
	want int    // expected status of every response
}

func request(method, path, host string, headers ...string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: gatehouse-datapath\r\n", method, path, host)
	for i := 0; i+1 < len(headers); i += 2 {
		fmt.Fprintf(&b, "%s: %s\r\n", headers[i], headers[i+1])
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

const requestTimeout = 10 * time.Second

// conn is one keep-alive client connection.
type conn struct {
	c  net.Conn
	br *bufio.Reader
}

func dial(addr string) (*conn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return &conn{c: c, br: bufio.NewReaderSize(c, 32<<10)}, nil
}

func (c *conn) Close() error { return c.c.Close() }

// errClosing: the server asked to close the connection after this response.
var errClosing = errors.New("server closed the connection")

// roundTrip sends req and reads one response; it returns the status and the
// body (valid until the next call). A response that takes more than
// requestTimeout is an error, never a hang.
func (c *conn) roundTrip(req []byte) (int, []byte, error) {
	_ = c.c.SetDeadline(time.Now().Add(requestTimeout))
	if _, err := c.c.Write(req); err != nil {
		return 0, nil, err
	}
	return readResponse(c.br)
}

// readResponse reads one HTTP/1.1 response: status line, headers, and a
// body framed by Content-Length or chunked encoding.
func readResponse(br *bufio.Reader) (int, []byte, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, nil, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, nil, fmt.Errorf("bad status line %q", line)
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, nil, fmt.Errorf("bad status line %q", line)
	}
	length, chunked, closing := -1, false, false
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return 0, nil, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return 0, nil, fmt.Errorf("bad header line %q", line)
		}
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(k, []byte("content-length")):
			if length, err = strconv.Atoi(string(v)); err != nil {
				return 0, nil, fmt.Errorf("bad content-length %q", v)
			}
		case bytes.EqualFold(k, []byte("transfer-encoding")):
			chunked = bytes.Contains(bytes.ToLower(v), []byte("chunked"))
		case bytes.EqualFold(k, []byte("connection")):
			closing = bytes.EqualFold(v, []byte("close"))
		}
	}
	var body []byte
	switch {
	case chunked:
		for {
			line, err = br.ReadSlice('\n')
			if err != nil {
				return 0, nil, err
			}
			size, _, _ := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(";"))
			n, err := strconv.ParseInt(string(size), 16, 32)
			if err != nil {
				return 0, nil, fmt.Errorf("bad chunk size %q", line)
			}
			if n == 0 {
				// Trailers, up to the empty line.
				for {
					if line, err = br.ReadSlice('\n'); err != nil {
						return 0, nil, err
					}
					if len(bytes.TrimRight(line, "\r\n")) == 0 {
						break
					}
				}
				break
			}
			chunk := make([]byte, n+2)
			if _, err := ioReadFull(br, chunk); err != nil {
				return 0, nil, err
			}
			body = append(body, chunk[:n]...)
		}
	case length >= 0:
		if length > 0 {
			b, err := br.Peek(min(length, br.Size()))
			if err != nil {
				return 0, nil, err
			}
			if len(b) == length {
				body = b
			}
			if _, err := br.Discard(length); err != nil {
				return 0, nil, err
			}
		}
	case status == 204 || status == 304 || status < 200:
	default:
		return 0, nil, fmt.Errorf("response %d without a length", status)
	}
	if closing {
		return status, body, errClosing
	}
	return status, body, nil
}

func ioReadFull(br *bufio.Reader, p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := br.Read(p[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// result is one measured phase.
type result struct {
	requests int
	elapsed  time.Duration
	lat      []time.Duration // sorted
	bad      int             // wrong status or transport error
	firstBad string
}

func (r result) rps() float64 { return float64(r.requests) / r.elapsed.Seconds() }

func (r result) p(q float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[int(float64(len(r.lat)-1)*q)]
}

type worker struct {
	lat      []time.Duration
	bad      int
	firstBad string
}

func (w *worker) fail(msg string) {
	if w.bad == 0 {
		w.firstBad = msg
	}
	w.bad++
}

// add appends another slice of the same scenario (sort afterwards).
func (r *result) add(o result) {
	r.requests += o.requests
	r.elapsed += o.elapsed
	r.lat = append(r.lat, o.lat...)
	if o.bad > 0 && r.bad == 0 {
		r.firstBad = o.firstBad
	}
	r.bad += o.bad
}

func (r *result) sort() { sort.Slice(r.lat, func(i, j int) bool { return r.lat[i] < r.lat[j] }) }

func merge(ws []*worker, elapsed time.Duration) result {
	r := result{elapsed: elapsed}
	for _, w := range ws {
		r.lat = append(r.lat, w.lat...)
		if w.bad > 0 && r.bad == 0 {
			r.firstBad = w.firstBad
		}
		r.bad += w.bad
	}
	r.requests = len(r.lat)
	r.sort()
	return r
}

// one sends one request on *c (dialing when nil) and checks the status.
func (w *worker) one(t target, c **conn) bool {
	if *c == nil {
		nc, err := dial(t.addr)
		if err != nil {
			w.fail(err.Error())
			time.Sleep(10 * time.Millisecond)
			return false
		}
		*c = nc
	}
	status, _, err := (*c).roundTrip(t.req)
	if err != nil {
		(*c).Close()
		*c = nil
		if err != errClosing {
			w.fail(err.Error())
			return false
		}
	}
	if status != t.want {
		w.fail(fmt.Sprintf("status %d, want %d", status, t.want))
	}
	return true
}

// closedLoop runs conns connections back to back for d.
func closedLoop(t target, conns int, d time.Duration) result {
	ws := make([]*worker, conns)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for i := range ws {
		w := &worker{lat: make([]time.Duration, 0, 1<<14)}
		ws[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			var c *conn
			defer func() {
				if c != nil {
					c.Close()
				}
			}()
			for {
				t0 := time.Now()
				if !t0.Before(deadline) {
					return
				}
				if w.one(t, &c) {
					w.lat = append(w.lat, time.Since(t0))
				}
			}
		}()
	}
	wg.Wait()
	return merge(ws, time.Since(start))
}

// openLoop sends rate requests/s in total over conns connections for d;
// latency is measured from each request's intended send time.
func openLoop(t target, conns int, rate float64, d time.Duration) result {
	ws := make([]*worker, conns)
	var wg sync.WaitGroup
	interval := time.Duration(float64(conns) / rate * float64(time.Second))
	start := time.Now().Add(20 * time.Millisecond) // every connection dialed first
	deadline := start.Add(d)
	for i := range ws {
		w := &worker{lat: make([]time.Duration, 0, 1<<12)}
		ws[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			var c *conn
			defer func() {
				if c != nil {
					c.Close()
				}
			}()
			if nc, err := dial(t.addr); err == nil {
				c = nc
			}
			next := start.Add(interval * time.Duration(i) / time.Duration(conns))
			for next.Before(deadline) {
				if wait := time.Until(next); wait > 0 {
					time.Sleep(wait)
				}
				if w.one(t, &c) {
					w.lat = append(w.lat, time.Since(next))
				}
				next = next.Add(interval)
			}
		}()
	}
	wg.Wait()
	return merge(ws, time.Since(start))
}

package harness

import (
	"fmt"
	"net"
	"os"
	"sync/atomic"
)

// nextPort walks ports below Linux's ephemeral range (32768-60999): a port
// picked with :0 comes from that range, where every outgoing connection of
// a load generator or test client also takes its local port, so it could be
// taken again between the pick and the server's bind.
var nextPort atomic.Int32

func init() { nextPort.Store(int32(20000 + os.Getpid()%8000)) }

// FreePort returns a port that was free a moment ago on 127.0.0.1, never
// the same twice in one process.
func FreePort() (int, error) {
	for range 2000 {
		p := nextPort.Add(1)
		if p >= 32000 {
			nextPort.Store(20000)
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		l.Close()
		return int(p), nil
	}
	return 0, fmt.Errorf("no free port in 20000-32000")
}

// FreeAddr is FreePort as "127.0.0.1:port".
func FreeAddr() (string, error) {
	p, err := FreePort()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("127.0.0.1:%d", p), nil
}

// Ports are the four listeners of `gatehouse serve`.
type Ports struct{ XDS, Admin, Edge, Authz int }

// FreePorts picks four free ports.
func FreePorts() (Ports, error) {
	var p Ports
	for _, q := range []*int{&p.XDS, &p.Admin, &p.Edge, &p.Authz} {
		v, err := FreePort()
		if err != nil {
			return p, err
		}
		*q = v
	}
	return p, nil
}

package main

// gatehouse's Check service inside this process, for -cpuprofile: the same
// extauthz.Server that `gatehouse serve` runs (real verifier on the
// harness's issuer, signer, audit to a file, decision cache), on a gRPC
// server with serve's options, behind an Envoy whose configuration is
// gatehouse's translation of the catalog.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	"github.com/gatehouse-dev/gatehouse/extauthz"
	"github.com/gatehouse-dev/gatehouse/model"
)

// startInProcess returns the Check server's address, a stop function, and
// a note on the audit writer for the report.
func startInProcess(is *issuer, m *model.Model, auditPath string) (string, func(), func() string, error) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	verifier, err := extauthz.NewVerifier(ctx, []extauthz.IssuerConfig{{Name: "bench", IssuerURL: is.url, Audiences: []string{audience}, Algorithms: []string{"RS256"}}},
		&http.Client{Timeout: 10 * time.Second}, quiet)
	if err != nil {
		cancel()
		return "", nil, nil, err
	}
	signer, err := extauthz.NewSigner(extauthz.SignerConfig{Issuer: "gatehouse", Lifetime: 30 * time.Second, Rotate: 24 * time.Hour})
	if err != nil {
		cancel()
		verifier.Close()
		return "", nil, nil, err
	}
	f, err := os.Create(auditPath)
	if err != nil {
		cancel()
		verifier.Close()
		return "", nil, nil, err
	}
	cw := &countingWriter{w: f}
	audit := extauthz.NewAudit(cw, 8192)
	srv := extauthz.NewServer(extauthz.Options{CacheSize: 100000, CacheTTL: 30 * time.Second}, verifier, signer, audit, quiet)
	srv.SetModel(m)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		return "", nil, nil, err
	}
	g := grpc.NewServer(extauthz.GRPCServerOptions()...)
	srv.Register(g)
	go func() { _ = g.Serve(l) }()
	note := func() string {
		return fmt.Sprintf("audit trail: %d records in %d writes to the file", audit.Written(), cw.n.Load())
	}
	return l.Addr().String(), func() {
		g.Stop()
		audit.Close()
		f.Close()
		verifier.Close()
		cancel()
	}, note, nil
}

// countingWriter counts the writes that reach the audit file (each one a
// write(2): the audit flushes its buffer whenever its queue is empty).
type countingWriter struct {
	w io.Writer
	n atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n.Add(1)
	return c.w.Write(p)
}

package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// Bounds of the stop after the drain: Checks in flight get this long to
// finish; xDS streams never end on their own, so theirs is short.
const (
	authzStopTimeout = 5 * time.Second
	xdsStopTimeout   = time.Second
)

// notifyShutdown returns a context that is done at the first SIGINT or
// SIGTERM (serve then drains); a second signal exits at once, without
// draining or flushing. stop releases the signals.
func notifyShutdown(log *slog.Logger) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		if _, ok := <-ch; !ok {
			return
		}
		cancel()
		if s, ok := <-ch; ok {
			log.Warn("second signal: exiting now, without draining", "signal", s.String())
			os.Exit(1)
		}
	}()
	return ctx, func() {
		signal.Stop(ch)
		close(ch)
		cancel()
	}
}

// shutdown stops gatehouse. After a clean run with the gRPC listeners open
// it first drains: /readyz and the gRPC health service say not serving at
// once, while xDS and Check keep serving for shutdown.drain, so that
// Kubernetes takes the pod out of its Service and Envoys' health checks
// move new Checks and streams to another replica. Then the gRPC servers
// stop gracefully (GOAWAY: Checks in flight finish, Envoys reconnect
// elsewhere), the runners stop, and the audit trail is flushed.
func (p *process) shutdown(drain bool, cancelRun context.CancelFunc) {
	if drain && p.listening && p.cfg.Shutdown.Drain > 0 {
		d := p.cfg.Shutdown.Drain
		p.adm.Readiness().Wait("shutdown", "draining since "+time.Now().UTC().Format(time.RFC3339)+
			": Checks and xDS are served for "+d.String()+" more, then gatehouse exits")
		p.grpc.health.Shutdown()
		p.log.Info("draining: not ready any more, still serving Checks and xDS (a second signal exits at once)", "for", d)
		time.Sleep(d)
	} else {
		p.grpc.health.Shutdown()
	}
	p.log.Info("shutting down")
	if p.listening {
		stopGracefully(p.grpc.authz.GracefulStop, p.grpc.authz.Stop, authzStopTimeout)
		stopGracefully(p.grpc.xds.GracefulStop, p.grpc.xds.Stop, xdsStopTimeout)
	}
	ctx, done := context.WithTimeout(context.Background(), time.Second)
	defer done()
	_ = p.http.Shutdown(ctx)
	if p.signin != nil {
		_ = p.signin.Shutdown(ctx)
	}
	if p.exchange != nil {
		_ = p.exchange.Shutdown(ctx)
	}
	cancelRun()
	p.sources.stop()
	p.wg.Wait()
	p.closeAuthz() // flush the audit trail
}

// stopGracefully runs graceful and, if it has not returned within d, stop.
func stopGracefully(graceful, stop func(), d time.Duration) {
	stopped := make(chan struct{})
	go func() { graceful(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(d):
		stop()
		<-stopped
	}
}

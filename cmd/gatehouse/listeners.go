package main

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"

	"github.com/gatehouse-dev/gatehouse/admin"
	"github.com/gatehouse-dev/gatehouse/config"
	"github.com/gatehouse-dev/gatehouse/extauthz"
	"github.com/gatehouse-dev/gatehouse/xds"
)

// grpcServers are the xDS and ext_authz gRPC servers. Both also serve the
// gRPC health service (grpc.health.v1), which Envoys' health checks ask
// (xds/translate GRPCCluster): SERVING only while /readyz is ready, so a
// replica that starts, lacks its catalog or drains gets no new Checks or
// xDS streams from an Envoy that can use another replica.
type grpcServers struct {
	xds, authz *grpc.Server
	health     *health.Server
}

func newGRPCServers(cfg config.Config, xdsSrv *xds.Server, authzSrv *extauthz.Server) (*grpcServers, error) {
	xdsCreds, err := serverCreds("xds.tls", cfg.XDS.TLS)
	if err != nil {
		return nil, err
	}
	authzCreds, err := serverCreds("authz.tls", cfg.Authz.TLS)
	if err != nil {
		return nil, err
	}
	g := &grpcServers{health: health.NewServer()}
	g.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	g.xds = grpc.NewServer(append(xds.GRPCServerOptions(), xdsCreds,
		grpc.MaxRecvMsgSize(4<<20),
		grpc.MaxSendMsgSize(64<<20), // a large fleet config fits one response
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	)...)
	xdsSrv.Register(g.xds)
	g.authz = grpc.NewServer(append(extauthz.GRPCServerOptions(), authzCreds)...)
	authzSrv.Register(g.authz)
	healthpb.RegisterHealthServer(g.xds, g.health)
	healthpb.RegisterHealthServer(g.authz, g.health)
	return g, nil
}

// portsFree fails early when the xDS or ext_authz address is taken: they
// are bound only once gatehouse can decide a Check (listen), and a busy
// port should stop it at start, not then.
func portsFree(cfg config.Config) error {
	for _, l := range []struct{ key, addr string }{{"xds.listen", cfg.XDS.Listen}, {"authz.listen", cfg.Authz.Listen}, {"signin.listen", cfg.SignIn.Listen}, {"token_exchange.listen", cfg.TokenExchange.Listen}} {
		if l.addr == "" || strings.HasSuffix(l.addr, ":0") {
			continue // any free port, found when listening
		}
		lis, err := net.Listen("tcp", l.addr)
		if err != nil {
			return fmt.Errorf("%s %s: %w", l.key, l.addr, err)
		}
		lis.Close()
	}
	return nil
}

// listen binds the xDS and ext_authz listeners and serves them; a server
// that fails reports to errc.
func (g *grpcServers) listen(cfg config.Config, run func(string, func()), errc chan<- error) (xdsAddr, authzAddr string, err error) {
	xdsLis, err := net.Listen("tcp", cfg.XDS.Listen)
	if err != nil {
		return "", "", fmt.Errorf("xds.listen %s: %w", cfg.XDS.Listen, err)
	}
	authzLis, err := net.Listen("tcp", cfg.Authz.Listen)
	if err != nil {
		xdsLis.Close()
		return "", "", fmt.Errorf("authz.listen %s: %w", cfg.Authz.Listen, err)
	}
	run("xds", func() {
		if err := g.xds.Serve(xdsLis); err != nil {
			errc <- fmt.Errorf("xds server: %w", err)
		}
	})
	run("authz", func() {
		if err := g.authz.Serve(authzLis); err != nil {
			errc <- fmt.Errorf("authz server: %w", err)
		}
	})
	return xdsLis.Addr().String(), authzLis.Addr().String(), nil
}

// followReadiness keeps the gRPC health status in step with /readyz until
// ctx is done (a drain calls health.Shutdown first, which holds
// NOT_SERVING).
func (g *grpcServers) followReadiness(ctx context.Context, r *admin.Readiness) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		status := healthpb.HealthCheckResponse_NOT_SERVING
		if r.Ready() {
			status = healthpb.HealthCheckResponse_SERVING
		}
		g.health.SetServingStatus("", status)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

package e2e

import (
	"context"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Issue 15 (drain): after SIGTERM /readyz and the gRPC health service say
// not serving at once, Checks are still decided during shutdown.drain, and
// a second SIGTERM exits at once.
func TestDrainServesChecksUntilSecondSignal(t *testing.T) {
	cat := writeAuthzCatalog(t)
	g := startGatehouseEnv(t, cat, "", []string{"GATEHOUSE_SHUTDOWN_DRAIN=30s"})
	if code, err := checkOnce(g.authzAddr, ""); err != nil || code != 401 {
		t.Fatalf("a Check before SIGTERM: %d, %v", code, err)
	}
	if s := grpcHealth(t, g.authzAddr); s != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("gRPC health before SIGTERM: %s", s)
	}
	_ = syscall.Kill(g.Pid(), syscall.SIGTERM)
	eventually(t, time.Second, "/readyz fails after SIGTERM", func() error {
		resp, err := http.Get("http://" + g.adminAddr + "/readyz")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 503 || !strings.Contains(string(b), "shutdown: draining") {
			return &statusErr{resp.StatusCode, string(b)}
		}
		return nil
	})
	for _, addr := range []string{g.authzAddr, g.xdsAddr} {
		if s := grpcHealth(t, addr); s != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Errorf("gRPC health on %s while draining: %s", addr, s)
		}
	}
	if code, err := checkOnce(g.authzAddr, ""); err != nil || code != 401 {
		t.Fatalf("a Check while draining: %d, %v (it must still be decided)", code, err)
	}
	start := time.Now()
	_ = syscall.Kill(g.Pid(), syscall.SIGTERM)
	select {
	case <-g.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("a second SIGTERM did not exit at once")
	}
	t.Logf("exited %s after the second SIGTERM (%v)", time.Since(start).Round(time.Millisecond), g.Err())
}

type statusErr struct {
	code int
	body string
}

func (e *statusErr) Error() string { return http.StatusText(e.code) + ": " + e.body }

func grpcHealth(t *testing.T, addr string) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	r, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatalf("gRPC health of %s: %v", addr, err)
	}
	return r.GetStatus()
}

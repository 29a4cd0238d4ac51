package extauthz

import (
	"context"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
)

// In-process cost of one Check (no gRPC): go test -bench Check -benchmem ./extauthz/
func BenchmarkCheckCachedAllow(b *testing.B) {
	s, _, _, audit, _ := newTestServer(b)
	defer audit.Close()
	benchCachedAllow(b, s, checkReq(ordersRoute, "GET", "/orders/1", map[string]string{"authorization": "Bearer alice-token"}))
}

// benchCachedAllow times an allowed Check of req once its decision is
// cached (the first Check, untimed, caches it).
func benchCachedAllow(b *testing.B, s *Server, req *authv3.CheckRequest) {
	ctx := context.Background()
	s.Check(ctx, req)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if r, _ := s.Check(ctx, req); r.GetOkResponse() == nil {
			b.Fatal("denied")
		}
	}
}

func BenchmarkCheckNoToken(b *testing.B) {
	s, _, _, audit, _ := newTestServer(b)
	defer audit.Close()
	req := checkReq(ordersRoute, "GET", "/orders/1", nil)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.Check(ctx, req)
	}
}

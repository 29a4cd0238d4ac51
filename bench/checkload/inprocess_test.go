package main

// In-process cost of one Check (no gRPC, no load generator), next to the
// cost of the signature verification alone on the same tokens:
//
//	go test -run XXX -bench . -benchmem ./bench/checkload/
//
// BenchmarkRawVerify* is the floor: SHA-256 of the signing input and the
// RSA PKCS#1 v1.5 / ECDSA P-256 verification (crypto/rsa, crypto/ecdsa),
// nothing else. BenchmarkCheckFresh* is a whole Check whose token was never
// seen: the decision cache is off so that every iteration verifies (b.N
// is larger than any pool of distinct tokens that is cheap to mint; the
// cache lookup of a miss is a map read). Compare their ns/op.

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"log/slog"
	"math/big"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/gatehouse-dev/gatehouse/extauthz"
)

// pool of distinct tokens per algorithm, cycled by the benchmarks.
const inprocPool = 512

type inproc struct {
	is     *issuers
	toks   map[string][]string
	small  *benchCatalog
	large  *benchCatalog
	ver    *extauthz.Verifier
	signer *extauthz.Signer
}

func setupInproc(tb testing.TB) *inproc {
	tb.Helper()
	is, err := newIssuers()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(is.Close)
	p := &inproc{is: is, toks: map[string][]string{}}
	for _, alg := range []string{"RS256", "ES256"} {
		if p.toks[alg], err = is.pool(alg, []string{benchAlice}, inprocPool); err != nil {
			tb.Fatal(err)
		}
	}
	if p.toks["RS256-new"], err = is.pool("RS256", newSubjects(inprocPool), inprocPool); err != nil {
		tb.Fatal(err)
	}
	if p.small, err = writeCatalog("small", tb.TempDir(), 0); err != nil {
		tb.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var cfgs []extauthz.IssuerConfig
	for _, alg := range []string{"RS256", "ES256"} {
		cfgs = append(cfgs, extauthz.IssuerConfig{Name: alg, IssuerURL: is.url(alg), Audiences: []string{benchAudience}, Algorithms: []string{alg}, EntityRefSubjects: true})
	}
	if p.ver, err = extauthz.NewVerifier(context.Background(), cfgs, is.srv.Client(), quiet); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(p.ver.Close)
	if p.signer, err = extauthz.NewSigner(extauthz.SignerConfig{Issuer: "gatehouse", Lifetime: 30 * time.Second, Rotate: time.Hour}); err != nil {
		tb.Fatal(err)
	}
	return p
}

// server is a Check server on a catalog, as `gatehouse serve` builds it
// (audit to io.Discard: the JSON encoding is still paid).
func (p *inproc) server(tb testing.TB, cat *benchCatalog, cacheSize int) *extauthz.Server {
	audit := extauthz.NewAudit(io.Discard, 8192)
	tb.Cleanup(audit.Close)
	s := extauthz.NewServer(extauthz.Options{CacheSize: cacheSize, CacheTTL: 30 * time.Second}, p.ver, p.signer, audit, slog.New(slog.NewTextHandler(io.Discard, nil)))
	s.SetModel(cat.model)
	return s
}

func (p *inproc) largeCatalog(tb testing.TB) *benchCatalog {
	if p.large == nil {
		var err error
		if p.large, err = writeCatalog("large", tb.TempDir(), 3225); err != nil {
			tb.Fatal(err)
		}
	}
	return p.large
}

var shared *inproc

// cpuPerOp reports the process CPU time per iteration (cpu-ns/op) next to
// the wall time: on a shared machine the CPU time is the steadier measure,
// and with -cpu 1 it includes the garbage collector and the audit writer.
// Call as: defer cpuPerOp(b)() right before the loop.
func cpuPerOp(b *testing.B) func() {
	b.ResetTimer()
	c0 := selfCPU()
	return func() {
		b.StopTimer()
		b.ReportMetric(float64((selfCPU()-c0).Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}

func setup(b *testing.B) *inproc {
	if shared == nil {
		shared = setupInproc(b)
	}
	return shared
}

// parts splits a compact JWS into the signing input and the raw signature.
func parts(b *testing.B, tok string) ([]byte, []byte) {
	i := strings.LastIndexByte(tok, '.')
	sig, err := base64.RawURLEncoding.DecodeString(tok[i+1:])
	if err != nil {
		b.Fatal(err)
	}
	return []byte(tok[:i]), sig
}

func BenchmarkRawVerifyRS256(b *testing.B) {
	p := setup(b)
	type tv struct{ in, sig []byte }
	var ts []tv
	for _, tok := range p.toks["RS256"] {
		in, sig := parts(b, tok)
		ts = append(ts, tv{in, sig})
	}
	pub := &p.is.rs.PublicKey
	b.ReportAllocs()
	defer cpuPerOp(b)()
	for i := 0; i < b.N; i++ {
		t := ts[i%len(ts)]
		sum := sha256.Sum256(t.in)
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], t.sig); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRawVerifyES256(b *testing.B) {
	p := setup(b)
	type tv struct {
		in   []byte
		r, s *big.Int
	}
	var ts []tv
	for _, tok := range p.toks["ES256"] {
		in, sig := parts(b, tok)
		ts = append(ts, tv{in, new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])})
	}
	pub := &p.is.es.PublicKey
	b.ReportAllocs()
	defer cpuPerOp(b)()
	for i := 0; i < b.N; i++ {
		t := ts[i%len(ts)]
		sum := sha256.Sum256(t.in)
		if !ecdsa.Verify(pub, sum[:], t.r, t.s) {
			b.Fatal("bad signature")
		}
	}
}

// go-jose, the JOSE library under go-oidc: parse the compact JWS and verify.
func BenchmarkJoseVerifyRS256(b *testing.B) {
	p := setup(b)
	toks := p.toks["RS256"]
	pub := &p.is.rs.PublicKey
	b.ReportAllocs()
	defer cpuPerOp(b)()
	for i := 0; i < b.N; i++ {
		jws, err := jose.ParseSignedCompact(toks[i%len(toks)], []jose.SignatureAlgorithm{jose.RS256})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := jws.Verify(pub); err != nil {
			b.Fatal(err)
		}
	}
}

// gatehouse's token verifier alone (extauthz.Verifier.Verify).
func BenchmarkVerifierRS256(b *testing.B) { benchVerifier(b, "RS256") }
func BenchmarkVerifierES256(b *testing.B) { benchVerifier(b, "ES256") }

func benchVerifier(b *testing.B, alg string) {
	p := setup(b)
	toks := p.toks[alg]
	ctx := context.Background()
	b.ReportAllocs()
	defer cpuPerOp(b)()
	for i := 0; i < b.N; i++ {
		if _, err := p.ver.Verify(ctx, toks[i%len(toks)]); err != nil {
			b.Fatal(err)
		}
	}
}

// The identity assertion of an allowed request not in the decision cache:
// reused (the same claims signed less than half a lifetime ago), and
// signed anew (ES256).
func BenchmarkAssertionSign(b *testing.B)    { benchSign(b, 30*time.Second) }
func BenchmarkAssertionSignNew(b *testing.B) { benchSign(b, time.Nanosecond) }

func benchSign(b *testing.B, lifetime time.Duration) {
	signer, err := extauthz.NewSigner(extauthz.SignerConfig{Issuer: "gatehouse", Lifetime: lifetime, Rotate: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	a := extauthz.Assertion{Subject: benchAlice, Audience: benchEntity, Kind: "user", Groups: []string{"group:default/bench-org", "group:default/bench-readers"}, Route: "r"}
	now := time.Now()
	b.ReportAllocs()
	defer cpuPerOp(b)()
	for i := 0; i < b.N; i++ {
		if lifetime < time.Second {
			now = now.Add(time.Microsecond)
		}
		if _, _, err := signer.Sign(a, now); err != nil {
			b.Fatal(err)
		}
	}
}

// A whole Check of a fresh token (cache off: every iteration verifies,
// maps, decides, signs an assertion, audits).
func BenchmarkCheckFreshRS256(b *testing.B) { benchCheck(b, "RS256", false, 0, false) }
func BenchmarkCheckFreshES256(b *testing.B) { benchCheck(b, "ES256", false, 0, false) }

// Fresh tokens, each of a different IdP user unknown to the catalog
// (allowed through the IdP group claim): no assertion can be reused.
func BenchmarkCheckFreshRS256NewSubject(b *testing.B) { benchCheck(b, "RS256-new", false, 0, false) }

// The same on the ~10k-entity catalog.
func BenchmarkCheckFreshRS256Catalog10k(b *testing.B) { benchCheck(b, "RS256", true, 0, false) }

// A cached decision (the same token again): allow and deny.
func BenchmarkCheckCachedAllow(b *testing.B)           { benchCheck(b, "RS256", false, 100000, false) }
func BenchmarkCheckCachedDeny(b *testing.B)            { benchCheck(b, "RS256", false, 100000, true) }
func BenchmarkCheckCachedAllowCatalog10k(b *testing.B) { benchCheck(b, "RS256", true, 100000, false) }

func benchCheck(b *testing.B, alg string, large bool, cacheSize int, deny bool) {
	p := setup(b)
	cat := p.small
	if large {
		cat = p.largeCatalog(b)
	}
	s := p.server(b, cat, cacheSize)
	toks := p.toks[alg]
	if cacheSize > 0 {
		sub := benchAlice
		if deny {
			sub = benchBob
		}
		tok, err := p.is.mint(alg, sub, time.Now(), time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		toks = []string{tok}
	}
	reqs := make([]*authv3.CheckRequest, len(toks))
	for i, tok := range toks {
		reqs[i] = checkReq(cat.routeID, benchPath, tok)
	}
	want := int32(0)
	if deny {
		want = 7
	}
	ctx := context.Background()
	if r, _ := s.Check(ctx, reqs[0]); r.GetStatus().GetCode() != want {
		b.Fatalf("status %v, want %d", r.GetStatus(), want)
	}
	b.ReportAllocs()
	defer cpuPerOp(b)()
	for i := 0; i < b.N; i++ {
		if r, _ := s.Check(ctx, reqs[i%len(reqs)]); r.GetStatus().GetCode() != want {
			b.Fatalf("status %v, want %d", r.GetStatus(), want)
		}
	}
}

// TestInprocDecisions checks the benchmarks' setup decides as they expect
// (part of go test; no timing).
func TestInprocDecisions(t *testing.T) {
	p := setupInproc(t)
	s := p.server(t, p.small, 1000)
	ctx := context.Background()
	for _, c := range []struct {
		alg, sub string
		want     int32
	}{{"RS256", benchAlice, 0}, {"ES256", benchAlice, 0}, {"RS256", benchBob, 7}, {"ES256", benchBob, 7}} {
		tok, err := p.is.mint(c.alg, c.sub, time.Now(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		r, _ := s.Check(ctx, checkReq(p.small.routeID, benchPath, tok))
		if got := r.GetStatus().GetCode(); got != c.want {
			t.Errorf("%s %s: status %d, want %d", c.alg, c.sub, got, c.want)
		}
	}
	r, _ := s.Check(ctx, checkReq(p.small.routeID, benchPath, p.toks["RS256"][0][:40]+"x"))
	if r.GetStatus().GetCode() != 16 {
		t.Errorf("forged token: %v", r.GetStatus())
	}
}

// The target ratio, measured so that a busy machine moves both sides
// alike: each iteration runs a batch of raw verifications and a batch of
// fresh-token Checks of the same tokens, alternating, and the process CPU
// time of each kind of batch is summed. Reports raw-cpu-ns/op,
// check-cpu-ns/op and check/raw.
func BenchmarkFreshCheckVsRawVerifyRS256(b *testing.B) { benchRatio(b, "RS256") }
func BenchmarkFreshCheckVsRawVerifyES256(b *testing.B) { benchRatio(b, "ES256") }

// The same with a different IdP user in every token: no assertion is
// reused, every Check signs one (ES256).
func BenchmarkFreshCheckVsRawVerifyRS256NewSubject(b *testing.B) { benchRatio(b, "RS256-new") }

func benchRatio(b *testing.B, pool string) {
	p := setup(b)
	alg := strings.TrimSuffix(pool, "-new")
	s := p.server(b, p.small, 0)
	if strings.HasSuffix(pool, "-new") {
		// Every token of the pool is a different subject, but the pool is
		// cycled: an assertion lifetime this short makes sure none is
		// reused, as with a pool as long as the run.
		quick, err := extauthz.NewSigner(extauthz.SignerConfig{Issuer: "gatehouse", Lifetime: time.Nanosecond, Rotate: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		audit := extauthz.NewAudit(io.Discard, 8192)
		b.Cleanup(audit.Close)
		s = extauthz.NewServer(extauthz.Options{}, p.ver, quick, audit, slog.New(slog.NewTextHandler(io.Discard, nil)))
		s.SetModel(p.small.model)
	}
	toks := p.toks[pool]
	reqs := make([]*authv3.CheckRequest, len(toks))
	raws := make([]func() bool, len(toks))
	for i, tok := range toks {
		reqs[i] = checkReq(p.small.routeID, benchPath, tok)
		in, sig := parts(b, tok)
		switch alg {
		case "RS256":
			pub := &p.is.rs.PublicKey
			raws[i] = func() bool {
				sum := sha256.Sum256(in)
				return rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig) == nil
			}
		case "ES256":
			pub := &p.is.es.PublicKey
			r, ss := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
			raws[i] = func() bool {
				sum := sha256.Sum256(in)
				return ecdsa.Verify(pub, sum[:], r, ss)
			}
		}
	}
	ctx := context.Background()
	const batch = 32
	var rawCPU, checkCPU time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c0 := selfCPU()
		for k := 0; k < batch; k++ {
			if !raws[(i*batch+k)%len(raws)]() {
				b.Fatal("raw verification failed")
			}
		}
		c1 := selfCPU()
		for k := 0; k < batch; k++ {
			if r, _ := s.Check(ctx, reqs[(i*batch+k)%len(reqs)]); r.GetStatus().GetCode() != 0 {
				b.Fatalf("denied: %v", r.GetStatus())
			}
		}
		c2 := selfCPU()
		rawCPU += c1 - c0
		checkCPU += c2 - c1
	}
	b.StopTimer()
	n := float64(b.N * batch)
	b.ReportMetric(float64(rawCPU.Nanoseconds())/n, "raw-cpu-ns/op")
	b.ReportMetric(float64(checkCPU.Nanoseconds())/n, "check-cpu-ns/op")
	b.ReportMetric(float64(checkCPU)/float64(rawCPU), "check/raw")
}

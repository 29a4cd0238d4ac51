package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/harness"
	"github.com/gatehouse-dev/gatehouse/meshca"
)

// meshCatalog: A consumes B's API, C consumes nothing (cConsumes adds it).
func meshCatalog(aIn, bIn, cIn int, cConsumes bool) string {
	cSpec := ""
	if cConsumes {
		cSpec = "\n  consumesApis: [b-api]"
	}
	return fmt.Sprintf(`apiVersion: backstage.io/v1alpha1
kind: Group
metadata: {name: team-a}
spec: {type: team, children: []}
---
apiVersion: backstage.io/v1alpha1
kind: Group
metadata: {name: team-b}
spec: {type: team, children: []}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: a
  annotations: {gatehouse.dev/mesh-address: "127.0.0.1:%d"}
spec: {type: service, lifecycle: production, owner: team-a, consumesApis: [b-api]}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: b
  annotations: {gatehouse.dev/mesh-address: "127.0.0.1:%d"}
spec: {type: service, lifecycle: production, owner: team-b, providesApis: [b-api]}
---
apiVersion: backstage.io/v1alpha1
kind: API
metadata: {name: b-api}
spec: {type: openapi, lifecycle: production, owner: team-b, definition: "openapi: 3.0.0"}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: c
  annotations: {gatehouse.dev/mesh-address: "127.0.0.1:%d"}
spec:
  type: service
  lifecycle: production
  owner: team-a%s
`, aIn, bIn, cIn, cSpec)
}

type sidecar struct {
	*proc
	adminPort, inPort, outPort int
}

// startSidecar runs a real Envoy with `gatehouse bootstrap --role sidecar`;
// wait says whether to wait until it is ready (has its configuration).
func startSidecar(t *testing.T, g *gatehouse, nodeID, component string, appPort int, delta, wait bool) *sidecar {
	t.Helper()
	s := &sidecar{adminPort: freePort(t), inPort: freePort(t), outPort: freePort(t)}
	return s.start(t, g, nodeID, component, appPort, delta, wait)
}

func (s *sidecar) start(t *testing.T, g *gatehouse, nodeID, component string, appPort int, delta, wait bool) *sidecar {
	t.Helper()
	args := []string{"bootstrap", "--role", "sidecar", "--node-id", nodeID, "--component", component,
		"--app-port", fmt.Sprint(appPort), "--inbound-port", fmt.Sprint(s.inPort), "--outbound-port", fmt.Sprint(s.outPort),
		"--inbound-address", "127.0.0.1", "--xds-address", g.xdsAddr, "--admin-port", fmt.Sprint(s.adminPort)}
	if delta {
		args = append(args, "--delta")
	}
	out, err := exec.Command(gatehouseBin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("gatehouse bootstrap: %v\n%s", err, out)
	}
	path := filepath.Join(t.TempDir(), "sidecar.yaml")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := harness.StartEnvoy(harness.EnvoySpec{Bin: envoyBin, Name: "sidecar " + nodeID, Bootstrap: path, AdminPort: s.adminPort, NoWait: !wait})
	if err != nil {
		t.Fatalf("sidecar: %v", err)
	}
	s.proc = cleanup(t, p, 60)
	return s
}

// out sends an application's request to its sidecar's outbound listener
// for a mesh name.
func (s *sidecar) out(host, path string) (int, seen, string, error) {
	code, sn, r, err := do(s.outPort, "GET", host, path, nil)
	body := ""
	if r != nil {
		body = r.body
	}
	return code, sn, body, err
}

func (s *sidecar) stat(t *testing.T, name string) int64 {
	return (&envoy{proc: s.proc, adminPort: s.adminPort}).stat(t, name)
}

// certSerials returns the serial numbers of the certificates Envoy holds.
func (s *sidecar) certSerials(t *testing.T) []string {
	t.Helper()
	var certs struct {
		Certificates []struct {
			CertChain []struct {
				SerialNumber string `json:"serial_number"`
				SubjectAlt   []struct {
					URI string `json:"uri"`
				} `json:"subject_alt_names"`
			} `json:"cert_chain"`
		} `json:"certificates"`
	}
	getJSON(t, fmt.Sprintf("http://127.0.0.1:%d/certs", s.adminPort), &certs)
	var out []string
	for _, c := range certs.Certificates {
		for _, cc := range c.CertChain {
			if len(cc.SubjectAlt) > 0 && strings.HasPrefix(cc.SubjectAlt[0].URI, "spiffe://") {
				out = append(out, strings.ToLower(cc.SerialNumber))
			}
		}
	}
	return out
}

func TestMeshSidecars(t *testing.T) {
	appA, appB, appC := startUpstream(t, "a"), (*upstream)(nil), startUpstream(t, "c")
	var g *gatehouse
	appB = startVerifyingUpstream(t, "b", func() string { return "http://" + g.adminAddr + "/.well-known/jwks.json" })
	aIn, bIn, cIn := freePort(t), freePort(t), freePort(t)
	dir := t.TempDir()
	cat := filepath.Join(dir, "catalog.yaml")
	if err := os.WriteFile(cat, []byte(meshCatalog(aIn, bIn, cIn, false)), 0o644); err != nil {
		t.Fatal(err)
	}
	caCert, caKey := filepath.Join(dir, "ca", "ca.crt"), filepath.Join(dir, "ca", "ca.key")
	// Short-lived certificates, renewed at half life: every step below runs
	// across several renewals.
	g = startGatehouse(t, cat, fmt.Sprintf(`mesh:
  trust_domain: e2e.test
  ca_cert: %s
  ca_key: %s
  generate_ca: true
  cert_ttl: 6s
`, caCert, caKey))
	port := func(u *upstream) int {
		var p int
		fmt.Sscanf(u.url[strings.LastIndex(u.url, ":")+1:], "%d", &p)
		return p
	}
	a := &sidecar{adminPort: freePort(t), inPort: aIn, outPort: freePort(t)}
	a.start(t, g, "a-1", "component:default/a", port(appA), false, true)
	b := &sidecar{adminPort: freePort(t), inPort: bIn, outPort: freePort(t)}
	b.start(t, g, "b-1", "component:default/b", port(appB), true, true)
	c := &sidecar{adminPort: freePort(t), inPort: cIn, outPort: freePort(t)}
	c.start(t, g, "c-1", "component:default/c", port(appC), false, true)

	const bHost = "b-api.default.gatehouse.internal"
	t.Run("A calls B over mTLS and B sees A", func(t *testing.T) {
		var sn seen
		eventually(t, 5*time.Second, "A -> B", func() error {
			code, s, body, err := a.out(bHost, "/orders/7")
			if err != nil {
				return err
			}
			if code != 200 {
				return fmt.Errorf("%d %s", code, body)
			}
			sn = s
			return nil
		})
		if sn.Upstream != "b" || sn.Path != "/orders/7" {
			t.Fatalf("reached %q %q", sn.Upstream, sn.Path)
		}
		if got := sn.Headers["x-gatehouse-peer"]; got != "component:default/a" {
			t.Fatalf("B saw peer %q; headers %v", got, sn.Headers)
		}
		if sn.Assertion == nil || !sn.Assertion.Valid {
			t.Fatalf("assertion not valid at B: %+v", sn.Assertion)
		}
		if sn.Assertion.Claims["sub"] != "component:default/a" || sn.Assertion.Claims["gh_peer"] != "component:default/a" || sn.Assertion.Claims["gh_kind"] != "component" {
			t.Fatalf("assertion claims %v", sn.Assertion.Claims)
		}
		// An application that uses its sidecar as an HTTP proxy (HTTP_PROXY)
		// reaches the same place by the plain URL.
		proxy, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", a.outPort))
		pc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(proxy)}}
		resp, err := pc.Get("http://" + bHost + "/orders/8")
		if err != nil {
			t.Fatal(err)
		}
		var viaProxy seen
		_ = json.NewDecoder(resp.Body).Decode(&viaProxy)
		resp.Body.Close()
		if resp.StatusCode != 200 || viaProxy.Upstream != "b" || viaProxy.Path != "/orders/8" {
			t.Fatalf("via HTTP_PROXY: %d %+v", resp.StatusCode, viaProxy)
		}
		// The hop between the sidecars was TLS, terminated by B's inbound.
		if n := b.stat(t, fmt.Sprintf("listener.127.0.0.1_%d.ssl.handshake", bIn)); n < 1 {
			t.Fatalf("B's inbound listener saw %d TLS handshakes", n)
		}
	})

	t.Run("C is refused by its own sidecar", func(t *testing.T) {
		code, _, body, err := c.out(bHost, "/orders/7")
		if err != nil {
			t.Fatal(err)
		}
		if code != 403 || !strings.Contains(body, "egress_not_declared") || !strings.Contains(body, "spec.consumesApis") {
			t.Fatalf("C -> B: %d %s", code, body)
		}
		code, _, body, _ = c.out("example.com", "/")
		if code != 403 || !strings.Contains(body, "egress_not_declared") {
			t.Fatalf("C -> example.com: %d %s", code, body)
		}
	})

	t.Run("C forced around its sidecar is refused by B", func(t *testing.T) {
		ca, err := meshca.Load(meshca.Config{TrustDomain: "e2e.test", CertFile: caCert, KeyFile: caKey})
		if err != nil {
			t.Fatal(err)
		}
		direct := func(component string) (int, string, error) {
			roots := x509.NewCertPool()
			roots.AppendCertsFromPEM(ca.TrustBundle())
			cfg := &tls.Config{RootCAs: roots, InsecureSkipVerify: true} // the server's SPIFFE ID is checked below, not a DNS name
			if component != "" {
				crt, err := ca.Issue(component, time.Minute)
				if err != nil {
					return 0, "", err
				}
				pair, err := tls.X509KeyPair(crt.CertPEM, crt.KeyPEM)
				if err != nil {
					return 0, "", err
				}
				cfg.Certificates = []tls.Certificate{pair}
			}
			cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
			resp, err := cl.Get(fmt.Sprintf("https://127.0.0.1:%d/orders/7", bIn))
			if err != nil {
				return 0, "", err
			}
			defer resp.Body.Close()
			if id := resp.TLS.PeerCertificates[0].URIs; len(id) != 1 || id[0].String() != "spiffe://e2e.test/ns/default/component/b" {
				return 0, "", fmt.Errorf("B's inbound presented %v", id)
			}
			body, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(body), nil
		}
		code, body, err := direct("component:default/c")
		if err != nil || code != 403 || !strings.Contains(body, "forbidden") {
			t.Fatalf("C's certificate straight to B: %d %s %v", code, body, err)
		}
		// The same request with A's identity is allowed: the 403 above is
		// B's policy, not a broken connection.
		if code, body, err := direct("component:default/a"); err != nil || code != 200 {
			t.Fatalf("A's certificate straight to B: %d %s %v", code, body, err)
		}
		if _, _, err := direct(""); err == nil {
			t.Fatal("B's inbound accepted a connection without a client certificate")
		}
	})

	t.Run("catalog edit lets C call B within 2s", func(t *testing.T) {
		if err := os.WriteFile(cat, []byte(meshCatalog(aIn, bIn, cIn, true)), 0o644); err != nil {
			t.Fatal(err)
		}
		took := eventually(t, 2*time.Second, "C -> B allowed", func() error {
			code, s, body, err := c.out(bHost, "/orders/7")
			if err != nil {
				return err
			}
			if code != 200 || s.Headers["x-gatehouse-peer"] != "component:default/c" {
				return fmt.Errorf("%d %s", code, body)
			}
			return nil
		})
		t.Logf("catalog edit -> C reaches B in %v (no restarts)", took)
	})

	t.Run("certificates rotate under load with no failed request", func(t *testing.T) {
		before := a.certSerials(t)
		hsBefore := b.stat(t, fmt.Sprintf("listener.127.0.0.1_%d.ssl.handshake", bIn))
		var ok, failed atomic.Int64
		var mu sync.Mutex
		var firstErr string
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					code, _, body, err := a.out(bHost, "/orders/7")
					if err != nil || code != 200 {
						failed.Add(1)
						mu.Lock()
						if firstErr == "" {
							firstErr = fmt.Sprintf("%d %s %v", code, body, err)
						}
						mu.Unlock()
						continue
					}
					ok.Add(1)
				}
			}()
		}
		// 6s certificates renewed every ~3s: 10s of load spans three or
		// more renewals on every sidecar.
		time.Sleep(10 * time.Second)
		close(stop)
		wg.Wait()
		after := a.certSerials(t)
		hs := b.stat(t, fmt.Sprintf("listener.127.0.0.1_%d.ssl.handshake", bIn)) - hsBefore
		t.Logf("under load: %d requests ok, %d failed; %d new mTLS handshakes at B; A's certificate %v -> %v", ok.Load(), failed.Load(), hs, before, after)
		if failed.Load() != 0 {
			t.Fatalf("%d requests failed during rotation; first: %s", failed.Load(), firstErr)
		}
		if ok.Load() < 100 {
			t.Fatalf("only %d requests ran", ok.Load())
		}
		// Connections between sidecars last at most half a certificate's
		// life, so the renewed certificates were used in new handshakes
		// while the load ran.
		if hs < 3 {
			t.Fatalf("only %d new handshakes at B during 10s of load with 6s certificates", hs)
		}
		if len(before) == 0 || len(after) == 0 || before[0] == after[0] {
			t.Fatalf("A's certificate did not rotate: %v -> %v", before, after)
		}
		// gatehouse's view agrees with Envoy's.
		for _, n := range g.nodes(t) {
			if n["id"] == "a-1" {
				cert, _ := n["certificate"].(map[string]any)
				if cert == nil || !strings.EqualFold(fmt.Sprint(cert["serial"]), strings.TrimLeft(after[0], "0")) {
					t.Fatalf("gatehouse says A's certificate is %v; Envoy holds %v", cert, after)
				}
			}
		}
	})

	t.Run("a sidecar of a component not in the catalog gets no config", func(t *testing.T) {
		z := startSidecar(t, g, "zzz-1", "component:default/zzz", port(appA), false, false)
		var nodeErr string
		eventually(t, 10*time.Second, "zzz-1 in /debug/nodes with an error", func() error {
			for _, n := range g.nodes(t) {
				if n["id"] == "zzz-1" {
					nodeErr, _ = n["error"].(string)
					if nodeErr != "" {
						return nil
					}
				}
			}
			return fmt.Errorf("not yet")
		})
		if !strings.Contains(nodeErr, "component:default/zzz is not a mesh Component") || !strings.Contains(nodeErr, "gatehouse.dev/mesh-address") {
			t.Fatalf("error: %s", nodeErr)
		}
		if !strings.Contains(g.Log(), "no configuration for node") {
			t.Fatal("gatehouse did not log the refused node")
		}
		if n := z.stat(t, "listener_manager.total_listeners_active"); n != 0 {
			t.Fatalf("the unknown sidecar has %d listeners", n)
		}
		var raw json.RawMessage
		getJSON(t, "http://"+g.adminAddr+"/debug/nodes", &raw)
		t.Logf("/debug/nodes: %s", tail(string(raw), 600))
	})
}

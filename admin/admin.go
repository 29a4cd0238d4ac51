// Package admin is gatehouse's admin HTTP listener: health, readiness,
// Prometheus metrics, debug views of the model, catalog problems and
// connected Envoys, and Go's profiler.
package admin

import (
	"encoding/json"
	"net/http"
	"net/http/pprof"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Sources are the read-only views the admin endpoints show.
type Sources struct {
	Model    func() any // current model (nil before the first compile)
	Nodes    func() any // connected Envoys
	Problems func() any // current catalog problems
	Sources  func() any // catalog sources and their sync status
	// JWKS returns the key set that verifies identity assertions.
	JWKS func() []byte
	// Explain answers POST /debug/explain (the engine behind
	// gatehouse explain --remote); nil disables it.
	Explain http.Handler
	// Dev serves /dev/ (the development issuer of serve --dev); nil: off.
	Dev http.Handler
	// Decision returns a recent decision by its id (GET
	// /debug/decisions/{id}, gatehouse explain --decision); nil: off.
	Decision func(id string) (any, bool)
}

// Handler serves the admin endpoints.
type Handler struct {
	mux       *http.ServeMux
	readiness *Readiness
}

// ModelWait is the Readiness name of the first compiled model (SetReady
// clears it).
const ModelWait = "model"

// New returns the admin handler. /healthz answers at once; /readyz waits
// for the first compiled model (SetReady) and whatever else the caller
// adds to Readiness.
func New(src Sources) *Handler {
	h := &Handler{mux: http.NewServeMux(), readiness: NewReadiness()}
	h.readiness.Wait(ModelWait, "no catalog generation compiled and served yet")
	h.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	h.mux.HandleFunc("GET /readyz", h.readiness.serveReadyz)
	h.mux.Handle("GET /metrics", promhttp.Handler())
	h.mux.HandleFunc("GET /debug/model", jsonOf(src.Model))
	h.mux.HandleFunc("GET /debug/nodes", jsonOf(src.Nodes))
	h.mux.HandleFunc("GET /debug/problems", jsonOf(src.Problems))
	// Go's profiler, for "where does the control plane spend its CPU":
	// go tool pprof http://<admin>/debug/pprof/profile?seconds=10
	h.mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	h.mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	h.mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	if src.Sources != nil {
		h.mux.HandleFunc("GET /debug/sources", jsonOf(src.Sources))
	}
	if src.JWKS != nil {
		h.mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/jwk-set+json")
			w.Header().Set("Cache-Control", "max-age=300")
			_, _ = w.Write(src.JWKS())
		})
	}
	if src.Dev != nil {
		h.mux.Handle("/dev/", src.Dev)
	}
	if src.Explain != nil {
		h.mux.Handle("POST /debug/explain", src.Explain)
	}
	if src.Decision != nil {
		h.mux.HandleFunc("GET /debug/decisions/{id}", func(w http.ResponseWriter, r *http.Request) {
			d, ok := src.Decision(r.PathValue("id"))
			if !ok {
				http.Error(w, "decision "+r.PathValue("id")+" not found: it is not among this replica's recent decisions (older, or made by another replica)", http.StatusNotFound)
				return
			}
			jsonOf(func() any { return d })(w, r)
		})
	}
	return h
}

// SetReady records that the first generation is compiled and served.
func (h *Handler) SetReady() { h.readiness.Done(ModelWait) }

// Readiness is what /readyz reports.
func (h *Handler) Readiness() *Readiness { return h.readiness }

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

func jsonOf(f func() any) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(f())
	}
}

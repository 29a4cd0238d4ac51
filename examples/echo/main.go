// Command echo is the demo upstream: it answers every request with its own
// name and what it received, so you can see where Envoy routed a request.
package main

import (
	"encoding/json"
	"flag"
	"log"
	"net/http"
	"strings"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:8081", "listen address")
	name := flag.String("name", "echo", "service name to report")
	flag.Parse()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		headers := map[string]string{}
		for k := range r.Header {
			if strings.HasPrefix(strings.ToLower(k), "x-") {
				headers[strings.ToLower(k)] = r.Header.Get(k)
			}
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(map[string]any{"service": *name, "method": r.Method, "host": r.Host, "path": r.URL.Path, "headers": headers})
	})
	log.Printf("echo %q listening on %s", *name, *addr)
	log.Fatal(http.ListenAndServe(*addr, h))
}

package main

import (
	"fmt"
	"strings"
	"sync"

	cs "github.com/gatehouse-dev/gatehouse/catalogsync"
	"github.com/gatehouse-dev/gatehouse/extauthz"
)

// pendingIssuers names the issuers whose first discovery is not over yet
// ("" when every one was reached or failed once).
func pendingIssuers(v *extauthz.Verifier) string {
	select {
	case <-v.Started():
		return ""
	default:
	}
	var names []string
	for _, st := range v.Status() {
		if !st.Ready && st.LastError == "" {
			names = append(names, st.Name+" ("+st.IssuerURL+")")
		}
	}
	return strings.Join(names, ", ")
}

// catalogReadiness is /readyz's catalog condition (issue 14 item 14):
// gatehouse is not ready while a configured source has never loaded (a
// missing path, a glob that matches nothing, Backstage unreachable or
// refusing since start), nor while the sources together hold no entity
// (every request would be 404). A source that loads and holds no entity
// (a file with only comments, next to Backstage) is explicitly empty, not
// an error. Once the catalog was ready it stays so: a source that fails
// later keeps serving its last good catalog, and readiness is not the
// place to report it (/debug/sources is).
func catalogReadiness(statuses func() []cs.SourceStatus) func() string {
	var mu sync.Mutex
	ready := false
	return func() string {
		mu.Lock()
		defer mu.Unlock()
		if ready {
			return ""
		}
		var reasons []string
		entities := 0
		for _, st := range statuses() {
			entities += st.Entities
			switch {
			case !st.LastSuccess.IsZero():
			case st.LastError != "":
				reasons = append(reasons, fmt.Sprintf("source %s has not loaded since start: %s", st.Name, st.LastError))
			default:
				reasons = append(reasons, fmt.Sprintf("source %s has not loaded yet", st.Name))
			}
		}
		if len(reasons) == 0 && entities == 0 {
			reasons = append(reasons, "the catalog sources hold no entities: every request would be 404 (fix: check catalog.files and catalog.backstage, then /debug/sources)")
		}
		ready = len(reasons) == 0
		return strings.Join(reasons, "; ")
	}
}

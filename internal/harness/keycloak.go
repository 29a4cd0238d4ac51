package harness

import (
	"context"
	"fmt"
	"path/filepath"
	"time"
)

// StartKeycloak runs the test OIDC provider (examples/idp/run.sh, Keycloak
// with the gatehouse realm) on a free port and returns it with the realm's
// issuer URL once it serves. Keycloak's log is the Proc's log; on an error
// the Proc (if any) is stopped and the error ends with its log's tail.
func StartKeycloak(root string, timeout time.Duration) (*Proc, string, error) {
	port, err := FreePort()
	if err != nil {
		return nil, "", err
	}
	p, issuer, err := StartReady(context.Background(), Spec{Name: "keycloak", Args: []string{"bash", filepath.Join(root, "examples", "idp", "run.sh"), fmt.Sprint(port)}}, timeout)
	if err != nil {
		if p == nil {
			return nil, "", fmt.Errorf("starting examples/idp/run.sh: %w", err)
		}
		p.Stop(15 * time.Second)
		return nil, "", fmt.Errorf("%w\n%s", err, p.Tail(40))
	}
	return p, issuer, nil
}

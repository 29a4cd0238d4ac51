package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/config"
)

// The reload warning names the keys that need a restart; it named none.
func TestReloadWarningNamesTheKeys(t *testing.T) {
	cur, next := config.Defaults(), config.Defaults()
	next.XDS.Listen, next.Edge.Port, next.Authz.TLS.CertFile = "127.0.0.1:19000", 10001, "/x.pem"
	var buf bytes.Buffer
	applyReload(&cur, next, nil, nil, slog.New(slog.NewTextHandler(&buf, nil)))
	if s := buf.String(); !strings.Contains(s, "takes effect only after a restart: xds.listen, edge.port, authz.tls.cert_file") {
		t.Errorf("log: %s", s)
	}
	buf.Reset()
	applyReload(&cur, cur, nil, nil, slog.New(slog.NewTextHandler(&buf, nil)))
	if buf.Len() != 0 {
		t.Errorf("nothing changed, yet: %s", buf.String())
	}
}

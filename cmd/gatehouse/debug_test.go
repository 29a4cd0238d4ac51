package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cs "github.com/gatehouse-dev/gatehouse/catalogsync"
	"github.com/gatehouse-dev/gatehouse/config"
)

// /debug/sources shows a file source's last success and entity count; it
// showed lastSuccess 0001-01-01 and entities 0 for files that loaded.
func TestDebugSourcesShowsFileSourceStatus(t *testing.T) {
	dir := t.TempDir()
	doc := "apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata: {name: team}\nspec: {type: team}\n"
	if err := os.WriteFile(filepath.Join(dir, "c.yaml"), []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := newCatalogRunner(ctx, cs.NewStore("files"), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := r.apply(config.Catalog{Files: []string{dir}, PollInterval: time.Hour}); err != nil {
		t.Fatal(err)
	}
	defer r.stop()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := r.statuses()
		if len(st) == 1 && st[0].Name == "files" && st[0].Entities == 1 && !st[0].LastSuccess.IsZero() && st[0].Polls == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("statuses %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// /debug/problems answers [] (not null) when there are no problems or no
// compile yet.
func TestDebugProblemsIsAList(t *testing.T) {
	empty := cs.Problems(nil)
	for _, p := range []*cs.Problems{nil, &empty} {
		b, _ := json.Marshal(currentProblems(p))
		if string(b) != "[]" {
			t.Errorf("%v: %s", p, b)
		}
	}
}

// JSON logs show durations as "1.5s", not as nanosecond integers.
func TestJSONLogDurations(t *testing.T) {
	var buf bytes.Buffer
	log := newLoggerTo(&buf, config.Log{Level: "info", Format: "json"})
	log.Info("x", "retry_in", 1500*time.Millisecond, slog.Group("g", "holdoff", 100*time.Millisecond))
	if s := buf.String(); !strings.Contains(s, `"retry_in":"1.5s"`) || !strings.Contains(s, `"holdoff":"100ms"`) {
		t.Errorf("log line %s", s)
	}
}

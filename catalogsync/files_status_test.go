package catalogsync

import (
	"path/filepath"
	"strings"
	"testing"
)

// A file source's status counts the entities loaded and records a success
// only when every path could be read.
func TestFileSourceStatus(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"c.yaml": routedDoc("orders", "http://a:1", "")})
	f := &FileSource{Name: "files", Paths: []string{dir}}
	p, _ := f.Load()
	f.recordLoad(p)
	st := f.Status()
	if st.Name != "files" || st.Entities != 1 || st.LastSuccess.IsZero() || st.LastError != "" || st.Polls != 1 {
		t.Errorf("after a good load: %+v", st)
	}
	good := st.LastSuccess
	f.Paths = append(f.Paths, filepath.Join(dir, "missing.yaml"))
	p, _ = f.Load()
	f.recordLoad(p)
	st = f.Status()
	if st.Entities != 1 || !st.LastSuccess.Equal(good) || !strings.Contains(st.LastError, "missing.yaml") || st.Polls != 2 {
		t.Errorf("after a load with a missing path: %+v", st)
	}
}

package catalogsync

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// FileSource reads catalog-info.yaml files: plain files, directories (every
// *.yaml / *.yml below them) and globs, and follows Location entities to the
// files they target, relative to the Location's own file.
type FileSource struct {
	Name  string   // source name recorded on entities, e.g. "files"
	Paths []string // files, directories or globs
	// Interval between checks for changes (default 1s). Polling file
	// fingerprints is cheap and survives whatever happens to the files; on
	// top of it, the directories read are watched (inotify) so that a
	// change is usually loaded within milliseconds instead of at the next
	// poll.
	Interval time.Duration
	Logger   *slog.Logger
	// FS, when set, is read instead of the operating system's files (the
	// catalog embedded in the binary); Paths are then paths inside it.
	FS fs.FS
	// PathsFrom says where Paths were given, for the fix of a path that
	// matches nothing; empty means the configuration's catalog.files or
	// serve's --catalog flag.
	PathsFrom string

	mu     sync.Mutex
	parsed map[string]parsedFile // by path: a file whose bytes did not change is not parsed again
	dirs   []string              // the directories the last Load looked in (watchDirs)
	status SourceStatus          // of Run's loads
}

// Status returns the source's sync status (for /debug/sources): when Run
// last read the files, when it last read all of them, and how many
// entities they hold.
func (f *FileSource) Status() SourceStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.status
	st.Name = f.Name
	if !st.LastSuccess.IsZero() {
		st.SyncAgeSecs = time.Since(st.LastSuccess).Seconds()
	}
	return st
}

// recordLoad notes one of Run's loads in the status.
func (f *FileSource) recordLoad(p Parsed) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	f.status.LastAttempt = now
	f.status.Polls++
	f.status.Entities = len(p.Entities)
	f.status.LastError = ""
	for _, pr := range p.Problems {
		// A path that cannot be read or matches nothing (a problem of a
		// file, not of a line in it): the load is not a success.
		if pr.Severity == SeverityError && pr.Line == 0 {
			f.status.LastError = pr.String()
			return
		}
	}
	f.status.LastSuccess = now
}

type parsedFile struct {
	sum [32]byte
	p   Parsed
}

// parse returns ParseFile of data, reusing the last result for the same
// path and content (the poller reads every file each interval).
func (f *FileSource) parse(path string, data []byte, sum [32]byte) Parsed {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.parsed[path]; ok && c.sum == sum {
		return c.p
	}
	p := ParseFile(f.Name, path, data)
	if f.parsed == nil {
		f.parsed = map[string]parsedFile{}
	}
	f.parsed[path] = parsedFile{sum: sum, p: p}
	return p
}

// files returns the file system the source reads.
func (f *FileSource) files() fileSystem {
	if f.FS != nil {
		return fsFiles{f.FS}
	}
	return osFiles{}
}

// fileSystem is what the file source needs of a file system.
type fileSystem interface {
	ReadFile(string) ([]byte, error)
	Glob(string) ([]string, error)
	Stat(string) (fs.FileInfo, error)
	WalkDir(string, fs.WalkDirFunc) error
	Abs(string) string
}

type osFiles struct{}

func (osFiles) ReadFile(p string) ([]byte, error)         { return os.ReadFile(p) }
func (osFiles) Glob(p string) ([]string, error)           { return filepath.Glob(p) }
func (osFiles) Stat(p string) (fs.FileInfo, error)        { return os.Stat(p) }
func (osFiles) WalkDir(p string, fn fs.WalkDirFunc) error { return filepath.WalkDir(p, fn) }
func (osFiles) Abs(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

type fsFiles struct{ fsys fs.FS }

func (f fsFiles) ReadFile(p string) ([]byte, error)  { return fs.ReadFile(f.fsys, path.Clean(p)) }
func (f fsFiles) Glob(p string) ([]string, error)    { return fs.Glob(f.fsys, path.Clean(p)) }
func (f fsFiles) Stat(p string) (fs.FileInfo, error) { return fs.Stat(f.fsys, path.Clean(p)) }
func (f fsFiles) WalkDir(p string, fn fs.WalkDirFunc) error {
	return fs.WalkDir(f.fsys, path.Clean(p), fn)
}
func (f fsFiles) Abs(p string) string { return path.Clean(p) }

// Load reads every file once and returns the parsed entities and problems,
// and the fingerprint of the files read.
func (f *FileSource) Load() (Parsed, string) {
	var out Parsed
	fsys := f.files()
	visited := map[string]bool{}
	dirs := map[string]bool{} // what Load looked in: changes there can change what it reads
	h := sha256.New()
	var read func(path string, viaLine int, viaFile string)
	read = func(path string, viaLine int, viaFile string) {
		abs := fsys.Abs(path)
		if visited[abs] {
			return
		}
		visited[abs] = true
		dirs[filepath.Dir(abs)] = true
		data, err := fsys.ReadFile(path)
		if err != nil {
			p := Problem{Severity: SeverityError, Source: f.Name, File: path, Message: "cannot read catalog file: " + errText(err),
				Fix: "check the path and its permissions"}
			if viaFile != "" {
				p.File, p.Line, p.Field = viaFile, viaLine, "spec.target"
				p.Message = "Location target " + path + " cannot be read: " + errText(err)
				p.Fix = "correct the target path (relative to the Location's file)"
			}
			out.Problems = append(out.Problems, p)
			out.ReadErrors++
			fmt.Fprintf(h, "%s\x00missing\x00", abs)
			return
		}
		sum := sha256.Sum256(data)
		fmt.Fprintf(h, "%s\x00%x\x00", abs, sum)
		p := f.parse(path, data, sum)
		out.Entities = append(out.Entities, p.Entities...)
		out.Rejected = append(out.Rejected, p.Rejected...)
		out.Problems = append(out.Problems, p.Problems...)
		for _, e := range p.Entities {
			if e.Kind != KindLocation {
				continue
			}
			if e.Spec.Type != "" && e.Spec.Type != "file" {
				out.Problems = append(out.Problems, Problem{Severity: SeverityWarning, Source: f.Name, File: path, Line: e.Origin.Line,
					Entity: e.Ref().String(), Field: "spec.type", Message: "Location type " + quote(e.Spec.Type) + " is not followed by the file source",
					Fix: "use type: file with relative targets, or read that location through the Backstage source"})
				continue
			}
			targets := append([]string(nil), e.Spec.Targets...)
			if e.Spec.Target != "" {
				targets = append(targets, e.Spec.Target)
			}
			for _, t := range targets {
				t = strings.TrimPrefix(t, "file:")
				if !filepath.IsAbs(t) {
					t = filepath.Join(filepath.Dir(path), t)
				}
				matches, err := expand(fsys, t, dirs)
				if err != nil || len(matches) == 0 {
					msg := "Location target " + t + " matches no file"
					if err != nil {
						msg = "Location target " + t + ": " + err.Error()
					}
					out.Problems = append(out.Problems, Problem{Severity: SeverityError, Source: f.Name, File: path, Line: e.Origin.Line,
						Entity: e.Ref().String(), Field: "spec.target", Message: msg, Fix: "correct the target path (relative to the Location's file)"})
					continue
				}
				for _, m := range matches {
					read(m, e.Origin.Line, path)
				}
			}
		}
	}
	defer func() {
		list := make([]string, 0, len(dirs))
		for d := range dirs {
			list = append(list, d)
		}
		sort.Strings(list)
		f.mu.Lock()
		f.dirs = list
		f.mu.Unlock()
	}()
	for _, root := range f.Paths {
		matches, err := expand(fsys, root, dirs)
		if err != nil || len(matches) == 0 {
			msg := "catalog path matches no file"
			if err != nil {
				msg = err.Error()
			} else if st, serr := fsys.Stat(root); serr == nil && st.IsDir() {
				msg = "directory has no .yaml or .yml files"
			}
			from := f.PathsFrom
			if from == "" {
				from = "catalog.files or --catalog"
			}
			out.Problems = append(out.Problems, Problem{Severity: SeverityError, Source: f.Name, File: root, Message: msg,
				Fix: "check " + root + ", given in " + from})
			fmt.Fprintf(h, "%s\x00nomatch\x00", root)
			continue
		}
		for _, m := range matches {
			read(m, 0, "")
		}
	}
	return out, fmt.Sprintf("%x", h.Sum(nil))
}

// expand turns a file, directory or glob into the files it names. Directories
// contribute every .yaml/.yml file below them. It adds to dirs (absolute)
// every directory it looked in: the directories walked, the directory of a
// glob, of a file, or of a path that does not exist yet.
func expand(fsys fileSystem, p string, dirs map[string]bool) ([]string, error) {
	var candidates []string
	if i := strings.IndexAny(p, "*?["); i >= 0 {
		dirs[fsys.Abs(filepath.Dir(p[:i]+"x"))] = true // the directory before the first pattern
		m, err := fsys.Glob(p)
		if err != nil {
			return nil, fmt.Errorf("invalid glob %q: %v", p, err)
		}
		candidates = m
	} else {
		candidates = []string{p}
	}
	var out []string
	for _, c := range candidates {
		st, err := fsys.Stat(c)
		if err != nil {
			dirs[filepath.Dir(fsys.Abs(c))] = true
			if len(candidates) == 1 && c == p {
				return []string{c}, nil // let the reader report it with context
			}
			continue
		}
		if !st.IsDir() {
			out = append(out, c)
			continue
		}
		_ = fsys.WalkDir(c, func(path string, d fs.DirEntry, err error) error {
			// Hidden entries are skipped: a mounted Kubernetes ConfigMap keeps
			// every file twice, once under a ..<timestamp>/ directory.
			if err == nil && path != c && strings.HasPrefix(d.Name(), ".") {
				if d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			if err == nil && d.IsDir() {
				dirs[fsys.Abs(path)] = true
			}
			if err == nil && !d.IsDir() && (strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
				out = append(out, path)
			}
			return nil
		})
	}
	sort.Strings(out)
	return out, nil
}

// Run loads the files into the store, then polls for changes until ctx is
// done. A change in any file read (or in what a glob matches) reloads the
// whole source as one generation.
func (f *FileSource) Run(ctx context.Context, store *Store) {
	interval := f.Interval
	if interval <= 0 {
		interval = time.Second
	}
	log := f.Logger
	if log == nil {
		log = slog.Default()
	}
	w := f.newWatcher(log)
	if w != nil {
		defer w.Close()
	}
	last := ""
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		p, fp := f.Load()
		f.recordLoad(p)
		lastSync.WithLabelValues(f.Name).SetToCurrentTime()
		if p.ReadErrors > 0 {
			syncErrors.WithLabelValues(f.Name).Add(float64(p.ReadErrors))
		}
		if fp != last {
			last = fp
			snap := store.ReplaceSource(f.Name, p)
			log.Info("catalog files loaded", "source", f.Name, "entities", len(p.Entities), "problems", len(p.Problems), "generation", snap.Generation)
			for _, pr := range p.Problems {
				log.Log(ctx, pr.Level(), "catalog problem", "problem", pr.String())
			}
		}
		w.watch(f.watchDirs())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-w.changed():
			// Editors write a file in several steps (truncate, write,
			// rename): let them finish before reading.
			w.settle(ctx, 20*time.Millisecond)
		case err := <-w.errors():
			log.Debug("catalog files: watch error", "source", f.Name, "error", err)
		}
	}
}

// watchDirs are the directories whose changes can change what Load reads,
// as the last Load found them.
func (f *FileSource) watchDirs() []string {
	if f.FS != nil {
		return nil // embedded: never changes
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dirs
}

func errText(err error) string {
	if pe, ok := err.(*fs.PathError); ok {
		return pe.Err.Error()
	}
	return err.Error()
}

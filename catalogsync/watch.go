package catalogsync

import (
	"context"
	"log/slog"
	"time"

	"github.com/fsnotify/fsnotify"
)

// dirWatcher tells the file source that something changed in a directory
// it reads (inotify on Linux). It only shortens the wait for the next
// Load: the poll stays the source of truth, so a missed or unsupported
// event costs at most one poll interval. A nil *dirWatcher never fires.
type dirWatcher struct {
	w       *fsnotify.Watcher
	log     *slog.Logger
	watched map[string]bool
}

func (f *FileSource) newWatcher(log *slog.Logger) *dirWatcher {
	if f.FS != nil {
		return nil
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		log.Info("catalog files: no file system notifications; polling only", "source", f.Name, "error", err)
		return nil
	}
	return &dirWatcher{w: w, log: log, watched: map[string]bool{}}
}

func (d *dirWatcher) Close() {
	if d != nil {
		d.w.Close()
	}
}

// watch adds directories not watched yet (a deleted directory's watch goes
// with it, and it is added again if it comes back).
func (d *dirWatcher) watch(dirs []string) {
	if d == nil {
		return
	}
	current := map[string]bool{}
	for _, p := range d.w.WatchList() {
		current[p] = true
	}
	for _, dir := range dirs {
		if current[dir] {
			continue
		}
		if err := d.w.Add(dir); err != nil {
			if !d.watched[dir] {
				d.log.Debug("catalog files: cannot watch directory; it is polled", "dir", dir, "error", err)
			}
			continue
		}
		d.watched[dir] = true
	}
}

// changed is a channel that fires on the next event (nil: never).
func (d *dirWatcher) changed() <-chan fsnotify.Event {
	if d == nil {
		return nil
	}
	return d.w.Events
}

func (d *dirWatcher) errors() <-chan error {
	if d == nil {
		return nil
	}
	return d.w.Errors
}

// settle waits until no event has come for quiet (at most a second), so
// that a burst of writes becomes one Load.
func (d *dirWatcher) settle(ctx context.Context, quiet time.Duration) {
	deadline := time.Now().Add(time.Second)
	t := time.NewTimer(quiet)
	defer t.Stop()
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return
		case <-d.w.Events:
			if !t.Stop() {
				<-t.C
			}
			t.Reset(quiet)
		case err := <-d.w.Errors:
			d.log.Debug("catalog files: watch error", "error", err)
		case <-t.C:
			return
		}
	}
}

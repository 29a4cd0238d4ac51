package compile

import (
	"context"
	"time"

	cs "github.com/gatehouse-dev/gatehouse/catalogsync"
	"github.com/gatehouse-dev/gatehouse/model"
)

// Follow compiles the store's current generation and every later one until
// ctx is done, and hands each result to publish. Bursts of changes are
// coalesced: after a change it waits holdoff for more before compiling, so a
// flurry of file saves becomes one push. A generation that compiles to the
// version already served is published too (its problems may differ); the
// xDS cache does not re-send unchanged versions.
func Follow(ctx context.Context, store *cs.Store, holdoff time.Duration, publish func(*model.Model, *cs.Snapshot, cs.Problems)) {
	for {
		changed := store.Changed()
		snap := store.Snapshot()
		if snap.Generation > 0 {
			m, problems := Compile(snap)
			all := append(append(cs.Problems(nil), snap.Problems...), problems...)
			publish(m, snap, all)
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
		if holdoff > 0 {
			t := time.NewTimer(holdoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
	}
}

package merklelog_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/pecarchive/pecarchive/services/archive/merklelog"
)

// LeavesAt reads any leaves, in the order asked (repeats included), with one query, and names a
// leaf the log does not hold.
func TestLeavesAt(t *testing.T) {
	e := newEnv(t, merklelog.Config{})
	ctx := context.Background()
	var batch [][]byte
	for i := range 20 {
		batch = append(batch, leaf(i))
	}
	e.appendTx(t, batch)
	idx := []uint64{19, 0, 7, 7, 3}
	before := e.queries.n.Load()
	got, err := e.log.LeavesAt(ctx, idx)
	if err != nil {
		t.Fatal(err)
	}
	if q := e.queries.n.Load() - before; q != 1 {
		t.Errorf("%d queries, want 1", q)
	}
	for k, i := range idx {
		if !bytes.Equal(got[k], batch[i]) {
			t.Errorf("leaf %d: %q", i, got[k])
		}
	}
	if _, err := e.log.LeavesAt(ctx, []uint64{2, 20}); !errors.Is(err, merklelog.ErrNotFound) {
		t.Errorf("a leaf beyond the log: %v", err)
	}
	if got, err := e.log.LeavesAt(ctx, nil); err != nil || len(got) != 0 {
		t.Errorf("no leaves: %v %v", got, err)
	}
}

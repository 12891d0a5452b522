package catalog_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pecarchive/pecarchive/internal/testenv"
	"github.com/pecarchive/pecarchive/pec"
	"github.com/pecarchive/pecarchive/services/archive/catalog"
)

// A commit's reads do not grow with the catalog. On young tables (small or stale statistics)
// the planner has twice picked a plan that walked every row of an index for each new message
// (a join on ref_msgid, then a look-up of deliveries through the recipient index); the tests of
// plans on an analysed catalog do not see that. This writes batches as the archive does into a
// fresh schema, never analysed by us, and compares the index tuples a batch reads at about 800
// and at about 4,800 messages.
func TestWriteReadsDoNotGrow(t *testing.T) {
	ctx := context.Background()
	cfg := testenv.PGConfig(t)
	cfg.MaxConns = 1 // one session: its statistics are flushed and read below
	pool := testenv.PGPool(t, cfg)
	if err := catalog.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	kinds := []pec.Kind{pec.KindAccettazione, pec.KindAvvenutaConsegna, pec.KindErroreConsegna, pec.KindPreavvisoErroreConsegna}
	var n int
	write := func(batches int) {
		for range batches {
			b := &catalog.Batch{Now: time.Now()}
			for range 20 {
				msgid := fmt.Sprintf("cost-%d@pec.example.it", n/4)
				m := receipt(kinds[n%4], msgid, "opec."+msgid, []string{"a@pec.example.it"}, "a@pec.example.it", trusted, fmt.Sprint(n))
				m.LeafIndex, m.ReceivedAt = uint64(n), time.Now()
				b.Messages = append(b.Messages, m)
				n++
			}
			commitBatch(t, pool, b)
		}
	}
	// Index tuples read so far by this session, its pending counts flushed first.
	read := func() int64 {
		if _, err := pool.Exec(ctx, `SELECT pg_stat_force_next_flush()`); err != nil {
			t.Fatal(err)
		}
		var v int64
		if err := pool.QueryRow(ctx, `SELECT pg_stat_clear_snapshot(), coalesce(sum(idx_tup_read), 0)::bigint
			FROM pg_stat_user_indexes WHERE schemaname = current_schema()`).Scan(nil, &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	perBatch := func() float64 {
		before := read()
		write(10)
		return float64(read()-before) / 10
	}
	write(40)
	small := perBatch()
	write(200)
	large := perBatch()
	t.Logf("index tuples read per batch of 20: %.0f at %d messages, %.0f at %d", small, 800, large, n-200)
	if large > 1.5*small+50 {
		t.Errorf("a batch read %.0f index tuples at %d messages against %.0f at 800: some statement walks an index", large, n-200, small)
	}
}

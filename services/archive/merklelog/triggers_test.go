package merklelog_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pecarchive/pecarchive/services/archive/merklelog"
)

// TestAppendOnlyTriggers: the log's tables refuse UPDATE, DELETE and TRUNCATE, and its state row
// only moves forward, for any role that does not disable the triggers; appending still works.
func TestAppendOnlyTriggers(t *testing.T) {
	e := newEnv(t, merklelog.Config{})
	ctx := context.Background()
	batch := make([][]byte, 10)
	for i := range batch {
		batch[i] = leaf(i)
	}
	e.appendTx(t, batch)
	if _, err := e.log.Publish(ctx); err != nil {
		t.Fatal(err)
	}
	refused := func(sql string, args ...any) {
		t.Helper()
		_, err := e.pool.Exec(ctx, sql, args...)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "23001" || !strings.HasPrefix(pe.Message, "merklelog: ") {
			t.Errorf("%s: %v, want a restrict_violation from the log's triggers", sql, err)
		}
	}
	refused(`UPDATE merklelog_leaf SET data = $1 WHERE idx = 3`, leaf(99))
	refused(`UPDATE merklelog_leaf SET hash = sha256(hash) WHERE idx = 3`)
	refused(`DELETE FROM merklelog_leaf WHERE idx = 9`)
	refused(`TRUNCATE merklelog_leaf CASCADE`)
	refused(`UPDATE merklelog_node SET hash = sha256(hash) WHERE level = 1 AND idx = 0`)
	refused(`DELETE FROM merklelog_node`)
	refused(`TRUNCATE merklelog_node`)
	refused(`UPDATE merklelog_checkpoint SET signed = 'x' WHERE size = 10`)
	refused(`DELETE FROM merklelog_checkpoint`)
	refused(`TRUNCATE merklelog_checkpoint`)
	refused(`UPDATE merklelog_state SET size = 4`)
	refused(`UPDATE merklelog_state SET compact = ''`)
	refused(`UPDATE merklelog_state SET id = id AND false`)
	refused(`DELETE FROM merklelog_state`)
	refused(`TRUNCATE merklelog_state`)

	// The sequencer's forward move is allowed; so is updated_at alone.
	e.appendTx(t, batch[:3])
	if _, err := e.pool.Exec(ctx, `UPDATE merklelog_state SET updated_at = now()`); err != nil {
		t.Fatalf("touching the state row: %v", err)
	}
	if n, err := e.log.Size(ctx); err != nil || n != 13 {
		t.Fatalf("Size = %d, %v; want 13", n, err)
	}
	if ps, err := e.log.Verify(ctx); err != nil || len(ps) != 0 {
		t.Fatalf("Verify after the refused changes: %v, %v", ps, err)
	}
}

package audit_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pecarchive/pecarchive/services/archive/merklelog/merklelogtest"
)

// asOwner runs one statement with the triggers of the log's tables and of the catalog's
// messages disabled, as an insider who owns the tables can.
func asOwner(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	if err := merklelogtest.AsOwner(context.Background(), pool, []string{"messages"}, func(tx pgx.Tx) error {
		_, err := tx.Exec(context.Background(), sql, args...)
		return err
	}); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

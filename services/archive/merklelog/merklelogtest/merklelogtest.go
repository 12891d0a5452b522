// Package merklelogtest owns the insider's tools the tests of the log and of its users attack
// it with: what someone who owns the log's tables in PostgreSQL (but holds no signing key) can
// do to them. It is for tests only.
package merklelogtest

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/transparency-dev/merkle/compact"

	"github.com/pecarchive/pecarchive/tlog"
)

// Tables are the log's tables, which its append-only triggers protect.
var Tables = []string{"merklelog_leaf", "merklelog_node", "merklelog_state", "merklelog_checkpoint"}

// AsOwner runs fn in one transaction of pool with the user triggers of the log's tables and of
// the extra tables disabled, as their owner can (ALTER TABLE ... DISABLE TRIGGER needs no
// superuser), and enables them again before it commits.
func AsOwner(ctx context.Context, pool *pgxpool.Pool, extra []string, fn func(tx pgx.Tx) error) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // after Commit it is a no-op
	tables := append(append([]string(nil), Tables...), extra...)
	for _, t := range tables {
		if _, err := tx.Exec(ctx, "ALTER TABLE "+pgx.Identifier{t}.Sanitize()+" DISABLE TRIGGER USER"); err != nil {
			return err
		}
	}
	if err := fn(tx); err != nil {
		return err
	}
	for _, t := range tables {
		if _, err := tx.Exec(ctx, "ALTER TABLE "+pgx.Identifier{t}.Sanitize()+" ENABLE TRIGGER USER"); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}

// Rebuild recomputes, inside tx, every leaf hash, every node and the sequencer state from the
// leaves' data, as an insider who rewrote or removed leaves does to make the stored tree
// consistent again: afterwards the log's own Verify finds nothing wrong with the tree. Run it
// through AsOwner.
func Rebuild(ctx context.Context, tx pgx.Tx) error {
	rows, err := tx.Query(ctx, `SELECT idx, data FROM merklelog_leaf ORDER BY idx`)
	if err != nil {
		return err
	}
	var idx []int64
	var hashes [][]byte
	for rows.Next() {
		var i int64
		var data []byte
		if err := rows.Scan(&i, &data); err != nil {
			rows.Close()
			return err
		}
		if i != int64(len(idx)) {
			rows.Close()
			return fmt.Errorf("merklelogtest: leaf %d follows %d leaves", i, len(idx))
		}
		h := tlog.LeafHash(data)
		idx, hashes = append(idx, i), append(hashes, h[:])
	}
	if err := rows.Err(); err != nil {
		return err
	}
	rf := &compact.RangeFactory{Hash: func(l, r []byte) []byte { h := tlog.NodeHash(l, r); return h[:] }}
	rng := rf.NewEmptyRange(0)
	var lv []int16
	var ix []int64
	var nh [][]byte
	for _, h := range hashes {
		if err := rng.Append(h, func(id compact.NodeID, hash []byte) {
			if id.Level > 0 {
				lv, ix, nh = append(lv, int16(id.Level)), append(ix, int64(id.Index)), append(nh, hash)
			}
		}); err != nil {
			return err
		}
	}
	var packed []byte
	for _, h := range rng.Hashes() {
		packed = append(packed, h...)
	}
	for _, st := range []struct {
		sql  string
		args []any
	}{
		{`UPDATE merklelog_leaf l SET hash = u.hash FROM unnest($1::bigint[], $2::bytea[]) AS u(idx, hash)
			WHERE l.idx = u.idx AND l.hash <> u.hash`, []any{idx, hashes}},
		{`DELETE FROM merklelog_node`, nil},
		{`INSERT INTO merklelog_node (level, idx, hash) SELECT * FROM unnest($1::smallint[], $2::bigint[], $3::bytea[])`, []any{lv, ix, nh}},
		{`UPDATE merklelog_state SET size = $1, compact = $2, updated_at = now()`, []any{int64(len(hashes)), packed}},
	} {
		if _, err := tx.Exec(ctx, st.sql, st.args...); err != nil {
			return fmt.Errorf("merklelogtest: rebuild: %w", err)
		}
	}
	return nil
}

// Dump is a copy of every table of a schema, taken as a backup is (pg_dump), to be restored
// over it later: the rollback of an insider who restores an older backup.
type Dump struct {
	pool   *pgxpool.Pool
	tables []string
}

// dumpPrefix names the copies, kept in the same schema (so they go when it goes).
const dumpPrefix = "dump_"

// TakeDump copies every table of pool's current schema (the migration version tables too).
func TakeDump(ctx context.Context, pool *pgxpool.Pool) (*Dump, error) {
	rows, err := pool.Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = current_schema()
		AND left(tablename, length($1)) <> $1 ORDER BY tablename`, dumpPrefix)
	if err != nil {
		return nil, err
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	d := &Dump{pool: pool, tables: tables}
	for _, t := range tables {
		src, dst := pgx.Identifier{t}.Sanitize(), pgx.Identifier{dumpPrefix + t}.Sanitize()
		if _, err := pool.Exec(ctx, "DROP TABLE IF EXISTS "+dst+"; CREATE TABLE "+dst+" AS SELECT * FROM "+src); err != nil {
			return nil, fmt.Errorf("merklelogtest: dump %s: %w", t, err)
		}
	}
	return d, nil
}

// Restore puts the dumped rows back in place of the current ones, in one transaction, with every
// trigger and foreign key check off as pg_restore --disable-triggers does (as a superuser).
func (d *Dump) Restore(ctx context.Context) error {
	tx, err := d.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // after Commit it is a no-op
	if _, err := tx.Exec(ctx, "SET LOCAL session_replication_role = replica"); err != nil {
		return err
	}
	var all []string
	for _, t := range d.tables {
		all = append(all, pgx.Identifier{t}.Sanitize())
	}
	if _, err := tx.Exec(ctx, "TRUNCATE "+strings.Join(all, ", ")); err != nil {
		return fmt.Errorf("merklelogtest: restore: %w", err)
	}
	for _, t := range d.tables {
		if _, err := tx.Exec(ctx, "INSERT INTO "+pgx.Identifier{t}.Sanitize()+" OVERRIDING SYSTEM VALUE SELECT * FROM "+
			pgx.Identifier{dumpPrefix + t}.Sanitize()); err != nil {
			return fmt.Errorf("merklelogtest: restore %s: %w", t, err)
		}
	}
	return tx.Commit(ctx)
}

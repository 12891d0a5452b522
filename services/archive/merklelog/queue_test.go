package merklelog_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pecarchive/pecarchive/services/archive/merklelog"
)

// TestQueueAppend appends through a caller's own pipelined batches: the batch that begins the
// transaction takes the lock, a later one carries the leaves with other statements and COMMIT.
// The tree is the same as with Append.
func TestQueueAppend(t *testing.T) {
	e := newEnv(t, merklelog.Config{})
	ctx := context.Background()
	e.appendTx(t, [][]byte{leaf(0), leaf(1), leaf(2)})

	conn, err := e.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()

	var lock pgx.Batch
	lock.BeginTx(pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	ap := e.log.QueueLock(&lock)
	if _, err := ap.QueueAppend(&pgx.Batch{}, [][]byte{leaf(3)}); !errors.Is(err, merklelog.ErrInvalid) {
		t.Fatalf("QueueAppend before the lock batch was read: %v, want ErrInvalid", err)
	}
	br := conn.SendBatch(ctx, &lock)
	tx := br.Tx()
	if err := br.Close(); err != nil {
		t.Fatal(err)
	}
	var writes pgx.Batch
	writes.Queue(`SELECT 1`)
	first, err := ap.QueueAppend(&writes, [][]byte{leaf(3), leaf(4)})
	if err != nil {
		t.Fatal(err)
	}
	second, err := ap.QueueAppend(&writes, [][]byte{leaf(5)})
	if err != nil {
		t.Fatal(err)
	}
	if first != 3 || second != 5 {
		t.Fatalf("first leaves %d and %d, want 3 and 5", first, second)
	}
	writes.Queue(`COMMIT`)
	if err := tx.SendBatch(ctx, &writes).Close(); err != nil {
		t.Fatal(err)
	}
	if n, err := e.log.Size(ctx); err != nil || n != 6 {
		t.Fatalf("size %d (%v), want 6", n, err)
	}
	if problems, err := e.log.Verify(ctx); err != nil || len(problems) != 0 {
		t.Fatalf("Verify: %v %v", problems, err)
	}

	// A rolled-back transaction leaves nothing, and the next append continues at 6.
	lock = pgx.Batch{}
	lock.BeginTx(pgx.TxOptions{})
	ap = e.log.QueueLock(&lock)
	br = conn.SendBatch(ctx, &lock)
	tx = br.Tx()
	if err := br.Close(); err != nil {
		t.Fatal(err)
	}
	writes = pgx.Batch{}
	if _, err := ap.QueueAppend(&writes, [][]byte{leaf(6)}); err != nil {
		t.Fatal(err)
	}
	if err := tx.SendBatch(ctx, &writes).Close(); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.appendTx(t, [][]byte{leaf(7)}); got != 6 {
		t.Fatalf("after a rollback the next leaf is %d, want 6", got)
	}
}

// TestQueueLockAtStaleNeverCommits: a caller that appends with QueueLockAt and sends COMMIT in
// the same pipeline, over a state changed behind its back at the same size (an insider's
// recomputed tree), gets ErrStale, and the server refused the transaction: no leaf was added and
// the state is the changed one, not the caller's.
func TestQueueLockAtStaleNeverCommits(t *testing.T) {
	e := newEnv(t, merklelog.Config{})
	ctx := context.Background()
	e.appendTx(t, [][]byte{leaf(0), leaf(1), leaf(2)})
	var size int64
	var packed []byte
	if err := e.pool.QueryRow(ctx, `SELECT size, compact FROM merklelog_state`).Scan(&size, &packed); err != nil {
		t.Fatal(err)
	}
	e.tamper(t, `UPDATE merklelog_leaf SET data = $1 WHERE idx = 1`, leaf(99))
	e.rebuild(t)
	var forged []byte
	if err := e.pool.QueryRow(ctx, `SELECT compact FROM merklelog_state`).Scan(&forged); err != nil {
		t.Fatal(err)
	}

	conn, err := e.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	var b pgx.Batch
	b.BeginTx(pgx.TxOptions{})
	ap := e.log.QueueLockAt(&b, size, packed)
	if _, err := ap.QueueAppend(&b, [][]byte{leaf(3)}); err != nil {
		t.Fatal(err)
	}
	b.Queue(`COMMIT`)
	if err := conn.SendBatch(ctx, &b).Close(); !errors.Is(err, merklelog.ErrStale) {
		t.Fatalf("append on a stale state: %v, want ErrStale", err)
	}
	var n int64
	var now []byte
	if err := e.pool.QueryRow(ctx, `SELECT size, compact FROM merklelog_state`).Scan(&n, &now); err != nil {
		t.Fatal(err)
	}
	if n != 3 || !bytes.Equal(now, forged) {
		t.Fatalf("the stale append committed: size %d", n)
	}
}

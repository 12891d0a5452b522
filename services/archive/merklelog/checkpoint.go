package merklelog

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/pecarchive/pecarchive/tlog"
	"github.com/transparency-dev/formats/log"
)

// Publish signs a checkpoint for the current tree and stores it, returning the signed note
// (tlog.VerifyCheckpoint checks it). When the latest stored checkpoint already has the current
// size, Publish returns it unchanged once it verifies with the log's keys and has the tree's
// root, so calling it on a timer is cheap (no write-once storage is read). Publishers on several
// replicas are serialized by an advisory lock, so checkpoints are stored in increasing size and
// time order.
//
// Before it signs, Publish checks that the tree extends the latest checkpoint the log signed, the
// newer of the database's and the write-once storage's (see [Log.CheckAppendOnly]), and refuses
// with ErrForked or ErrWrongKey otherwise. It writes the new checkpoint to the write-once storage
// (Config.Checkpoints) before the database copy, in the same transaction: when that write fails
// nothing is published, and a checkpoint that reached the storage but not the database (a crash
// between the two) is copied into the database by the next Publish, which finds it the latest.
func (l *Log) Publish(ctx context.Context) (signed []byte, err error) {
	if l.cfg.Signer == nil {
		return nil, ErrNoSigner
	}
	tx, err := l.pool.Begin(ctx)
	if err != nil {
		return nil, dbErr("publish: begin", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // after Commit it is a no-op

	st, db, err := l.readStateAndLatest(ctx, tx, true)
	if err != nil {
		return nil, err
	}
	tree, err := l.tree(ctx, tx, st)
	if err != nil {
		return nil, err
	}
	if db != nil && db.size >= st.size {
		// Nothing new to sign: the database's latest checkpoint, once it verifies and the tree
		// extends it (so a tree rewritten at that size is refused now, not at the next leaf).
		latest, err := l.verifyDB(db)
		if err == nil {
			err = extends(latest, tree)
		}
		if err != nil {
			return nil, err
		}
		return db.signed, nil
	}
	latest, err := l.latestSigned(ctx, db, tree)
	if err != nil {
		return nil, err
	}
	if latest != nil && latest.cp.Size == st.size {
		// Signed and kept on write-once storage, but its database copy was lost: restore it.
		if err := l.storeCheckpoints(ctx, tx, latest); err != nil {
			return nil, err
		}
		return latest.signed, nil
	}
	signed, err = tlog.SignCheckpoint(l.cfg.Signer, log.Checkpoint{Origin: l.cfg.Origin, Size: st.size, Hash: tree.Root})
	if err != nil {
		return nil, fmt.Errorf("merklelog: publish: %w", err)
	}
	if _, err := l.cfg.Checkpoints.PutCheckpoint(ctx, st.size, signed); err != nil {
		return nil, fmt.Errorf("merklelog: publish: write-once copy of the checkpoint of size %d: %w", st.size, err)
	}
	next := &signedCheckpoint{cp: log.Checkpoint{Origin: l.cfg.Origin, Size: st.size, Hash: tree.Root}, signed: signed}
	if latest != nil && latest.writeSet {
		// The latest before this one, too, reached write-once storage only: restore it.
		err = l.storeCheckpoints(ctx, tx, latest, next)
	} else {
		err = l.storeCheckpoints(ctx, tx, next)
	}
	if err != nil {
		return nil, err
	}
	return signed, nil
}

// storeCheckpoints stores the database copies of checkpoints and commits tx.
func (l *Log) storeCheckpoints(ctx context.Context, tx pgx.Tx, cps ...*signedCheckpoint) error {
	for _, c := range cps {
		// clock_timestamp, not now(): the transaction may have started before the lock was granted.
		if _, err := tx.Exec(ctx, `INSERT INTO merklelog_checkpoint (size, root, signed, created_at)
			VALUES ($1, $2, $3, clock_timestamp())`, int64(c.cp.Size), c.cp.Hash, c.signed); err != nil {
			return dbErr("store checkpoint", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return dbErr("store checkpoint", err)
	}
	return nil
}

// Checkpoint returns the latest stored signed checkpoint, or ErrNotFound before the first Publish.
func (l *Log) Checkpoint(ctx context.Context) (signed []byte, err error) {
	err = l.pool.QueryRow(ctx, `SELECT signed FROM merklelog_checkpoint ORDER BY size DESC LIMIT 1`).Scan(&signed)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w: no checkpoint published", ErrNotFound)
	}
	if err != nil {
		return nil, dbErr("read checkpoint", err)
	}
	return signed, nil
}

// CheckpointAt returns the stored signed checkpoint of exactly the given size, or ErrNotFound.
func (l *Log) CheckpointAt(ctx context.Context, size uint64) (signed []byte, err error) {
	if size > 1<<62 {
		return nil, fmt.Errorf("%w: size %d", ErrInvalid, size)
	}
	return checkpointAt(ctx, l.pool, size)
}

// checkpointAt reads the stored signed checkpoint of exactly size (at most 1<<62) through q, or
// ErrNotFound.
func checkpointAt(ctx context.Context, q querier, size uint64) (signed []byte, err error) {
	err = q.QueryRow(ctx, `SELECT signed FROM merklelog_checkpoint WHERE size = $1`, int64(size)).Scan(&signed)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w: no checkpoint of size %d", ErrNotFound, size)
	}
	if err != nil {
		return nil, dbErr("read checkpoint", err)
	}
	return signed, nil
}

// pageSize is how many rows Leaves and Checkpoints read per query; fn is called between
// queries, never while a connection is held.
const pageSize = 2048

// Checkpoints calls fn for every stored checkpoint in increasing size order. An error from fn
// stops the iteration and is returned as is.
func (l *Log) Checkpoints(ctx context.Context, fn func(size uint64, signed []byte) error) error {
	return l.checkpoints(ctx, l.pool, func(c storedCheckpoint) error { return fn(c.size, c.signed) })
}

type storedCheckpoint struct {
	size   uint64
	root   []byte
	signed []byte
	unix   int64 // created_at, microseconds
}

func (l *Log) checkpoints(ctx context.Context, q querier, fn func(storedCheckpoint) error) error {
	after := int64(-1)
	for {
		rows, err := q.Query(ctx, `SELECT size, root, signed, (extract(epoch FROM created_at) * 1000000)::bigint
			FROM merklelog_checkpoint WHERE size > $1 ORDER BY size LIMIT $2`, after, pageSize)
		if err != nil {
			return dbErr("read checkpoints", err)
		}
		var page []storedCheckpoint
		for rows.Next() {
			var c storedCheckpoint
			var size int64
			if err := rows.Scan(&size, &c.root, &c.signed, &c.unix); err != nil {
				rows.Close()
				return dbErr("read checkpoints", err)
			}
			c.size = uint64(size)
			after = size
			page = append(page, c)
		}
		if err := rows.Err(); err != nil {
			return dbErr("read checkpoints", err)
		}
		for _, c := range page {
			if err := fn(c); err != nil {
				return err
			}
		}
		if len(page) < pageSize {
			return nil
		}
	}
}

// LeafData returns the data of leaf index, or ErrNotFound when index >= Size.
func (l *Log) LeafData(ctx context.Context, index uint64) ([]byte, error) {
	if index >= 1<<62 {
		return nil, fmt.Errorf("%w: leaf %d", ErrNotFound, index)
	}
	var data []byte
	err := l.pool.QueryRow(ctx, `SELECT data FROM merklelog_leaf WHERE idx = $1`, int64(index)).Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%w: leaf %d", ErrNotFound, index)
	}
	if err != nil {
		return nil, dbErr("read leaf", err)
	}
	return data, nil
}

// Leaves calls fn for every leaf in index order. An error from fn stops the iteration and is
// returned as is.
func (l *Log) Leaves(ctx context.Context, fn func(index uint64, data []byte) error) error {
	return l.LeavesFrom(ctx, 0, fn)
}

// LeavesFrom is Leaves starting at leaf index start (for incremental audits).
func (l *Log) LeavesFrom(ctx context.Context, start uint64, fn func(index uint64, data []byte) error) error {
	return l.leaves(ctx, l.pool, start, func(index uint64, data, _ []byte) error { return fn(index, data) })
}

func (l *Log) leaves(ctx context.Context, q querier, start uint64, fn func(index uint64, data, hash []byte) error) error {
	if start >= 1<<62 {
		return nil
	}
	next := int64(start)
	for {
		rows, err := q.Query(ctx, `SELECT idx, data, hash FROM merklelog_leaf WHERE idx >= $1 ORDER BY idx LIMIT $2`, next, pageSize)
		if err != nil {
			return dbErr("read leaves", err)
		}
		type leaf struct {
			idx        int64
			data, hash []byte
		}
		var page []leaf
		for rows.Next() {
			var lf leaf
			if err := rows.Scan(&lf.idx, &lf.data, &lf.hash); err != nil {
				rows.Close()
				return dbErr("read leaves", err)
			}
			next = lf.idx + 1
			page = append(page, lf)
		}
		if err := rows.Err(); err != nil {
			return dbErr("read leaves", err)
		}
		for _, lf := range page {
			if err := fn(uint64(lf.idx), lf.data, lf.hash); err != nil {
				return err
			}
		}
		if len(page) < pageSize {
			return nil
		}
	}
}

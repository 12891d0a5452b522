package merklelog

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"

	"github.com/pecarchive/pecarchive/services/archive/blob"
	"github.com/pecarchive/pecarchive/tlog"
)

// Append-only or nothing: before it signs, Publish takes the latest checkpoint the log signed,
// the newer of the database's latest and the latest kept on write-once storage, checks its
// signature with the log's keys, and proves that the tree it is about to sign extends it (an
// RFC 6962 consistency proof from the stored nodes, checked against that checkpoint's root and
// the root of the sequencer's state); it refuses otherwise, with ErrForked or ErrWrongKey.
// CheckAppendOnly makes the same check without signing, for start-up.

// CheckpointStore is the write-once storage of signed checkpoints the log uses (blob's
// checkpoint storage: fsstore and s3store implement it).
type CheckpointStore interface {
	// PutCheckpoint stores signed as the checkpoint of tree size size, once (see
	// blob.CheckpointStore).
	PutCheckpoint(ctx context.Context, size uint64, signed []byte) (created bool, err error)
	// Checkpoints calls fn for every stored checkpoint of size >= from, in size order.
	Checkpoints(ctx context.Context, from uint64, fn func(blob.Checkpoint) error) error
}

// CanSign reports whether the log has a signer (Publish works).
func (l *Log) CanSign() bool { return l.cfg.Signer != nil }

// Verifiers returns the log's public keys: its current one and the ones it rotated away from.
func (l *Log) Verifiers() []note.Verifier {
	if l.cfg.Verifier == nil {
		return nil
	}
	return append([]note.Verifier{l.cfg.Verifier}, l.cfg.OldVerifiers...)
}

// signedCheckpoint is a checkpoint the log signed, verified with its keys.
type signedCheckpoint struct {
	cp       log.Checkpoint
	signed   []byte
	writeSet bool // found on write-once storage and not (yet) in the database
}

// latestSigned returns the latest checkpoint the log signed, checked against tree: the newer of
// db (the database's latest, nil when it has none) and the latest on write-once storage that
// verifies with the log's keys. It is nil when the log never signed one. Objects on write-once
// storage that are not checkpoints of this log's origin are passed over, and so are checkpoints
// of its origin that do not verify when another one does (anyone with the storage's credentials
// can put objects there; the audit names them); when none does, they are refused (ErrWrongKey):
// the log may have been signed with another key. The tree not extending the latest is ErrForked.
func (l *Log) latestSigned(ctx context.Context, db *storedCheckpoint, tree tlog.Tree) (*signedCheckpoint, error) {
	vs := l.Verifiers()
	if len(vs) == 0 {
		return nil, fmt.Errorf("%w: no key to check the latest checkpoint with (Config.Verifier)", ErrInvalid)
	}
	var latest *signedCheckpoint
	from := uint64(0)
	if db != nil {
		var err error
		if latest, err = l.verifyDB(db); err != nil {
			return nil, err
		}
		from = db.size + 1
	}
	invalid := 0
	var firstInvalid error
	if l.cfg.Checkpoints != nil {
		err := l.cfg.Checkpoints.Checkpoints(ctx, from, func(c blob.Checkpoint) error {
			g, ok := c.Genuine()
			var err error
			var cp log.Checkpoint
			switch {
			case !ok:
				return nil // delete markers only: nothing was ever stored there
			case g.Problem != "":
				err = errors.New(g.Problem)
			default:
				if p, perr := tlog.ParseCheckpoint(g.Signed); perr != nil || p.Origin != l.cfg.Origin {
					return nil // not a checkpoint of this log, whatever key signed it
				}
				cp, err = tlog.VerifyCheckpointAny(g.Signed, vs)
				if err == nil && cp.Size != c.Size {
					err = fmt.Errorf("it holds a checkpoint of size %d", cp.Size)
				}
			}
			if err != nil {
				invalid++
				if firstInvalid == nil {
					firstInvalid = fmt.Errorf("write-once checkpoint of size %d: %w", c.Size, err)
				}
				return nil
			}
			if latest == nil || cp.Size > latest.cp.Size {
				latest = &signedCheckpoint{cp: cp, signed: g.Signed, writeSet: true}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("merklelog: read write-once checkpoints: %w", err)
		}
	}
	if latest == nil {
		if invalid > 0 {
			return nil, fmt.Errorf("%w: %d checkpoints on write-once storage and none verifies with the log's %d keys; first: %w",
				ErrWrongKey, invalid, len(vs), firstInvalid)
		}
		return nil, nil
	}
	if err := extends(latest, tree); err != nil {
		return nil, err
	}
	return latest, nil
}

// verifyDB verifies the database's latest checkpoint db with the log's keys (else ErrWrongKey).
func (l *Log) verifyDB(db *storedCheckpoint) (*signedCheckpoint, error) {
	vs := l.Verifiers()
	if len(vs) == 0 {
		return nil, fmt.Errorf("%w: no key to check the latest checkpoint with (Config.Verifier)", ErrInvalid)
	}
	cp, err := tlog.VerifyCheckpointAny(db.signed, vs)
	if err != nil {
		return nil, fmt.Errorf("%w: the database's latest checkpoint, of size %d: %w", ErrWrongKey, db.size, err)
	}
	if cp.Size != db.size {
		return nil, fmt.Errorf("%w: the database's checkpoint row of size %d holds a checkpoint of size %d", ErrCorrupt, db.size, cp.Size)
	}
	return &signedCheckpoint{cp: cp, signed: db.signed}, nil
}

// extends checks that tree extends latest, a checkpoint the log signed (else ErrForked).
func extends(latest *signedCheckpoint, tree tlog.Tree) error {
	err := tlog.Extends(latest.cp, tree)
	if errors.Is(err, tlog.ErrRollback) || errors.Is(err, tlog.ErrFork) {
		where := "database"
		if latest.writeSet {
			where = "write-once storage"
		}
		return fmt.Errorf("%w: latest checkpoint (size %d, from the %s): %w", ErrForked, latest.cp.Size, where, err)
	}
	return err
}

// tree returns the tree of the sequencer state st, its consistency proofs read through q.
func (l *Log) tree(ctx context.Context, q querier, st state) (tlog.Tree, error) {
	root, err := st.rng.GetRootHash(nil)
	if err != nil {
		return tlog.Tree{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if root == nil {
		e := tlog.EmptyRoot()
		root = e[:]
	}
	return tlog.Tree{Size: st.size, Root: root, Consistency: func(from uint64) ([][]byte, error) {
		return l.consistencyProof(ctx, q, from, st.size)
	}}, nil
}

// CheckAppendOnly checks, without signing, what Publish checks before it signs: the latest
// checkpoint the log signed (the newer of the database's and the write-once storage's) verifies
// with the log's keys (else ErrWrongKey), and the current tree extends it, shown by a
// consistency proof from the stored nodes (else ErrForked). A log that never signed a checkpoint
// passes. The archive runs it at start-up and refuses to start on a failure.
func (l *Log) CheckAppendOnly(ctx context.Context) error {
	tx, err := l.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return dbErr("check: begin", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read-only
	st, db, err := l.readStateAndLatest(ctx, tx, false)
	if err != nil {
		return err
	}
	tree, err := l.tree(ctx, tx, st)
	if err != nil {
		return err
	}
	_, err = l.latestSigned(ctx, db, tree)
	return err
}

// readStateAndLatest reads, in one round trip of tx, the sequencer state and the database's
// latest checkpoint (nil when none), first taking the publishers' lock when lock is set.
func (l *Log) readStateAndLatest(ctx context.Context, tx pgx.Tx, lock bool) (state, *storedCheckpoint, error) {
	b := &pgx.Batch{}
	if lock {
		b.Queue(`SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))`, int32(lockClass+1))
	}
	b.Queue(`SELECT size, compact FROM merklelog_state WHERE id`)
	b.Queue(`SELECT size, signed FROM merklelog_checkpoint ORDER BY size DESC LIMIT 1`)
	br := tx.SendBatch(ctx, b)
	var size, latest int64 = 0, -1
	var packed, latestSigned []byte
	var err error
	if lock {
		_, err = br.Exec()
	}
	if err == nil {
		err = br.QueryRow().Scan(&size, &packed)
	}
	if err == nil {
		err = br.QueryRow().Scan(&latest, &latestSigned)
		if errors.Is(err, pgx.ErrNoRows) {
			latest, err = -1, nil
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return state{}, nil, dbErr("read state", err)
	}
	st, err := l.parseState(size, packed)
	if err != nil {
		return state{}, nil, err
	}
	var db *storedCheckpoint
	if latest >= 0 {
		db = &storedCheckpoint{size: uint64(latest), signed: latestSigned}
	}
	return st, db, nil
}

// SettledCheckpointAt is [Log.CheckpointAt] after waiting for a publish in progress to end: a
// checkpoint is written to write-once storage before its database copy, so an audit that finds
// one there and not in the database asks again here before it names it missing.
func (l *Log) SettledCheckpointAt(ctx context.Context, size uint64) (signed []byte, err error) {
	if size > 1<<62 {
		return nil, fmt.Errorf("%w: size %d", ErrInvalid, size)
	}
	tx, err := l.pool.Begin(ctx)
	if err != nil {
		return nil, dbErr("read checkpoint: begin", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read only
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))`, int32(lockClass+1)); err != nil {
		return nil, dbErr("read checkpoint: wait for publishers", err)
	}
	return checkpointAt(ctx, tx, size)
}

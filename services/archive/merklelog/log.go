// Package merklelog owns the archive's transparency log in PostgreSQL: an append-only RFC 6962
// Merkle tree with one leaf per archived message (and per audited access), its sequencer, the
// stored tree nodes that answer root, inclusion and consistency queries with O(log n) reads, and
// the signed checkpoints it publishes. The leaf encoding, checkpoint format and proof
// verification are in the public package github.com/pecarchive/pecarchive/tlog.
//
// # Storage
//
// The schema (see [Migrations]) has four tables in the connection's current schema:
// merklelog_leaf (index, data, leaf hash), merklelog_node (every complete subtree of level >= 1,
// written once when its last leaf is appended), merklelog_state (one row: size and the compact
// range of the tree, i.e. the roots of the perfect subtrees covering it) and merklelog_checkpoint
// (signed checkpoints). Any root, inclusion proof or consistency proof is made of complete
// subtrees, so it is answered by one SELECT of at most about 2·log2(n) stored nodes; nothing is
// ever rehashed beyond the leaves being appended. Triggers (migration 0002) refuse UPDATE, DELETE
// and TRUNCATE on leaves, nodes and checkpoints, and any change of the state row but the
// sequencer's forward move.
//
// # Checkpoints
//
// [Log.Publish] signs only a tree that extends the latest checkpoint the log signed, the newer of
// the database's and the one kept on write-once storage (Config.Checkpoints), verified with the
// log's keys, and writes every checkpoint to that storage before its database copy; see
// [Log.CheckAppendOnly], ErrForked and ErrWrongKey. Checking a checkpoint against a log is
// tlog.CheckAgainst.
//
// # Sequencing
//
// Appending runs inside the caller's transaction, through the caller's own pipelined batches
// ([Log.QueueLock] or [Log.QueueLockAt], then [Appender.QueueAppend]), so leaves commit or roll
// back together with the caller's rows. The lock is the single state row's (SELECT ... FOR
// UPDATE), so any number of replicas may append: they are serialized on that row, each sees the
// previous one's committed state (under READ COMMITTED a row lock that had to wait returns the
// row as its holder committed it), and a rolled-back transaction leaves no trace. The lock is
// held until the caller's transaction ends, so callers should batch many leaves per transaction,
// append last, and commit promptly. Use READ COMMITTED (the default) for the caller's
// transaction; under REPEATABLE READ or SERIALIZABLE a concurrent append fails with a
// serialization error.
package merklelog

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pecarchive/pecarchive/internal/pgerr"
	"github.com/pecarchive/pecarchive/internal/pgmigrate"
	"github.com/pecarchive/pecarchive/tlog"
	"github.com/transparency-dev/merkle/compact"
	"golang.org/x/mod/sumdb/note"
)

// Migrations holds the schema, files migrations/NNNN_name.up.sql, to be run by internal/pgmigrate
// with the version table [VersionTable].
//
//go:embed migrations/*.up.sql
var Migrations embed.FS

// VersionTable is the name of the migration version table for [Migrations].
const VersionTable = "merklelog_schema_version"

// Migrate applies [Migrations] in pool's current schema with internal/pgmigrate.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	return pgmigrate.Run(ctx, pool, Migrations, VersionTable)
}

// MaxBatch is the largest number of leaves one [Appender.QueueAppend] accepts (each leaf is
// bounded by tlog.MaxLeafSize).
const MaxBatch = 100_000

// Errors; use errors.Is. A database error that means PostgreSQL is unusable right now wraps
// ErrUnavailable (and the pgx error); any other is wrapped as it comes from pgx.
var (
	// ErrUnavailable: PostgreSQL is down, unreachable, shutting down or timed out (see
	// internal/pgerr); the same call may succeed later.
	ErrUnavailable = errors.New("merklelog: unavailable")
	// ErrInvalid: bad argument (empty or oversized batch, malformed leaf, index >= size, from > to).
	ErrInvalid = errors.New("merklelog: invalid argument")
	// ErrOutOfRange: the requested size or index is beyond the current tree.
	ErrOutOfRange = errors.New("merklelog: beyond the current tree size")
	// ErrNotFound: no such leaf, or no checkpoint published yet.
	ErrNotFound = errors.New("merklelog: not found")
	// ErrCorrupt: stored data is inconsistent (a node or leaf that must exist is missing, the state
	// row does not parse). Run Verify.
	ErrCorrupt = errors.New("merklelog: stored log is inconsistent")
	// ErrNoSigner: Publish was called on a Log configured without a signer.
	ErrNoSigner = errors.New("merklelog: no checkpoint signer configured")
	// ErrSchema: the tables are missing; run the migrations.
	ErrSchema = errors.New("merklelog: schema not migrated")
	// ErrStale: the state given to QueueLockAt is not the log's any more.
	ErrStale = errors.New("merklelog: the log moved since its state was read")
	// ErrForked: the tree does not extend the latest checkpoint the log signed (it is smaller,
	// tlog.ErrRollback, or another tree, tlog.ErrFork), so Publish refuses to sign it. The
	// stored log was rewritten or restored from an older copy: run the audit.
	ErrForked = errors.New("merklelog: the tree does not extend the latest signed checkpoint")
	// ErrWrongKey: the latest checkpoints are not signed by any of the log's keys (the key was
	// replaced, or checkpoints were forged), so Publish refuses to sign with this key.
	ErrWrongKey = errors.New("merklelog: the log's checkpoints are not signed by its key")
)

// Config configures a [Log].
type Config struct {
	// Pool is the PostgreSQL pool; its search_path selects the schema holding the tables.
	Pool *pgxpool.Pool
	// Origin is the log origin, the first line of every checkpoint. It defaults to Signer.Name()
	// and must equal it (tlog checkpoints are signed by a key named after the origin).
	Origin string
	// Signer signs checkpoints (see tlog.NewSigner). Nil makes a read-only log: Publish fails
	// with ErrNoSigner, everything else works. A signer needs Verifier and Checkpoints.
	Signer note.Signer
	// Verifier is the public key of Signer (see tlog.NewVerifier and tlog.VerifierKey): Publish
	// checks the latest checkpoint with it before it signs the next, and Verify checks every
	// stored checkpoint. Its name must equal the origin. Nil on a read-only log: Verify then
	// checks no signature.
	Verifier note.Verifier
	// OldVerifiers are the public keys the log signed with before its key was rotated (same
	// origin): checkpoints signed by them verify too.
	OldVerifiers []note.Verifier
	// Checkpoints is the write-once storage every checkpoint is written to before its database
	// copy (so none is handed out that is not kept there); Publish also takes the latest
	// checkpoint from the newer of the two. Required with a Signer.
	Checkpoints CheckpointStore
}

// Log is the PostgreSQL-backed transparency log. It is safe for concurrent use and keeps no
// state of its own besides its configuration and a cache of the upper stored nodes that
// [Log.InclusionProofs] reads (complete subtrees, which never change): every other call reads
// the database.
type Log struct {
	pool  *pgxpool.Pool
	cfg   Config
	rf    *compact.RangeFactory
	nodes nodeCache // upper nodes read by InclusionProofs
}

// New returns a Log over the tables of cfg.Pool's current schema, checking that the migrations
// have been run.
func New(ctx context.Context, cfg Config) (*Log, error) {
	if cfg.Pool == nil {
		return nil, fmt.Errorf("%w: nil pool", ErrInvalid)
	}
	if cfg.Signer != nil {
		if cfg.Origin == "" {
			cfg.Origin = cfg.Signer.Name()
		}
		if cfg.Origin != cfg.Signer.Name() {
			return nil, fmt.Errorf("%w: origin %q differs from signer key name %q", ErrInvalid, cfg.Origin, cfg.Signer.Name())
		}
	}
	if cfg.Verifier != nil {
		if cfg.Origin == "" {
			cfg.Origin = cfg.Verifier.Name()
		}
		if cfg.Origin != cfg.Verifier.Name() {
			return nil, fmt.Errorf("%w: origin %q differs from verifier key name %q", ErrInvalid, cfg.Origin, cfg.Verifier.Name())
		}
	}
	for _, v := range cfg.OldVerifiers {
		if cfg.Verifier == nil || v == nil || v.Name() != cfg.Origin {
			return nil, fmt.Errorf("%w: an old key needs the current one, and the same name %q (a rotated key keeps the origin)", ErrInvalid, cfg.Origin)
		}
	}
	if cfg.Signer != nil && (cfg.Verifier == nil || cfg.Checkpoints == nil) {
		return nil, fmt.Errorf("%w: a signer needs its public key (Verifier) and write-once checkpoint storage (Checkpoints)", ErrInvalid)
	}
	if cfg.Signer != nil {
		msg := []byte("merklelog: does the verifier check this signer?\n")
		sig, err := cfg.Signer.Sign(msg)
		if err != nil || cfg.Signer.KeyHash() != cfg.Verifier.KeyHash() || !cfg.Verifier.Verify(msg, sig) {
			return nil, fmt.Errorf("%w: Verifier is not the public key of Signer", ErrInvalid)
		}
	}
	l := &Log{pool: cfg.Pool, cfg: cfg, rf: &compact.RangeFactory{Hash: hashChildren}}
	if _, err := l.Size(ctx); err != nil {
		return nil, err
	}
	return l, nil
}

// Origin returns the log origin ("" when neither signer nor origin was configured).
func (l *Log) Origin() string { return l.cfg.Origin }

func hashChildren(left, right []byte) []byte {
	h := tlog.NodeHash(left, right)
	return h[:]
}

// querier is what both a pool and a transaction offer.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// state is the sequencer state row.
type state struct {
	size uint64
	rng  *compact.Range
}

func (l *Log) parseState(size int64, packed []byte) (state, error) {
	if size < 0 || len(packed)%32 != 0 {
		return state{}, fmt.Errorf("%w: state row: size %d, %d compact bytes", ErrCorrupt, size, len(packed))
	}
	hashes := make([][]byte, len(packed)/32)
	for i := range hashes {
		hashes[i] = packed[i*32 : (i+1)*32 : (i+1)*32]
	}
	r, err := l.rf.NewRange(0, uint64(size), hashes)
	if err != nil {
		return state{}, fmt.Errorf("%w: state row: %v", ErrCorrupt, err)
	}
	return state{size: uint64(size), rng: r}, nil
}

func packRange(r *compact.Range) []byte {
	hs := r.Hashes()
	b := make([]byte, 0, 32*len(hs))
	for _, h := range hs {
		b = append(b, h...)
	}
	return b
}

func (l *Log) readState(ctx context.Context, q querier) (state, error) {
	var size int64
	var packed []byte
	if err := q.QueryRow(ctx, `SELECT size, compact FROM merklelog_state WHERE id`).Scan(&size, &packed); err != nil {
		return state{}, dbErr("read state", err)
	}
	return l.parseState(size, packed)
}

// dbErr wraps a database error: a missing table or state row as ErrSchema, unavailability as
// ErrUnavailable, anything else as it is. Errors of this package pass through unchanged.
func dbErr(op string, err error) error {
	switch {
	case errors.Is(err, ErrSchema), errors.Is(err, ErrCorrupt), errors.Is(err, ErrInvalid), errors.Is(err, ErrStale),
		errors.Is(err, ErrUnavailable), errors.Is(err, ErrNotFound), errors.Is(err, ErrOutOfRange):
		return err
	case pgerr.UndefinedTable(err):
		return fmt.Errorf("%w: %s: %v", ErrSchema, op, err)
	case errors.Is(err, pgx.ErrNoRows) && op == "read state":
		return fmt.Errorf("%w: state row missing", ErrSchema)
	case pgerr.Transient(err):
		return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
	}
	return fmt.Errorf("merklelog: %s: %w", op, err)
}

// Size returns the number of leaves committed to the log.
func (l *Log) Size(ctx context.Context) (uint64, error) {
	var size int64
	if err := l.pool.QueryRow(ctx, `SELECT size FROM merklelog_state WHERE id`).Scan(&size); err != nil {
		return 0, dbErr("read state", err)
	}
	if size < 0 {
		return 0, fmt.Errorf("%w: negative size", ErrCorrupt)
	}
	return uint64(size), nil
}

// lockClass ("mlog") + 1 is the first key of the checkpoint publishers' advisory lock; the
// second is a hash of the current schema, so logs in different schemas do not contend.
const lockClass = 0x6d6c6f67

// checkLeaves validates a batch of leaves: each must be a valid tlog.Leaf encoding.
func checkLeaves(leaves [][]byte) error {
	if len(leaves) == 0 || len(leaves) > MaxBatch {
		return fmt.Errorf("%w: batch of %d leaves (1 to %d)", ErrInvalid, len(leaves), MaxBatch)
	}
	for i, d := range leaves {
		if _, err := tlog.ParseLeaf(d); err != nil {
			return fmt.Errorf("%w: leaf %d: %w", ErrInvalid, i, err)
		}
	}
	return nil
}

// Appender appends to the log inside a caller's transaction through the caller's own pipelined
// round trips (pgx.Batch): [Log.QueueLock] queues the sequencer lock and the state read, and once
// that batch has been sent and its results read (BatchResults.Close), [Appender.QueueAppend]
// queues the writes of the new leaves into a later batch of the same transaction; a caller that
// knows the state from its previous append ([Appender.State]) uses [Log.QueueLockAt] instead and
// queues lock, state check and writes in the same batch. Results are
// read through the queued statements' callbacks, so the batches may carry other statements too.
// An Appender is not safe for concurrent use.
type Appender struct {
	l      *Log
	ready  bool
	size   int64
	packed []byte
}

// QueueLock queues into b, which must be sent inside a transaction (for instance one begun by
// b.BeginTx), the statement that takes the sequencer lock (the state row's) for the rest of that
// transaction and reads the state it protects. An error fails b's Close.
func (l *Log) QueueLock(b *pgx.Batch) *Appender {
	ap := &Appender{l: l}
	queueLockAndRead(b, func(size int64, packed []byte) error {
		ap.size, ap.packed, ap.ready = size, packed, true
		return nil
	})
	return ap
}

// queueLockAndRead queues the sequencer lock and the read of the state it protects, one
// statement: the state row locked FOR UPDATE, whose values are passed to read when b's results
// are read. The row lock is the sequencer lock: a second appender waits for it and then reads
// the row as the first one committed it.
func queueLockAndRead(b *pgx.Batch, read func(size int64, packed []byte) error) {
	b.Queue(`SELECT size, compact FROM merklelog_state WHERE id FOR UPDATE`).QueryRow(func(row pgx.Row) error {
		var size int64
		var packed []byte
		if err := row.Scan(&size, &packed); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("%w: state row missing", ErrSchema)
			}
			return err
		}
		return read(size, packed)
	})
}

// QueueLockAt is [Log.QueueLock] for a caller that already knows the state, size and packed as
// returned by [Appender.State] after its last append: the returned Appender is ready at once, so
// the lock, the leaves and the caller's other statements can share one round trip. If the log
// moved since (another sequencer appended), b's Close fails with ErrStale, and the transaction
// must be rolled back and the append redone after QueueLock.
func (l *Log) QueueLockAt(b *pgx.Batch, size int64, packed []byte) *Appender {
	queueLockAndRead(b, func(got int64, gotPacked []byte) error {
		if got != size || !bytes.Equal(gotPacked, packed) {
			return fmt.Errorf("%w: size %d, expected %d", ErrStale, got, size)
		}
		return nil
	})
	return &Appender{l: l, ready: true, size: size, packed: packed}
}

// State returns the log's size and packed compact range as this Appender last read or appended
// them, for [Log.QueueLockAt] in the next transaction (once this one has committed).
func (ap *Appender) State() (size int64, packed []byte) {
	return ap.size, ap.packed
}

// QueueAppend computes the tree over leaves and queues their writes (leaves, completed subtrees,
// new state) into b, to be sent in the same transaction as the batch of [Log.QueueLock]. It
// returns the index of the first leaf; the others follow in order. A failed write (or a state
// changed under the lock, reported as ErrCorrupt) fails b's Close, and the transaction must
// then be rolled back. Every leaf must be a valid tlog.Leaf encoding. Successive calls append
// after each other.
func (ap *Appender) QueueAppend(b *pgx.Batch, leaves [][]byte) (first uint64, err error) {
	l := ap.l
	if !ap.ready {
		return 0, fmt.Errorf("%w: QueueAppend before the lock batch was read", ErrInvalid)
	}
	if err := checkLeaves(leaves); err != nil {
		return 0, err
	}
	st, err := l.parseState(ap.size, ap.packed)
	if err != nil {
		return 0, err
	}
	first = st.size
	if first+uint64(len(leaves)) > 1<<62 {
		return 0, fmt.Errorf("%w: log is full", ErrInvalid)
	}

	// Extend the compact range, collecting every subtree completed on the way.
	idx := make([]int64, len(leaves))
	hashes := make([][]byte, len(leaves))
	var nLevel []int16
	var nIdx []int64
	var nHash [][]byte
	visit := func(id compact.NodeID, hash []byte) {
		if id.Level == 0 {
			return // leaf hashes are stored with the leaves
		}
		nLevel = append(nLevel, int16(id.Level))
		nIdx = append(nIdx, int64(id.Index))
		nHash = append(nHash, hash)
	}
	for i, d := range leaves {
		h := tlog.LeafHash(d)
		hashes[i] = h[:]
		idx[i] = int64(first) + int64(i)
		if err := st.rng.Append(hashes[i], visit); err != nil {
			return 0, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
	}

	want := int64(len(leaves))
	b.Queue(`INSERT INTO merklelog_leaf (idx, data, hash)
		SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::bytea[])`, idx, leaves, hashes).Exec(func(tag pgconn.CommandTag) error {
		if tag.RowsAffected() != want {
			return fmt.Errorf("%w: inserted %d leaves, want %d", ErrCorrupt, tag.RowsAffected(), want)
		}
		return nil
	})
	if len(nLevel) > 0 {
		b.Queue(`INSERT INTO merklelog_node (level, idx, hash)
			SELECT * FROM unnest($1::smallint[], $2::bigint[], $3::bytea[])`, nLevel, nIdx, nHash)
	}
	packed := packRange(st.rng)
	// The state moves only from the one the leaves were computed on, and the server itself
	// refuses otherwise (merklelog_stale raises), so that the transaction cannot commit: the
	// caller's COMMIT may ride in the same pipeline, where a client-side check comes too late.
	b.Queue(`WITH moved AS (UPDATE merklelog_state SET size = $1, compact = $2, updated_at = now()
			WHERE id AND size = $3 AND compact = $4 RETURNING size)
		SELECT coalesce((SELECT size FROM moved), merklelog_stale($3))`,
		int64(st.rng.End()), packed, ap.size, ap.packed).QueryRow(func(row pgx.Row) error {
		var moved int64
		if err := row.Scan(&moved); err != nil {
			return fmt.Errorf("%w: state changed under the sequencer lock: %w", ErrCorrupt, err)
		}
		return nil
	})
	ap.size, ap.packed = int64(st.rng.End()), packed
	return first, nil
}

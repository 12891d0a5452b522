package merklelog_test

import (
	"context"
	"crypto/rand"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pecarchive/pecarchive/internal/testenv"
	"github.com/pecarchive/pecarchive/services/archive/blob/fsstore"
	"github.com/pecarchive/pecarchive/services/archive/merklelog"
	"github.com/pecarchive/pecarchive/services/archive/merklelog/merklelogtest"
	"github.com/pecarchive/pecarchive/tlog"
	"golang.org/x/mod/sumdb/note"
)

const origin = "pecarchive.test/log"

// queryCounter counts the statements sent with Query/QueryRow/Exec (not batches).
type queryCounter struct{ n atomic.Int64 }

func (q *queryCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	q.n.Add(1)
	return ctx
}
func (q *queryCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

type env struct {
	pool    *pgxpool.Pool
	schema  string
	queries *queryCounter
	log     *merklelog.Log
	vkey    string
	signer  note.Signer
	// checkpoints is the log's write-once checkpoint storage (a filesystem store).
	checkpoints *fsstore.Store
}

// newSchema returns a pool on a fresh schema of the test server (dropped on cleanup) with the
// migrations applied.
func newSchema(tb testing.TB) *env {
	tb.Helper()
	e := newBareSchema(tb)
	// Twice: re-running is a no-op.
	for range 2 {
		if err := merklelog.Migrate(context.Background(), e.pool); err != nil {
			tb.Fatal(err)
		}
	}
	return e
}

// newBareSchema returns a pool on a fresh, empty schema, counting queries.
func newBareSchema(tb testing.TB) *env {
	tb.Helper()
	cfg := testenv.PGConfig(tb)
	qc := &queryCounter{}
	cfg.ConnConfig.Tracer = qc
	cfg.MaxConns = 8
	pool := testenv.PGPool(tb, cfg)
	return &env{pool: pool, schema: testenv.PGSchemaOf(tb, pool), queries: qc}
}

// newEnv returns a migrated schema and a Log over it with a fresh signing key.
func newEnv(tb testing.TB, cfg merklelog.Config) *env {
	tb.Helper()
	e := newSchema(tb)
	skey, vkey, err := tlog.GenerateKey(origin)
	if err != nil {
		tb.Fatal(err)
	}
	if cfg.Signer == nil {
		if cfg.Signer, err = tlog.NewSigner(skey); err != nil {
			tb.Fatal(err)
		}
		if cfg.Verifier, err = tlog.NewVerifier(vkey); err != nil {
			tb.Fatal(err)
		}
	}
	if cfg.Checkpoints == nil {
		e.checkpoints = newCheckpointStore(tb)
		cfg.Checkpoints = e.checkpoints
	}
	cfg.Pool = e.pool
	e.vkey, e.signer = vkey, cfg.Signer
	if e.log, err = merklelog.New(context.Background(), cfg); err != nil {
		tb.Fatal(err)
	}
	return e
}

// leaf returns the encoding of a distinct message leaf.
func leaf(i int) []byte {
	var sum [32]byte
	_, _ = rand.Read(sum[:])
	return tlog.Leaf{Kind: tlog.KindMessage, SHA256: sum, Time: time.Unix(1_700_000_000+int64(i), 0)}.Marshal()
}

// appendIn appends leaves to l inside tx as a writer does, in two round trips: the sequencer lock
// and the state, then the leaves.
func appendIn(ctx context.Context, l *merklelog.Log, tx pgx.Tx, leaves [][]byte) (uint64, error) {
	var lock pgx.Batch
	ap := l.QueueLock(&lock)
	if err := tx.SendBatch(ctx, &lock).Close(); err != nil {
		return 0, err
	}
	var writes pgx.Batch
	first, err := ap.QueueAppend(&writes, leaves)
	if err != nil {
		return 0, err
	}
	return first, tx.SendBatch(ctx, &writes).Close()
}

// appendTx appends leaves in one transaction and commits it.
func (e *env) appendTx(tb testing.TB, leaves [][]byte) uint64 {
	tb.Helper()
	ctx := context.Background()
	tx, err := e.pool.Begin(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	first, err := appendIn(ctx, e.log, tx, leaves)
	if err != nil {
		tb.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		tb.Fatal(err)
	}
	return first
}

// newCheckpointStore returns an empty filesystem store for write-once checkpoints.
func newCheckpointStore(tb testing.TB) *fsstore.Store {
	tb.Helper()
	s, err := fsstore.New(context.Background(), fsstore.Config{Root: tb.TempDir()})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// tamper runs one statement with the log tables' triggers disabled, as an insider who owns the
// tables can.
func (e *env) tamper(tb testing.TB, sql string, args ...any) {
	tb.Helper()
	err := merklelogtest.AsOwner(context.Background(), e.pool, nil, func(tx pgx.Tx) error {
		_, err := tx.Exec(context.Background(), sql, args...)
		return err
	})
	if err != nil {
		tb.Fatalf("%s: %v", sql, err)
	}
}

// rebuild recomputes the stored tree from the leaves, as an insider who rewrote leaves does.
func (e *env) rebuild(tb testing.TB) {
	tb.Helper()
	if err := merklelogtest.AsOwner(context.Background(), e.pool, nil, func(tx pgx.Tx) error {
		return merklelogtest.Rebuild(context.Background(), tx)
	}); err != nil {
		tb.Fatal(err)
	}
}

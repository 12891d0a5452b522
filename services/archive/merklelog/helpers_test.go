package merklelog_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io/fs"
	"os"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pecarchive/pecarchive/services/archive/merklelog"
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
}

func dsn() string {
	if d := os.Getenv("PECARCHIVE_TEST_PG_DSN"); d != "" {
		return d
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// newSchema creates a fresh schema, dropped on cleanup, and returns a pool whose search_path is
// that schema, with the migrations applied.
func newSchema(tb testing.TB) *env {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, dsn())
	if err != nil {
		tb.Fatalf("PostgreSQL at %s not reachable: %v", dsn(), err)
	}
	defer admin.Close(ctx)
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	schema := "merklelog_" + hex.EncodeToString(rnd[:])
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, dsn())
		if err != nil {
			tb.Logf("drop schema %s: %v", schema, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			tb.Logf("drop schema %s: %v", schema, err)
		}
	})
	cfg, err := pgxpool.ParseConfig(dsn())
	if err != nil {
		tb.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	qc := &queryCounter{}
	cfg.ConnConfig.Tracer = qc
	cfg.MaxConns = 8
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	// Twice: the migration must be safe to re-run.
	for range 2 {
		migrate(tb, pool)
	}
	return &env{pool: pool, schema: schema, queries: qc}
}

// migrate applies the embedded migration files in order (a stand-in for internal/pgmigrate).
func migrate(tb testing.TB, pool *pgxpool.Pool) {
	tb.Helper()
	files, err := fs.Glob(merklelog.Migrations, "migrations/*.up.sql")
	if err != nil || len(files) == 0 {
		tb.Fatalf("no migrations: %v", err)
	}
	sort.Strings(files)
	for _, f := range files {
		b, err := fs.ReadFile(merklelog.Migrations, f)
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := pool.Exec(context.Background(), string(b)); err != nil {
			tb.Fatalf("%s: %v", f, err)
		}
	}
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

// appendTx appends leaves in one transaction and commits it.
func (e *env) appendTx(tb testing.TB, leaves [][]byte) uint64 {
	tb.Helper()
	ctx := context.Background()
	tx, err := e.pool.Begin(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	first, err := e.log.Append(ctx, tx, leaves)
	if err != nil {
		tb.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		tb.Fatal(err)
	}
	return first
}

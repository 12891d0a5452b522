package testenv

// PostgreSQL (this file): [PG] gives a test a pool on the real server whose search_path is a
// fresh schema of its own, dropped on cleanup, so tests run repeatedly and concurrently.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultPGDSN is the test server used when PECARCHIVE_TEST_PG_DSN is not set.
const DefaultPGDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// PGBaseDSN returns the DSN of the test server: PECARCHIVE_TEST_PG_DSN or [DefaultPGDSN].
func PGBaseDSN() string {
	if d := os.Getenv("PECARCHIVE_TEST_PG_DSN"); d != "" {
		return d
	}
	return DefaultPGDSN
}

// PGSchema creates a fresh schema on the test server, dropped (with everything in it) on
// cleanup, and returns its name and a DSN whose search_path is that schema. It fails the test
// when the server cannot be reached (run scripts/postgres.sh).
func PGSchema(tb testing.TB) (schema, dsn string) {
	tb.Helper()
	base := PGBaseDSN()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		tb.Fatalf("testenv: PostgreSQL at %s is not reachable (start it with scripts/postgres.sh): %v", base, err)
	}
	defer admin.Close(ctx)
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	schema = "t_" + hex.EncodeToString(rnd[:])
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		tb.Fatalf("testenv: create schema: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			tb.Logf("testenv: dropping schema %s: %v", schema, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			tb.Logf("testenv: dropping schema %s: %v", schema, err)
		}
	})
	return schema, withSearchPath(base, schema)
}

// withSearchPath adds a search_path run-time parameter to a URL or keyword/value DSN.
func withSearchPath(dsn, schema string) string {
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		return dsn + " search_path=" + schema
	}
	if strings.Contains(dsn, "?") {
		return dsn + "&search_path=" + schema
	}
	return dsn + "?search_path=" + schema
}

// PGConfig is like [PG] but returns the pool configuration (search_path set to the fresh schema),
// for tests that tune the pool (sizes, timeouts) before opening it.
func PGConfig(tb testing.TB) *pgxpool.Config {
	tb.Helper()
	_, dsn := PGSchema(tb)
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	return cfg
}

// PG returns a pool on the test server whose search_path is a fresh schema; the pool is closed
// and the schema dropped on cleanup.
func PG(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	return PGPool(tb, PGConfig(tb))
}

// PGPool opens a pool from cfg, closed on cleanup (before the schema is dropped).
func PGPool(tb testing.TB, cfg *pgxpool.Config) *pgxpool.Pool {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		tb.Fatalf("testenv: PostgreSQL not reachable (start it with scripts/postgres.sh): %v", err)
	}
	tb.Cleanup(pool.Close)
	return pool
}

// PGSchemaOf returns the current schema of pool (as set by [PG]).
func PGSchemaOf(tb testing.TB, pool *pgxpool.Pool) string {
	tb.Helper()
	var s string
	if err := pool.QueryRow(context.Background(), "SELECT current_schema()").Scan(&s); err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	return s
}

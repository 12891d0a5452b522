package pgmigrate_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/pecarchive/pecarchive/internal/pgmigrate"
	"github.com/pecarchive/pecarchive/internal/testenv"
)

func set(files map[string]string) fstest.MapFS {
	m := fstest.MapFS{}
	for k, v := range files {
		m[k] = &fstest.MapFile{Data: []byte(v)}
	}
	return m
}

func TestLoad(t *testing.T) {
	ms, err := pgmigrate.Load(set(map[string]string{
		"migrations/0002_b.up.sql":   "B",
		"migrations/0001_a.up.sql":   "A",
		"migrations/0001_a.down.sql": "drop",
		"migrations/README.md":       "x",
		"0010_c.sql":                 "C",
	}))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms {
		got = append(got, m.Name+":"+m.SQL)
	}
	if want := []string{"a:A", "b:B", "c:C"}; len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("got %v, want %v", got, want)
	}
	if _, err := pgmigrate.Load(set(map[string]string{"1_a.sql": "A", "0001_b.up.sql": "B"})); !errors.Is(err, pgmigrate.ErrDuplicate) {
		t.Fatalf("duplicate: %v", err)
	}
	if _, err := pgmigrate.Load(set(map[string]string{"x.sql": "A"})); !errors.Is(err, pgmigrate.ErrEmpty) {
		t.Fatalf("empty: %v", err)
	}
}

func TestRun(t *testing.T) {
	ctx := context.Background()
	pool := testenv.PG(t)
	v1 := set(map[string]string{
		"migrations/0001_t.up.sql": "CREATE TABLE t (id int PRIMARY KEY); CREATE TABLE u (id int);",
	})
	if err := pgmigrate.Run(ctx, pool, v1, "bad-name"); !errors.Is(err, pgmigrate.ErrBadName) {
		t.Fatalf("bad name: %v", err)
	}
	if err := pgmigrate.Run(ctx, pool, v1, "test_version"); err != nil {
		t.Fatal(err)
	}
	// Idempotent.
	if err := pgmigrate.Run(ctx, pool, v1, "test_version"); err != nil {
		t.Fatal(err)
	}
	// A second migration; a failing third is rolled back entirely and not recorded.
	v3 := set(map[string]string{
		"migrations/0001_t.up.sql": "CREATE TABLE t (id int PRIMARY KEY); CREATE TABLE u (id int);",
		"migrations/0002_v.up.sql": "INSERT INTO t VALUES (1);",
		"migrations/0003_w.up.sql": "INSERT INTO t VALUES (2); INSERT INTO t VALUES (1);",
	})
	if err := pgmigrate.Run(ctx, pool, v3, "test_version"); err == nil {
		t.Fatal("failing migration: no error")
	}
	vs, err := pgmigrate.Applied(ctx, pool, "test_version")
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 2 || vs[0] != 1 || vs[1] != 2 {
		t.Fatalf("applied %v, want [1 2]", vs)
	}
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil || n != 1 {
		t.Fatalf("rows in t: %d, %v (want 1: migration 3 must roll back)", n, err)
	}
	// An edited applied migration is refused.
	edited := set(map[string]string{"migrations/0001_t.up.sql": "CREATE TABLE t (id bigint);"})
	if err := pgmigrate.Run(ctx, pool, edited, "test_version"); !errors.Is(err, pgmigrate.ErrModified) {
		t.Fatalf("edited: %v", err)
	}
	// Another version table is an independent set.
	other := set(map[string]string{"0001_x.sql": "CREATE TABLE x (id int);"})
	if err := pgmigrate.Run(ctx, pool, other, "other_version"); err != nil {
		t.Fatal(err)
	}
}

// Concurrent runners (replicas starting together) apply each migration exactly once.
func TestRunConcurrent(t *testing.T) {
	ctx := context.Background()
	pool := testenv.PG(t)
	ms := set(map[string]string{
		"0001_a.sql": "CREATE TABLE a (id int); INSERT INTO a VALUES (1);",
		"0002_b.sql": "SELECT pg_sleep(0.05); INSERT INTO a VALUES (2);",
		"0003_c.sql": "INSERT INTO a VALUES (3);",
	})
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- pgmigrate.Run(ctx, pool, ms, "conc_version")
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM a").Scan(&n); err != nil || n != 3 {
		t.Fatalf("rows: %d, %v; want 3", n, err)
	}
}

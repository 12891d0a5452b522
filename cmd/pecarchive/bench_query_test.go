package main

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pecarchive/pecarchive/internal/testenv"
)

// bench query fills a small catalog, measures both sides and prints the service's and the
// floor's figures, the access leaves and, last, the ratio; it drops the schema it filled.
func TestBenchQuerySmall(t *testing.T) {
	pgEnv(t)
	var out strings.Builder
	err := runQueryBench(context.Background(), queryBenchConfig{
		N: 60, Concurrency: 4, Rounds: 2, FillBatch: 25, Duration: 300 * time.Millisecond, Warmup: 100 * time.Millisecond,
	}, &out)
	if err != nil {
		t.Fatalf("bench query: %v\n%s", err, out.String())
	}
	text := out.String()
	for _, re := range []string{
		`(?m)^fill: 60 notices, 180 messages and log leaves`,
		`(?m)^floor: .*: \d+/s, p50 \S+, p99 \S+$`,
		`(?m)^service: .*: \d+ proofs/s, p50 \S+, p99 \S+, 0 errors`,
		`(?m)^access leaves: [1-9]\d* recorded`,
		`(?m)^ratio: \d+\.\d\d\n$`,
	} {
		if !regexp.MustCompile(re).MatchString(text) {
			t.Errorf("output does not match %s:\n%s", re, text)
		}
	}
	m := regexp.MustCompile(`(?m)^postgres: schema (bench_query_\d+),`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no schema named in:\n%s", text)
	}
	left := schemasLike(t, m[1])[m[1]]
	if left {
		t.Errorf("schema %s left behind", m[1])
	}
}

// schemasLike returns the schemas of the test database whose names are LIKE pattern.
func schemasLike(t *testing.T, pattern string) map[string]bool {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), testenv.PGBaseDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(context.Background(), "SELECT nspname FROM pg_namespace WHERE nspname LIKE $1", pattern)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, n := range names {
		out[n] = true
	}
	return out
}

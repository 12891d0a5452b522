package main

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/pecarchive/pecarchive/internal/testenv"
)

// bench ingest runs end to end on a small workload against a throw-away Dovecot and the test
// PostgreSQL, and prints both halves, end to end, the floor, the peak RSS and, last, the ratio.
func TestBenchIngestSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Dovecot")
	}
	t.Setenv("PECARCHIVE_PG_DSN", testenv.PGBaseDSN())
	before := schemasLike(t, "bench_ingest_%")
	var out strings.Builder
	err := runIngestBench(context.Background(), ingestBenchConfig{N: 60, Mailboxes: 2, Folders: 2, Concurrency: 4, LargeMB: 2, Rounds: 2}, &out)
	if err != nil {
		t.Fatalf("bench ingest: %v\n%s", err, out.String())
	}
	text := out.String()
	for _, re := range []string{
		`(?m)^fetch only: \d+ messages/s`,
		`(?m)^store only: \d+ messages/s`,
		`(?m)^end to end: \d+ messages/s`,
		`(?m)^floor: \d+ messages/s \(the slower half: (fetch|store) only\)$`,
		`(?m)^peak RSS while a 2 MB message passes .*: \d+ MB \(target < 200 MB\)$`,
		`(?m)\nratio: \d+\.\d\d\n$`,
	} {
		if !regexp.MustCompile(re).MatchString(text) {
			t.Errorf("output does not match %s:\n%s", re, text)
		}
	}
	for s := range schemasLike(t, "bench_ingest_%") {
		if !before[s] {
			t.Errorf("schema %s left behind", s)
		}
	}
	t.Log(text)
}

package main

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/pecarchive/pecarchive/internal/testenv"
)

// bench archive runs end to end on a small workload against a real S3 server and PostgreSQL and
// prints both floors, the two ratios and, last, the ratio against the floor with catalog.
func TestBenchArchiveSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an S3 server")
	}
	srv := testenv.StartVersityGW(t)
	t.Setenv("PECARCHIVE_S3_ACCESS_KEY", srv.AccessKey)
	t.Setenv("PECARCHIVE_S3_SECRET_KEY", srv.SecretKey)
	var out strings.Builder
	err := runArchiveBench(context.Background(), archiveBenchConfig{
		N: 120, Unique: 12, Concurrency: 8, Rounds: 3, Proofs: 10, Endpoint: srv.Endpoint,
		Retention: 2 * 60 * 1e9, PGDSN: testenv.PGBaseDSN(),
	}, &out)
	if err != nil {
		t.Fatalf("bench archive: %v\n%s", err, out.String())
	}
	text := out.String()
	for _, re := range []string{
		`(?m)^floor: \d+ PUTs/s`,
		`(?m)^floor with catalog: \d+ receipts/s \(.* committed in \d+ transactions of [\d.]+ rows`,
		`(?m)^pipeline: 120 stored \(120 new, 120 valid\+trusted\)`,
		`(?m)^ratio against the floor of bare PUTs: \d+\.\d\d$`,
		`(?m)^ratio against the floor with catalog: (\d+\.\d\d) \(target ≥0.70\)\nratio: (\d+\.\d\d)\n$`,
	} {
		if !regexp.MustCompile(re).MatchString(text) {
			t.Errorf("output does not match %s:\n%s", re, text)
		}
	}
	t.Log(text)
}

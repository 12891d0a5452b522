package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pecarchive/pecarchive/services/archive/merklelog"
	"github.com/pecarchive/pecarchive/services/archive/merklelog/merklelogtest"
)

// TestAuditOutsideCheckpoint: "pecarchive audit --checkpoint FILE" checks the log against a
// checkpoint an auditor kept; a database restored from a dump taken before it fails.
func TestAuditOutsideCheckpoint(t *testing.T) {
	serviceEnv(t)
	ctx := context.Background()
	if err := storeSome(t, 2, "first"); err != nil {
		t.Fatal(err)
	}
	s, _ := loadSettings("")
	pool, err := s.openPool(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	dump, err := merklelogtest.TakeDump(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if err := storeSome(t, 2, "second"); err != nil {
		t.Fatal(err)
	}
	l, err := merklelog.New(ctx, merklelog.Config{Pool: pool})
	if err != nil {
		t.Fatal(err)
	}
	latest, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	kept := filepath.Join(t.TempDir(), "auditor-checkpoint.txt")
	if err := os.WriteFile(kept, latest, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runCLI(t, "audit", "--checkpoint", kept); code != exitOK || !strings.Contains(out, "1 held outside") {
		t.Fatalf("audit of a sound archive: exit %d\n%s%s", code, out, errOut)
	}
	if err := dump.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	code, out, _ := runCLI(t, "audit", "--checkpoint", kept)
	if code != exitNotValid || !strings.Contains(out, "PROBLEM: log-rollback size:4: outside checkpoint "+kept) ||
		!strings.Contains(out, "PROBLEM: log-rollback size:4: write-once checkpoint") {
		t.Errorf("audit of the restored archive: exit %d\n%s", code, out)
	}
	if code, _, errOut := runCLI(t, "audit", "--checkpoint", filepath.Join(t.TempDir(), "missing")); code != exitUsage || !strings.Contains(errOut, "--checkpoint") {
		t.Errorf("audit with a missing checkpoint file: exit %d %s", code, errOut)
	}
}

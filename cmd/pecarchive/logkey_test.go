package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pecarchive/pecarchive/internal/testenv"
	"github.com/pecarchive/pecarchive/services/archive"
	"github.com/pecarchive/pecarchive/services/archive/merklelog"
)

// storeSome opens the archive in-process from the environment's settings, stores n messages and
// closes it (which publishes a checkpoint). It returns the archive's error, if any.
func storeSome(t *testing.T, n int, tag string) error {
	t.Helper()
	s, err := loadSettings("")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a, cleanup, err := s.openArchive(ctx, &archive.Config{CheckpointInterval: -1, CheckpointEvery: -1})
	if err != nil {
		return err
	}
	defer cleanup()
	for i := range n {
		raw := fmt.Appendf(nil, "From: a@example.it\r\nSubject: %s %d\r\n\r\nbody\r\n", tag, i)
		if _, err := a.Store(ctx, raw, archive.Source{Path: fmt.Sprintf("%s-%d.eml", tag, i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Publish(ctx); err != nil {
		t.Fatal(err)
	}
	return nil
}

// TestLogKeyLost is attack 5: with DATA_DIR/log.key gone and a log that holds leaves and
// checkpoints (in the database, or on write-once storage only), every command that needs the key
// refuses and says why, instead of creating a new key; a key replaced by another one is refused
// by the archive; a rotation that lists the old public key signs on.
func TestLogKeyLost(t *testing.T) {
	pgEnv(t)
	dir := t.TempDir()
	t.Setenv("PECARCHIVE_DATA_DIR", dir)
	keyFile := filepath.Join(dir, "log.key")

	// An empty log: the embedded defaults create the key.
	if err := storeSome(t, 3, "first"); err != nil {
		t.Fatalf("first open: %v", err)
	}
	_, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatalf("no key created for the empty log: %v", err)
	}
	if code, out, errOut := runCLI(t, "audit"); code != exitOK {
		t.Fatalf("audit: exit %d\n%s%s", code, out, errOut)
	}

	// The key lost.
	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	refusedEverywhere := func(what, held string) {
		t.Helper()
		err := storeSome(t, 1, "lost")
		if !errors.Is(err, errNoLogKey) || !strings.Contains(err.Error(), held) {
			t.Errorf("%s: in-process archive: %v, want a refusal naming %q", what, err, held)
		}
		s, _ := loadSettings("")
		if err := serveArchive(context.Background(), s, "127.0.0.1:0", slog.New(slog.NewTextHandler(io.Discard, nil))); !errors.Is(err, errNoLogKey) {
			t.Errorf("%s: archive service: %v, want a refusal", what, err)
		}
		if code, _, errOut := runCLI(t, "audit"); code != exitUsage || !strings.Contains(errOut, "no log key") {
			t.Errorf("%s: audit: exit %d %s, want a refusal", what, code, errOut)
		}
		if code, _, _ := runCLI(t, "logkey", "public"); code != exitUsage {
			t.Errorf("%s: logkey public: exit %d, want a refusal", what, code)
		}
		if _, err := os.Stat(keyFile); !os.IsNotExist(err) {
			t.Fatalf("%s: a new key was created", what)
		}
	}
	refusedEverywhere("leaves and checkpoints", "3 leaves")

	// Even with the database wiped (a new schema), the write-once checkpoints refuse a new key.
	schema := os.Getenv("PECARCHIVE_PG_SCHEMA")
	s, _ := loadSettings("")
	pool, err := s.openPool(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	id := pgx.Identifier{schema}.Sanitize()
	if _, err := pool.Exec(context.Background(), "DROP SCHEMA "+id+" CASCADE; CREATE SCHEMA "+id); err != nil {
		t.Fatal(err)
	}
	pool.Close()
	refusedEverywhere("write-once checkpoints only", "signed checkpoints on write-once storage")
}

// TestLogKeySwapped is attack 5 (the key file replaced): a key whose public key does not verify
// the log's checkpoints is refused; listed as the old key of a rotation, the original lets the
// new key sign on, and the audit with both keys passes.
func TestLogKeySwapped(t *testing.T) {
	serviceEnv(t)
	if err := storeSome(t, 2, "first"); err != nil {
		t.Fatal(err)
	}
	_, oldPub, _ := runCLI(t, "logkey", "public")
	newKey := filepath.Join(t.TempDir(), "new.key")
	if code, _, errOut := runCLI(t, "logkey", "generate", "--origin", "test.pecarchive.local/log", "--out", newKey); code != exitOK {
		t.Fatalf("logkey generate: %s", errOut)
	}
	t.Setenv("PECARCHIVE_LOG_KEY_FILE", newKey)
	err := storeSome(t, 1, "swapped")
	if !errors.Is(err, archive.ErrSigningStopped) || !errors.Is(err, merklelog.ErrWrongKey) {
		t.Fatalf("archive with a swapped key: %v, want a refusal (ErrWrongKey)", err)
	}
	if code, out, _ := runCLI(t, "audit"); code != exitNotValid || !strings.Contains(out, "checkpoint-invalid") {
		t.Errorf("audit with the swapped key: exit %d\n%s", code, out)
	}

	// A rotation: the old public key listed, the new key signs on.
	oldKeys := filepath.Join(t.TempDir(), "old-keys")
	if err := os.WriteFile(oldKeys, []byte("# before the rotation\n"+oldPub), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PECARCHIVE_LOG_OLD_KEYS_FILE", oldKeys)
	if err := storeSome(t, 1, "rotated"); err != nil {
		t.Fatalf("archive after a rotation: %v", err)
	}
	if code, out, errOut := runCLI(t, "audit"); code != exitOK {
		t.Errorf("audit after a rotation: exit %d\n%s%s", code, out, errOut)
	}
	_, newPub, _ := runCLI(t, "logkey", "public")
	if code, out, _ := runCLI(t, "audit", "--log-key", strings.TrimSpace(oldPub)); code != exitNotValid || !strings.Contains(out, "checkpoint-invalid") {
		t.Errorf("audit with the old key only: exit %d\n%s", code, out)
	}
	if code, out, errOut := runCLI(t, "audit", "--log-key", strings.TrimSpace(oldPub), "--log-key", strings.TrimSpace(newPub)); code != exitOK {
		t.Errorf("audit with both keys given: exit %d\n%s%s", code, out, errOut)
	}
}

// TestAuditAsReadOnlyRole: an auditor audits with credentials that may only read (here the
// catalog's read-only role pecarchive_query) and the log's public key: the audit writes nothing,
// so it neither migrates nor creates anything.
func TestAuditAsReadOnlyRole(t *testing.T) {
	serviceEnv(t)
	if err := storeSome(t, 2, "read-only"); err != nil {
		t.Fatal(err)
	}
	_, pub, _ := runCLI(t, "logkey", "public")
	dsn := testenv.PGBaseDSN()
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	t.Setenv("PECARCHIVE_PG_DSN", dsn+sep+"role=pecarchive_query")
	t.Setenv("PECARCHIVE_LOG_KEY_FILE", "")
	code, out, errOut := runCLI(t, "audit", "--log-key", strings.TrimSpace(pub))
	if code != exitOK || !strings.Contains(out, "audit: OK") {
		t.Fatalf("audit as pecarchive_query: exit %d\n%s%s", code, out, errOut)
	}
}

// TestLogKeyGenerateNeverOverwrites: generating a key into a file that exists is refused and
// leaves the file as it was (a key overwritten by mistake would be a lost key).
func TestLogKeyGenerateNeverOverwrites(t *testing.T) {
	key := filepath.Join(t.TempDir(), "log.key")
	if code, _, errOut := runCLI(t, "logkey", "generate", "--origin", "test.pecarchive.local/log", "--out", key); code != exitOK {
		t.Fatalf("logkey generate: %s", errOut)
	}
	before, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "logkey", "generate", "--origin", "test.pecarchive.local/log", "--out", key)
	if code != exitUsage || out != "" || !strings.Contains(errOut, "exists") {
		t.Fatalf("logkey generate over an existing key: exit %d, %q %q; want a refusal", code, out, errOut)
	}
	if after, _ := os.ReadFile(key); string(after) != string(before) {
		t.Fatal("the existing key was changed")
	}
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
}

package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/lifecycle"

	"github.com/pecarchive/pecarchive/internal/testenv"
	"github.com/pecarchive/pecarchive/services/archive/blob/s3store"
)

// pgEnv points the services' PostgreSQL settings at a fresh schema of the test server, dropped
// on cleanup.
func pgEnv(t *testing.T) {
	t.Helper()
	schema, _ := testenv.PGSchema(t)
	t.Setenv("PECARCHIVE_PG_DSN", testenv.PGBaseDSN())
	t.Setenv("PECARCHIVE_PG_SCHEMA", schema)
}

// serviceEnv points the services' settings at a fresh schema of the test PostgreSQL and a
// temporary data folder with a new log key.
func serviceEnv(t *testing.T) {
	t.Helper()
	pgEnv(t)
	dir := t.TempDir()
	t.Setenv("PECARCHIVE_DATA_DIR", dir)
	key := filepath.Join(dir, "log.key")
	if code, _, errOut := runCLI(t, "logkey", "generate", "--origin", "test.pecarchive.local/log", "--out", key); code != exitOK {
		t.Fatalf("logkey generate: %s", errOut)
	}
	t.Setenv("PECARCHIVE_LOG_KEY_FILE", key)
}

func TestMigrateAuditAndServe(t *testing.T) {
	serviceEnv(t)
	code, out, errOut := runCLI(t, "migrate")
	if code != exitOK || !strings.Contains(out, "up to date") {
		t.Fatalf("migrate: exit %d %s %s", code, out, errOut)
	}
	if code, out, errOut := runCLI(t, "logkey", "public"); code != exitOK || !strings.HasPrefix(out, "test.pecarchive.local/log+") {
		t.Fatalf("logkey public: exit %d %q %s", code, out, errOut)
	}
	s, err := loadSettings("")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveArchive(ctx, s, "127.0.0.1:0", slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	time.Sleep(500 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("archive service: %v", err)
	}
	if err := serveArchive(context.Background(), s, "0.0.0.0:0", slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil ||
		!strings.Contains(err.Error(), "without TLS") {
		t.Errorf("serving plaintext beyond loopback: %v, want a refusal", err)
	}
	code, out, errOut = runCLI(t, "audit")
	if code != exitOK || !strings.Contains(out, "audit: OK") {
		t.Fatalf("audit: exit %d %s %s", code, out, errOut)
	}
	code, out, errOut = runCLI(t, "audit", "--deep")
	if code != exitOK || !strings.Contains(out, "audit: OK") || !strings.Contains(out, "parsed and verified again") {
		t.Fatalf("audit --deep: exit %d %s %s", code, out, errOut)
	}
}

// The archive refuses to start on a bucket that does not protect the evidence, saying what to
// change: here a lifecycle rule that expires objects (MinIO implements lifecycle rules).
func TestArchiveRefusesUnsafeBucket(t *testing.T) {
	serviceEnv(t)
	srv := testenv.StartMinIO(t)
	bucket := testenv.Bucket("unsafe")
	c, err := minio.New(srv.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(srv.AccessKey, srv.SecretKey, ""), Region: srv.Region})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.MakeBucket(ctx, bucket, minio.MakeBucketOptions{ObjectLocking: true, Region: srv.Region}); err != nil {
		t.Fatal(err)
	}
	lc := lifecycle.NewConfiguration()
	lc.Rules = []lifecycle.Rule{{ID: "cleanup", Status: "Enabled", Expiration: lifecycle.Expiration{Days: 365}}}
	if err := c.SetBucketLifecycle(ctx, bucket, lc); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"PECARCHIVE_S3_ENDPOINT": srv.Endpoint, "PECARCHIVE_S3_ACCESS_KEY": srv.AccessKey,
		"PECARCHIVE_S3_SECRET_KEY": srv.SecretKey, "PECARCHIVE_S3_BUCKET": bucket, "PECARCHIVE_S3_REGION": srv.Region} {
		t.Setenv(k, v)
	}
	s, err := loadSettings("")
	if err != nil {
		t.Fatal(err)
	}
	err = serveArchive(ctx, s, "127.0.0.1:0", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if !errors.Is(err, s3store.ErrBucketConfig) || !strings.Contains(err.Error(), "cleanup") {
		t.Fatalf("archive on a bucket whose objects expire: %v, want a refusal naming the rule", err)
	}
}

func TestSettingsFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "pecarchive.conf")
	os.WriteFile(f, []byte("# comment\nPECARCHIVE_S3_BUCKET=from-file\nPECARCHIVE_LISTEN=127.0.0.1:1\n"), 0o600)
	t.Setenv("PECARCHIVE_LISTEN", "127.0.0.1:2")
	s, err := loadSettings(f)
	if err != nil {
		t.Fatal(err)
	}
	if s.get("PECARCHIVE_S3_BUCKET", "") != "from-file" || s.get("PECARCHIVE_LISTEN", "") != "127.0.0.1:2" {
		t.Errorf("settings = %v (the environment must override the file)", s)
	}
	os.WriteFile(f, []byte("NOT_OURS=1\n"), 0o600)
	if _, err := loadSettings(f); err == nil {
		t.Error("a line that is not PECARCHIVE_NAME=value was accepted")
	}
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/mod/sumdb/note"

	"github.com/pecarchive/pecarchive/services/archive/blob"
	"github.com/pecarchive/pecarchive/services/archive/blob/fsstore"
	"github.com/pecarchive/pecarchive/services/archive/blob/s3store"
	"github.com/pecarchive/pecarchive/services/archive/merklelog"
	"github.com/pecarchive/pecarchive/tlog"
)

// settings are the services' configuration: KEY=VALUE lines of an optional config file (--config),
// overridden by environment variables of the same names. Secrets (database password in the DSN,
// S3 keys, the log key) come only from that file or the environment, never from flags.
//
//	PECARCHIVE_DATA_DIR             local state for embedded defaults (default ./pecarchive-data)
//	PECARCHIVE_PG_DSN               PostgreSQL (default postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable)
//	PECARCHIVE_PG_SCHEMA            schema holding the catalog and the log (default pecarchive)
//	PECARCHIVE_BLOB_DIR             filesystem blob store, used when no S3 endpoint is set (default DATA_DIR/blobs)
//	PECARCHIVE_S3_ENDPOINT          host:port (https:// for TLS) of an S3 server with Object Lock
//	PECARCHIVE_S3_ACCESS_KEY, PECARCHIVE_S3_SECRET_KEY, PECARCHIVE_S3_BUCKET (default pecarchive-evidence),
//	PECARCHIVE_S3_REGION, PECARCHIVE_S3_RETENTION (default 87600h), PECARCHIVE_S3_MODE (COMPLIANCE),
//	PECARCHIVE_S3_ALLOW_NO_OBJECT_LOCK (false), PECARCHIVE_S3_CREATE_BUCKET (true)
//	PECARCHIVE_LOG_KEY_FILE, PECARCHIVE_LOG_KEY   checkpoint signing key (default DATA_DIR/log.key,
//	                                created only for an empty log; see logkey.go)
//	PECARCHIVE_LOG_ORIGIN           origin for a created key (default pecarchive.local/log)
//	PECARCHIVE_LOG_OLD_KEYS_FILE    public keys the log signed with before its key was rotated, one per line
//	PECARCHIVE_LOG_PUBLIC_KEY_FILE, PECARCHIVE_LOG_PUBLIC_KEY   the log's public key evidence bundles carry (see export.go)
//	PECARCHIVE_CHECKPOINT_INTERVAL  (default 1m)
//	PECARCHIVE_LISTEN               gRPC address (default 127.0.0.1:7443)
//	PECARCHIVE_ARCHIVE_METRICS_ADDR the archive service's Prometheus /metrics address (none when unset; see archive_metrics.go)
//	PECARCHIVE_STORE_IDLE_TIMEOUT   cut a Store stream silent for that long (default 30s)
//	PECARCHIVE_TLS_DIR              tls.crt, tls.key and optional client-ca.crt (mTLS); unset: plaintext, loopback only
//	PECARCHIVE_CREDENTIALS_FILE     tokens and certificate identities with roles (see internal/auth)
//	PECARCHIVE_TRUST, PECARCHIVE_PROVIDER_INDEX   the archive's trust anchors and provider index (see verifier.go)
type settings map[string]string

func loadSettings(file string) (settings, error) {
	s := settings{}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for n := 1; sc.Scan(); n++ {
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			k, v, ok := strings.Cut(line, "=")
			if !ok || !strings.HasPrefix(strings.TrimSpace(k), "PECARCHIVE_") {
				return nil, fmt.Errorf("%s:%d: want PECARCHIVE_NAME=value", file, n)
			}
			s[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"`)
		}
	}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "PECARCHIVE_") {
			s[k] = v
		}
	}
	return s, nil
}

func (s settings) get(key, def string) string {
	if v, ok := s[key]; ok && v != "" {
		return v
	}
	return def
}

func (s settings) duration(key string, def time.Duration) (time.Duration, error) {
	v := s.get(key, "")
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %v", key, err)
	}
	return d, nil
}

func (s settings) bool(key string, def bool) (bool, error) {
	v := s.get(key, "")
	if v == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s: %v", key, err)
	}
	return b, nil
}

func (s settings) dataDir() string { return s.get("PECARCHIVE_DATA_DIR", "pecarchive-data") }

// openPool connects to PostgreSQL with the search_path set to the archive's schema, creating the
// schema when missing (only then: a role that may only read, an auditor's, opens an existing one).
func (s settings) openPool(ctx context.Context) (*pgxpool.Pool, error) {
	dsn := s.get("PECARCHIVE_PG_DSN", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")
	schema := s.get("PECARCHIVE_PG_SCHEMA", "pecarchive")
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("PECARCHIVE_PG_DSN: %v", err)
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	conn, err := pgx.ConnectConfig(ctx, cfg.ConnConfig.Copy())
	if err != nil {
		return nil, fmt.Errorf("postgres: %v", err)
	}
	var exists bool
	err = conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_catalog.pg_namespace WHERE nspname = $1)`, schema).Scan(&exists)
	if err == nil && !exists {
		_, err = conn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{schema}.Sanitize())
	}
	conn.Close(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: create schema %s: %v", schema, err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	return pgxpool.NewWithConfig(ctx, cfg)
}

// openBlobs opens the S3 store when an endpoint is configured, else the filesystem store.
func (s settings) openBlobs(ctx context.Context) (blob.Store, string, error) {
	if ep := s.get("PECARCHIVE_S3_ENDPOINT", ""); ep != "" {
		ret, err := s.duration("PECARCHIVE_S3_RETENTION", 10*365*24*time.Hour)
		if err != nil {
			return nil, "", err
		}
		weak, err := s.bool("PECARCHIVE_S3_ALLOW_NO_OBJECT_LOCK", false)
		if err != nil {
			return nil, "", err
		}
		create, err := s.bool("PECARCHIVE_S3_CREATE_BUCKET", true)
		if err != nil {
			return nil, "", err
		}
		bucket := s.get("PECARCHIVE_S3_BUCKET", "pecarchive-evidence")
		st, err := s3store.New(ctx, s3store.Config{
			Endpoint: ep, AccessKey: s.get("PECARCHIVE_S3_ACCESS_KEY", ""), SecretKey: s.get("PECARCHIVE_S3_SECRET_KEY", ""),
			Bucket: bucket, Region: s.get("PECARCHIVE_S3_REGION", ""), Retention: ret,
			Mode: s.get("PECARCHIVE_S3_MODE", ""), AllowNoObjectLock: weak, CreateBucket: create,
		})
		if err != nil {
			return nil, "", err
		}
		return st, fmt.Sprintf("s3 %s/%s (Object Lock, retention %s)", ep, bucket, ret), nil
	}
	dir := s.get("PECARCHIVE_BLOB_DIR", filepath.Join(s.dataDir(), "blobs"))
	st, err := fsstore.New(ctx, fsstore.Config{Root: dir})
	if err != nil {
		return nil, "", err
	}
	return st, "filesystem " + dir + " (write-once files; weaker than S3 Object Lock)", nil
}

// logKey returns the checkpoint signing key: PECARCHIVE_LOG_KEY_FILE, PECARCHIVE_LOG_KEY or
// DATA_DIR/log.key. It never creates one (openLog does, for an empty log only); with none it
// fails with an error wrapping errNoLogKey.
func (s settings) logKey() (string, error) {
	if f := s.get(envLogKeyFile, ""); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		return strings.TrimSpace(string(b)), nil
	}
	if k := s.get(envLogKey, ""); k != "" {
		return strings.TrimSpace(k), nil
	}
	f := filepath.Join(s.dataDir(), "log.key")
	b, err := os.ReadFile(f)
	if os.IsNotExist(err) {
		return "", fmt.Errorf("%w: set %s or %s, or create %s (pecarchive logkey generate)", errNoLogKey, envLogKeyFile, envLogKey, f)
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// openLog opens the transparency log with its signer, the public keys it signed with before a
// rotation, and blobs as its write-once checkpoint storage. With no key configured and createKey
// set it creates DATA_DIR/log.key, for an empty log only (createLogKey).
func (s settings) openLog(ctx context.Context, pool *pgxpool.Pool, blobs blob.Store, createKey bool) (*merklelog.Log, string, error) {
	skey, err := s.logKey()
	if errors.Is(err, errNoLogKey) && createKey {
		skey, err = s.createLogKey(ctx, pool, blobs)
	}
	if err != nil {
		return nil, "", err
	}
	old, err := s.oldLogKeys()
	if err != nil {
		return nil, "", err
	}
	return openLogWithKey(ctx, pool, blobs, skey, old)
}

// openLogWithKey opens the transparency log on pool, signing checkpoints with skey, keeping them
// on blobs' write-once checkpoint storage and checking them with its public key, which it
// returns, and with old (the keys of before a rotation).
func openLogWithKey(ctx context.Context, pool *pgxpool.Pool, blobs blob.Store, skey string, old []note.Verifier) (*merklelog.Log, string, error) {
	signer, err := tlog.NewSigner(skey)
	if err != nil {
		return nil, "", err
	}
	vkey, err := tlog.VerifierKey(skey)
	if err != nil {
		return nil, "", err
	}
	verifier, err := tlog.NewVerifier(vkey)
	if err != nil {
		return nil, "", err
	}
	cps, ok := blobs.(merklelog.CheckpointStore)
	if !ok {
		return nil, "", fmt.Errorf("the blob store %T keeps no checkpoints", blobs)
	}
	l, err := merklelog.New(ctx, merklelog.Config{Pool: pool, Signer: signer, Verifier: verifier, OldVerifiers: old, Checkpoints: cps})
	if err != nil {
		return nil, "", err
	}
	return l, vkey, nil
}

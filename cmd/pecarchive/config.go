package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

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
//	PECARCHIVE_LOG_KEY_FILE, PECARCHIVE_LOG_KEY   checkpoint signing key (default DATA_DIR/log.key, created)
//	PECARCHIVE_LOG_ORIGIN           origin for a created key (default pecarchive.local/log)
//	PECARCHIVE_CHECKPOINT_INTERVAL  (default 1m)
//	PECARCHIVE_LISTEN               gRPC address (default 127.0.0.1:7443)
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
// schema when missing.
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
	_, err = conn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{schema}.Sanitize())
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

// logKey returns the checkpoint signing key, creating DATA_DIR/log.key on first use when none is
// configured (embedded defaults).
func (s settings) logKey(create bool) (string, error) {
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
	if b, err := os.ReadFile(f); err == nil {
		return strings.TrimSpace(string(b)), nil
	} else if !os.IsNotExist(err) || !create {
		return "", fmt.Errorf("no log key: set %s or %s, or create %s (pecarchive logkey generate): %v", envLogKeyFile, envLogKey, f, err)
	}
	skey, _, err := tlog.GenerateKey(s.get("PECARCHIVE_LOG_ORIGIN", "pecarchive.local/log"))
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(s.dataDir(), 0o750); err != nil {
		return "", err
	}
	if err := writeSecretFile(f, []byte(skey+"\n")); err != nil {
		return "", err
	}
	return skey, nil
}

// openLog opens the transparency log with its signer (and verifier, for audits).
func (s settings) openLog(ctx context.Context, pool *pgxpool.Pool, createKey bool) (*merklelog.Log, string, error) {
	skey, err := s.logKey(createKey)
	if err != nil {
		return nil, "", err
	}
	return openLogWithKey(ctx, pool, skey)
}

// openLogWithKey opens the transparency log on pool, signing checkpoints with skey and checking
// them (in audits) with its public key, which it returns.
func openLogWithKey(ctx context.Context, pool *pgxpool.Pool, skey string) (*merklelog.Log, string, error) {
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
	l, err := merklelog.New(ctx, merklelog.Config{Pool: pool, Signer: signer, Verifier: verifier})
	if err != nil {
		return nil, "", err
	}
	return l, vkey, nil
}

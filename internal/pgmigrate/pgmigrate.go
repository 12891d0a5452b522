// Package pgmigrate runs embedded, versioned PostgreSQL schema migrations. It owns the migration
// file naming, the version table and the advisory lock that keeps replicas starting at the same
// time from racing.
//
// A migration set is an [fs.FS] (usually an embed.FS) holding files named
//
//	NNNN_name.up.sql   (or NNNN_name.sql)
//
// anywhere in the tree; NNNN is a positive decimal version, unique within the set. Files ending
// in .down.sql and all other files are ignored: migrations only go forward. Each migration runs
// in its own transaction together with the row recording it in the version table, so a migration
// is applied completely or not at all. The version table also stores a SHA-256 of each applied
// file; [Run] refuses to continue when an applied file has since been edited ([ErrModified]).
//
// [Run] takes a session-level advisory lock derived from the current schema and the version table
// name, so concurrent callers (replicas, parallel tests in one schema) apply each migration once
// and the others wait and then find nothing to do. Tables are created in the connection's current
// schema (search_path), which lets tests isolate themselves in a schema of their own.
//
// Why not a library: github.com/jackc/tern/v2/migrate runs every file through text/template with
// sprig (several extra modules) and wants numbers without gaps and its own file layout;
// github.com/golang-migrate/migrate/v4 works over database/sql, runs files outside a transaction
// by default and leaves a "dirty" version needing manual repair after a failure. This runner is
// small, pgx-native, transactional per migration and needs no new modules.
package pgmigrate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Errors returned by [Run]; use errors.Is.
var (
	// ErrBadName: the version table name is not a plain lower-case SQL identifier.
	ErrBadName = errors.New("pgmigrate: bad version table name")
	// ErrDuplicate: two files of the set carry the same version.
	ErrDuplicate = errors.New("pgmigrate: duplicate migration version")
	// ErrModified: a migration already applied differs from the file now in the set.
	ErrModified = errors.New("pgmigrate: applied migration was modified")
	// ErrEmpty: the set holds no migration files.
	ErrEmpty = errors.New("pgmigrate: no migrations found")
)

// MaxFileSize bounds one migration file.
const MaxFileSize = 4 << 20

// Migration is one file of a set.
type Migration struct {
	Version int64
	Name    string // file name without the version prefix and the .up.sql / .sql suffix
	Path    string // path inside the fs.FS
	SQL     string
	Sum     string // hex SHA-256 of the file
}

var (
	identRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)
	fileRE  = regexp.MustCompile(`^([0-9]{1,18})_([^/]+?)(\.up)?\.sql$`)
)

// Load reads and orders the migrations of fsys.
func Load(fsys fs.FS) ([]Migration, error) {
	var ms []Migration
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		base := path.Base(p)
		if strings.HasSuffix(base, ".down.sql") {
			return nil
		}
		m := fileRE.FindStringSubmatch(base)
		if m == nil {
			return nil
		}
		v, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil || v <= 0 {
			return fmt.Errorf("pgmigrate: %s: bad version", p)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Size() > MaxFileSize {
			return fmt.Errorf("pgmigrate: %s: file larger than %d bytes", p, MaxFileSize)
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ms = append(ms, Migration{Version: v, Name: m[2], Path: p, SQL: string(b), Sum: hex.EncodeToString(sum[:])})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pgmigrate: reading migrations: %w", err)
	}
	if len(ms) == 0 {
		return nil, ErrEmpty
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i := 1; i < len(ms); i++ {
		if ms[i].Version == ms[i-1].Version {
			return nil, fmt.Errorf("%w: %d (%s and %s)", ErrDuplicate, ms[i].Version, ms[i-1].Path, ms[i].Path)
		}
	}
	return ms, nil
}

// Run applies the migrations of fsys that the version table does not list yet, in version order,
// each in its own transaction, under an advisory lock. versionTable is created in the current
// schema when missing. Versions listed in the table but absent from fsys (a newer release already
// ran) are left alone, so an older replica can still start during a rolling upgrade.
func Run(ctx context.Context, pool *pgxpool.Pool, fsys fs.FS, versionTable string) error {
	if !identRE.MatchString(versionTable) {
		return fmt.Errorf("%w: %q", ErrBadName, versionTable)
	}
	ms, err := Load(fsys)
	if err != nil {
		return err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("pgmigrate: connect: %w", err)
	}
	defer conn.Release()
	return runConn(ctx, conn.Conn(), ms, versionTable)
}

func runConn(ctx context.Context, c *pgx.Conn, ms []Migration, table string) (err error) {
	const lockKey = `hashtextextended('pgmigrate:' || coalesce(current_schema(), '') || '.' || $1, 0)`
	if _, err := c.Exec(ctx, `SELECT pg_advisory_lock(`+lockKey+`)`, table); err != nil {
		return fmt.Errorf("pgmigrate: advisory lock: %w", err)
	}
	defer func() {
		// Unlock on a fresh context: the caller's may be done. If the connection broke, the
		// server released the session lock already.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), unlockTimeout)
		defer cancel()
		if _, uerr := c.Exec(uctx, `SELECT pg_advisory_unlock(`+lockKey+`)`, table); uerr != nil && err == nil {
			err = fmt.Errorf("pgmigrate: advisory unlock: %w", uerr)
		}
	}()

	if _, err := c.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+table+` (
		version    bigint PRIMARY KEY,
		name       text NOT NULL,
		sha256     text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return fmt.Errorf("pgmigrate: creating %s: %w", table, err)
	}
	applied := map[int64]string{}
	rows, err := c.Query(ctx, `SELECT version, sha256 FROM `+table)
	if err != nil {
		return fmt.Errorf("pgmigrate: reading %s: %w", table, err)
	}
	var v int64
	var sum string
	_, err = pgx.ForEachRow(rows, []any{&v, &sum}, func() error {
		applied[v] = sum
		return nil
	})
	if err != nil {
		return fmt.Errorf("pgmigrate: reading %s: %w", table, err)
	}
	for _, m := range ms {
		if s, ok := applied[m.Version]; ok {
			if s != m.Sum {
				return fmt.Errorf("%w: %s (version %d) in %s", ErrModified, m.Path, m.Version, table)
			}
			continue
		}
		if err := apply(ctx, c, m, table); err != nil {
			return err
		}
	}
	return nil
}

const unlockTimeout = 5 * time.Second

func apply(ctx context.Context, c *pgx.Conn, m Migration, table string) error {
	tx, err := c.Begin(ctx)
	if err != nil {
		return fmt.Errorf("pgmigrate: %s: begin: %w", m.Path, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	// No arguments: pgx sends the file with the simple protocol, which runs several statements.
	if _, err := tx.Exec(ctx, m.SQL); err != nil {
		return fmt.Errorf("pgmigrate: %s: %w", m.Path, err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO `+table+` (version, name, sha256) VALUES ($1, $2, $3)`,
		m.Version, m.Name, m.Sum); err != nil {
		return fmt.Errorf("pgmigrate: %s: recording version: %w", m.Path, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("pgmigrate: %s: commit: %w", m.Path, err)
	}
	return nil
}

// Applied returns the versions recorded in versionTable, in order; none when the table is missing.
func Applied(ctx context.Context, pool *pgxpool.Pool, versionTable string) ([]int64, error) {
	if !identRE.MatchString(versionTable) {
		return nil, fmt.Errorf("%w: %q", ErrBadName, versionTable)
	}
	var exists bool
	if err := pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, versionTable).Scan(&exists); err != nil {
		return nil, fmt.Errorf("pgmigrate: %w", err)
	}
	if !exists {
		return nil, nil
	}
	rows, err := pool.Query(ctx, `SELECT version FROM `+versionTable+` ORDER BY version`)
	if err != nil {
		return nil, fmt.Errorf("pgmigrate: %w", err)
	}
	vs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("pgmigrate: %w", err)
	}
	return vs, nil
}

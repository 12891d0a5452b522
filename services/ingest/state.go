package ingest

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pecarchive/pecarchive/internal/pgmigrate"
)

// Migrations is ingest's migration set (migrations/NNNN_name.up.sql): cursors, leases, dead
// letters and UIDVALIDITY events, run by internal/pgmigrate with the version table
// [VersionTable] in the same database (and schema) as the catalog.
//
//go:embed migrations/*.sql
var Migrations embed.FS

// VersionTable is the pgmigrate version table of ingest.
const VersionTable = "ingest_schema_version"

// Errors of the state in PostgreSQL; use errors.Is.
var (
	// ErrLeaseLost: this replica no longer holds the mailbox's lease (it expired, or another
	// replica took it over); it must stop pulling the mailbox at once.
	ErrLeaseLost = errors.New("ingest: lease lost")
	// ErrStateUnavailable: PostgreSQL is unreachable or failed.
	ErrStateUnavailable = errors.New("ingest: state database unavailable")
)

// Migrate applies ingest's migrations in pool's current schema.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	if err := pgmigrate.Run(ctx, pool, Migrations, VersionTable); err != nil {
		return fmt.Errorf("%w: migrate: %w", ErrStateUnavailable, err)
	}
	return nil
}

// state is ingest's PostgreSQL state.
type state struct{ pool *pgxpool.Pool }

// lease is a held mailbox lease; writes about the mailbox are fenced by it.
type lease struct {
	mailbox, holder string
	token           int64
}

func dbErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrLeaseLost) || errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("%w: %s: %w", ErrStateUnavailable, op, err)
}

// acquire takes the mailbox's lease for holder for ttl when it is free, expired or already
// holder's. ok is false when another replica holds it; then heldBy names it.
func (s *state) acquire(ctx context.Context, mailbox, holder string, ttl time.Duration) (l lease, ok bool, heldBy string, err error) {
	var token int64
	err = s.pool.QueryRow(ctx, `
INSERT INTO ingest_leases AS l (mailbox, holder, token, acquired_at, expires_at)
VALUES ($1, $2, 1, now(), now() + $3::interval)
ON CONFLICT (mailbox) DO UPDATE
   SET holder = excluded.holder, token = l.token + 1, acquired_at = now(), expires_at = excluded.expires_at
 WHERE l.expires_at < now() OR l.holder = excluded.holder
RETURNING token`, mailbox, holder, ttl).Scan(&token)
	if errors.Is(err, pgx.ErrNoRows) {
		err = s.pool.QueryRow(ctx, `SELECT holder FROM ingest_leases WHERE mailbox = $1`, mailbox).Scan(&heldBy)
		if errors.Is(err, pgx.ErrNoRows) {
			return lease{}, false, "", nil // released meanwhile; the caller tries again
		}
		return lease{}, false, heldBy, dbErr("lease", err)
	}
	if err != nil {
		return lease{}, false, "", dbErr("lease", err)
	}
	return lease{mailbox: mailbox, holder: holder, token: token}, true, "", nil
}

// renew extends a held lease by ttl from now; ErrLeaseLost when it is no longer held.
func (s *state) renew(ctx context.Context, l lease, ttl time.Duration) error {
	tag, err := s.pool.Exec(ctx, `
UPDATE ingest_leases SET expires_at = now() + $4::interval
 WHERE mailbox = $1 AND holder = $2 AND token = $3 AND expires_at > now()`, l.mailbox, l.holder, l.token, ttl)
	if err != nil {
		return dbErr("renew lease", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: mailbox %s", ErrLeaseLost, l.mailbox)
	}
	return nil
}

// release gives a held lease up (it expires at once).
func (s *state) release(ctx context.Context, l lease) error {
	_, err := s.pool.Exec(ctx, `
UPDATE ingest_leases SET expires_at = now() - interval '1 microsecond'
 WHERE mailbox = $1 AND holder = $2 AND token = $3`, l.mailbox, l.holder, l.token)
	return dbErr("release lease", err)
}

// fence is the condition every write about a mailbox carries: the lease is still ours.
const fence = `EXISTS (SELECT 1 FROM ingest_leases
 WHERE mailbox = $1 AND holder = $2 AND token = $3 AND expires_at > now())`

// cursor is a folder's cursor.
type cursor struct {
	UIDValidity, UID uint32
}

// cursor returns the folder's cursor; found is false when it has none yet.
func (s *state) cursor(ctx context.Context, mailbox, folder string) (c cursor, found bool, err error) {
	var uv, uid int64
	err = s.pool.QueryRow(ctx, `SELECT uid_validity, uid FROM ingest_cursors WHERE mailbox = $1 AND folder = $2`,
		mailbox, folder).Scan(&uv, &uid)
	if errors.Is(err, pgx.ErrNoRows) {
		return cursor{}, false, nil
	}
	if err != nil {
		return cursor{}, false, dbErr("read cursor", err)
	}
	return cursor{uint32(uv), uint32(uid)}, true, nil
}

// start creates the folder's cursor at (uv, 0) when it has none.
func (s *state) start(ctx context.Context, l lease, folder string, uv uint32) error {
	tag, err := s.pool.Exec(ctx, `
INSERT INTO ingest_cursors (mailbox, folder, uid_validity, uid)
SELECT $1, $4, $5, 0 WHERE `+fence+`
ON CONFLICT (mailbox, folder) DO NOTHING`, l.mailbox, l.holder, l.token, folder, int64(uv))
	if err != nil {
		return dbErr("create cursor", err)
	}
	if tag.RowsAffected() == 0 {
		return s.checkFence(ctx, l)
	}
	return nil
}

// advance moves the folder's cursor forward to uid within epoch uv (never backwards).
func (s *state) advance(ctx context.Context, l lease, folder string, uv, uid uint32) error {
	tag, err := s.pool.Exec(ctx, `
UPDATE ingest_cursors SET uid = $6, updated_at = now()
 WHERE mailbox = $1 AND folder = $4 AND uid_validity = $5 AND uid < $6 AND `+fence,
		l.mailbox, l.holder, l.token, folder, int64(uv), int64(uid))
	if err != nil {
		return dbErr("advance cursor", err)
	}
	if tag.RowsAffected() == 0 {
		return s.checkFence(ctx, l)
	}
	return nil
}

// newEpoch records a UIDVALIDITY change of the folder from old to uv and restarts its cursor at
// (uv, 0), in one transaction.
func (s *state) newEpoch(ctx context.Context, l lease, folder string, old cursor, uv uint32) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
UPDATE ingest_cursors SET uid_validity = $5, uid = 0, updated_at = now()
 WHERE mailbox = $1 AND folder = $4 AND uid_validity = $6 AND `+fence,
			l.mailbox, l.holder, l.token, folder, int64(uv), int64(old.UIDValidity))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("%w: mailbox %s (or its cursor of %s moved)", ErrLeaseLost, l.mailbox, folder)
		}
		_, err = tx.Exec(ctx, `
INSERT INTO ingest_uidvalidity_events (mailbox, folder, old_uid_validity, old_uid, new_uid_validity)
VALUES ($1, $2, $3, $4, $5)`, l.mailbox, folder, int64(old.UIDValidity), int64(old.UID), int64(uv))
		return err
	})
	return dbErr("new UIDVALIDITY epoch", err)
}

// DeadLetter is a message the archive refused for good.
type DeadLetter struct {
	Mailbox, Folder  string
	UIDValidity, UID uint32
	InternalDate     time.Time
	SHA256           [32]byte
	Size             int64
	Reason           string
	At               time.Time
}

// deadLetter records a refused message (idempotent per folder message and SHA-256).
func (s *state) deadLetter(ctx context.Context, l lease, d DeadLetter) error {
	var idate *time.Time
	if !d.InternalDate.IsZero() {
		idate = &d.InternalDate
	}
	reason := d.Reason
	if len(reason) > 4000 {
		reason = reason[:4000]
	}
	tag, err := s.pool.Exec(ctx, `
INSERT INTO ingest_dead_letters (mailbox, folder, uid_validity, uid, internal_date, sha256, size, reason)
SELECT $1, $4, $5, $6, $7, $8, $9, $10 WHERE `+fence+`
ON CONFLICT (mailbox, folder, uid_validity, uid, sha256) DO NOTHING`,
		l.mailbox, l.holder, l.token, d.Folder, int64(d.UIDValidity), int64(d.UID), idate, d.SHA256[:], d.Size, reason)
	if err != nil {
		return dbErr("record dead letter", err)
	}
	if tag.RowsAffected() == 0 {
		return s.checkFence(ctx, l)
	}
	return nil
}

// checkFence returns ErrLeaseLost when l is no longer held, else nil (the write found nothing
// to do).
func (s *state) checkFence(ctx context.Context, l lease) error {
	var held bool
	err := s.pool.QueryRow(ctx, `SELECT `+fence, l.mailbox, l.holder, l.token).Scan(&held)
	if err != nil {
		return dbErr("check lease", err)
	}
	if !held {
		return fmt.Errorf("%w: mailbox %s", ErrLeaseLost, l.mailbox)
	}
	return nil
}

// DeadLetters returns the dead letters recorded for mailbox ("" for every mailbox) since the
// given time, oldest first, at most limit (0: 1000).
func DeadLetters(ctx context.Context, pool *pgxpool.Pool, mailbox string, since time.Time, limit int) ([]DeadLetter, error) {
	if limit <= 0 {
		limit = 1000
	}
	rows, err := pool.Query(ctx, `
SELECT mailbox, folder, uid_validity, uid, internal_date, sha256, size, reason, created_at
  FROM ingest_dead_letters
 WHERE ($1 = '' OR mailbox = $1) AND created_at >= $2
 ORDER BY id LIMIT $3`, mailbox, since, limit)
	if err != nil {
		return nil, dbErr("read dead letters", err)
	}
	var out []DeadLetter
	for rows.Next() {
		var d DeadLetter
		var uv, uid int64
		var idate *time.Time
		var sum []byte
		if err := rows.Scan(&d.Mailbox, &d.Folder, &uv, &uid, &idate, &sum, &d.Size, &d.Reason, &d.At); err != nil {
			rows.Close()
			return nil, dbErr("read dead letters", err)
		}
		d.UIDValidity, d.UID = uint32(uv), uint32(uid)
		if idate != nil {
			d.InternalDate = *idate
		}
		copy(d.SHA256[:], sum)
		out = append(out, d)
	}
	return out, dbErr("read dead letters", rows.Err())
}

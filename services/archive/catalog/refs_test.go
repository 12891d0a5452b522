package catalog_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pecarchive/pecarchive/pec"
)

// TestReferences checks the statement-level reference checks that stand in for foreign keys
// (migration 0003): a row referring to a message, chain or anchor set that does not exist is
// refused with foreign_key_violation, and referenced rows cannot be deleted, truncated or
// re-keyed.
func TestReferences(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	stored := e.store(original("ref@example.it", "a@pec.example.it"))[0]
	ghost := sum("ghost")
	wantCode := func(t *testing.T, what, code string, sql string, args ...any) {
		t.Helper()
		_, err := e.pool.Exec(ctx, sql, args...)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != code {
			t.Fatalf("%s: got %v, want SQLSTATE %s", what, err, code)
		}
		t.Logf("%s: %s", what, pe.Message)
	}
	const fk, restrict = "23503", "23001"
	wantCode(t, "recipient of a missing message", fk,
		`INSERT INTO message_recipients (recipient, received_at, sha256) VALUES ('x@example.it', now(), $1)`, ghost[:])
	wantCode(t, "source of a missing message", fk,
		`INSERT INTO message_sources (sha256, path, first_seen) VALUES ($1, 'f.eml', now())`, ghost[:])
	wantCode(t, "link to a missing message", fk,
		`INSERT INTO message_links (referrer_sha256, original_sha256, via) VALUES ($1, $2, 'msgid')`, stored.SHA256[:], ghost[:])
	wantCode(t, "event of a missing receipt", fk,
		`INSERT INTO delivery_events (msgid, recipient, receipt_sha256, kind, ok) VALUES ('m', 'r', $1, $2, true)`, ghost[:], string(pec.KindAccettazione))
	wantCode(t, "delivery with a missing receipt", fk,
		`INSERT INTO deliveries (msgid, recipient, state, original_sha256, delivery_sha256, updated_at)
		 VALUES ('m', 'r', 'delivered', $1, $2, now())`, stored.SHA256[:], ghost[:])
	wantCode(t, "message with a missing chain", fk,
		`UPDATE messages SET chain_sha256 = $1 WHERE sha256 = $2`, ghost[:], stored.SHA256[:])

	// Good references pass, in bulk and through an upsert's update path.
	for _, sql := range []string{
		`INSERT INTO message_recipients (recipient, received_at, sha256) VALUES ('y@example.it', now(), $1)`,
		`INSERT INTO deliveries (msgid, recipient, state, original_sha256, updated_at) VALUES ('m', 'r', 'pending', $1, now())
		 ON CONFLICT (msgid, recipient) DO UPDATE SET original_sha256 = EXCLUDED.original_sha256`,
		`INSERT INTO deliveries (msgid, recipient, state, original_sha256, updated_at) VALUES ('m', 'r', 'pending', $1, now())
		 ON CONFLICT (msgid, recipient) DO UPDATE SET original_sha256 = EXCLUDED.original_sha256`,
	} {
		if _, err := e.pool.Exec(ctx, sql, stored.SHA256[:]); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	wantCode(t, "upsert update to a missing message", fk,
		`INSERT INTO deliveries (msgid, recipient, state, original_sha256, updated_at) VALUES ('m', 'r', 'pending', $1, now())
		 ON CONFLICT (msgid, recipient) DO UPDATE SET original_sha256 = EXCLUDED.original_sha256`, ghost[:])

	wantCode(t, "delete a message", restrict, `DELETE FROM messages WHERE sha256 = $1`, stored.SHA256[:])
	wantCode(t, "re-key a message", restrict, `UPDATE messages SET sha256 = $1 WHERE sha256 = $2`, ghost[:], stored.SHA256[:])
	wantCode(t, "truncate messages", restrict, `TRUNCATE messages CASCADE`)
	if _, err := e.pool.Exec(ctx, `INSERT INTO cert_chains (sha256, certs) VALUES ($1, '{}')`, ghost[:]); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "delete a chain", restrict, `DELETE FROM cert_chains WHERE sha256 = $1`, ghost[:])
	wantCode(t, "truncate anchor sets", restrict, `TRUNCATE trust_anchor_sets CASCADE`)
}

// TestInsertOnlyTriggers: the tables whose rows are only ever inserted (migration 0006) refuse
// UPDATE, DELETE and TRUNCATE with restrict_violation, naming the table; the audit compares them
// all anyway, against an insider who turns the triggers off.
func TestInsertOnlyTriggers(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	rcpts := []string{"a@pec.example.it"}
	e.store(original("sealed@example.it", rcpts...),
		receipt(pec.KindAccettazione, "sealed@example.it", "opec.sealed@pec.example.it", rcpts, "", trusted, ""))
	for _, table := range []string{"message_sources", "message_recipients", "message_links", "delivery_events"} {
		for _, sql := range []string{
			"UPDATE " + table + " SET sha256 = sha256",
			"DELETE FROM " + table,
			"TRUNCATE " + table,
		} {
			if table == "message_links" || table == "delivery_events" {
				sql = strings.Replace(sql, "sha256 = sha256", "via = via", 1)
				if table == "delivery_events" {
					sql = strings.Replace(sql, "via = via", "ok = ok", 1)
				}
			}
			_, err := e.pool.Exec(ctx, sql)
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "23001" || !strings.Contains(pe.Message, table) {
				t.Errorf("%s: %v, want a restrict_violation naming %s", sql, err, table)
			}
		}
	}
}

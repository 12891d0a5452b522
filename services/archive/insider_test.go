package archive_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pecarchive/pecarchive/services/archive"
	"github.com/pecarchive/pecarchive/services/archive/audit"
	"github.com/pecarchive/pecarchive/services/archive/merklelog"
	"github.com/pecarchive/pecarchive/services/archive/merklelog/merklelogtest"
	"github.com/pecarchive/pecarchive/tlog"
)

// forgeRow is the insider's forgery of attack 1: the catalog row of rec gets another subject,
// its leaf is rewritten to commit to the altered row, and the nodes and the state are recomputed,
// with the triggers disabled as the tables' owner can. Then the row matches its leaf and the
// stored tree is consistent in itself: only the signed checkpoints can betray it.
func forgeRow(t *testing.T, f *fixture, rec archive.Record) {
	t.Helper()
	ctx := context.Background()
	r, err := f.rd.Get(ctx, rec.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	m := r.Message
	m.Subject = "Forged: " + m.Subject
	leaf := tlog.Leaf{Kind: tlog.KindMessage, SHA256: m.SHA256, Time: m.ReceivedAt, Extra: m.LeafExtra()}.Marshal()
	err = merklelogtest.AsOwner(ctx, f.pool, []string{"messages"}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE messages SET subject = $1 WHERE sha256 = $2`, m.Subject, m.SHA256[:]); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE merklelog_leaf SET data = $1 WHERE idx = $2`, leaf, int64(m.LeafIndex)); err != nil {
			return err
		}
		return merklelogtest.Rebuild(ctx, tx)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestForgedTree is attack 1: an insider rewrites a catalog row and its leaf, recomputes the
// nodes and the state, and keeps or deletes the checkpoints. The running archive refuses to sign
// the forged tree and stops signing (counted, reported once through OnError); restarted, it
// refuses to start; the audit with the log's real key fails, naming the forks.
func TestForgedTree(t *testing.T) {
	for _, deleted := range []bool{false, true} {
		name := "checkpoints kept"
		if deleted {
			name = "checkpoints deleted"
		}
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			var mu sync.Mutex
			var reported []error
			f := newFixture(t, func(c *archive.Config) {
				c.OnError = func(err error) {
					mu.Lock()
					defer mu.Unlock()
					reported = append(reported, err)
				}
			})
			conv := newConversation(t, f, "Forgery")
			victim := f.store(conv.acc.Bytes, archive.Source{Path: "acc"})
			f.store(conv.env.Bytes, archive.Source{Path: "env"})
			if _, err := f.a.Publish(ctx); err != nil {
				t.Fatal(err)
			}
			f.store(conv.delA.Bytes, archive.Source{Path: "del"})
			if _, err := f.a.Publish(ctx); err != nil {
				t.Fatal(err)
			}
			signed := f.count("merklelog_checkpoint")

			forgeRow(t, f, victim)
			if deleted {
				asOwner(t, f, `DELETE FROM merklelog_checkpoint`)
			}
			f.store(conv.nonDel.Bytes, archive.Source{Path: "nondel"})
			refused := func(err error, what string) {
				t.Helper()
				if !errors.Is(err, archive.ErrSigningStopped) || !errors.Is(err, archive.ErrIntegrity) || !errors.Is(err, merklelog.ErrForked) || !errors.Is(err, tlog.ErrFork) {
					t.Fatalf("%s: %v, want a refusal to sign a fork", what, err)
				}
			}
			_, err := f.a.Publish(ctx)
			refused(err, "Publish over the forged tree")
			// Signing stays stopped, without checking or reporting again; storing goes on.
			f.store(conv.warn.Bytes, archive.Source{Path: "warn"})
			_, err = f.a.Publish(ctx)
			refused(err, "Publish after the refusal")
			if st := f.a.Stats(); st.Refused != 1 {
				t.Errorf("Stats.Refused = %d, want 1", st.Refused)
			}
			mu.Lock()
			if len(reported) != 1 || !errors.Is(reported[0], merklelog.ErrForked) {
				t.Errorf("OnError got %v, want the refusal once", reported)
			}
			mu.Unlock()
			if deleted {
				signed = 0
			}
			if n := f.count("merklelog_checkpoint"); n != signed {
				t.Errorf("%d checkpoints in the database, want the %d signed before the forgery", n, signed)
			}

			// Restarted, the archive refuses to start.
			again, err := archive.New(ctx, f.cfg)
			if err == nil {
				again.Close(ctx)
			}
			refused(err, "New over the forged tree")

			// The audit with the log's real key fails: the forged row matches its leaf, the
			// stored tree is consistent, and the write-once checkpoints show the fork.
			rep, err := audit.Run(ctx, audit.Config{Pool: f.pool, Blobs: f.fs, Log: f.log, LogKey: f.vkey})
			if err != nil {
				t.Fatal(err)
			}
			for _, fd := range rep.Findings {
				t.Log(fd)
			}
			if rep.OK() || rep.Count(audit.CheckpointFork) != 2 || rep.Count(audit.RowAltered) != 0 {
				t.Errorf("audit: OK %v, %d forks named (want 2), %d rows altered (want 0: the forgery is consistent)",
					rep.OK(), rep.Count(audit.CheckpointFork), rep.Count(audit.RowAltered))
			}
		})
	}
}

// asOwner runs one statement with the triggers of the log's tables disabled.
func asOwner(t *testing.T, f *fixture, sql string, args ...any) {
	t.Helper()
	if err := merklelogtest.AsOwner(context.Background(), f.pool, nil, func(tx pgx.Tx) error {
		_, err := tx.Exec(context.Background(), sql, args...)
		return err
	}); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

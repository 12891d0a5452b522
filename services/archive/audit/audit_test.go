package audit_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pecarchive/pecarchive/pec/pectest"
	"github.com/pecarchive/pecarchive/services/archive"
	"github.com/pecarchive/pecarchive/services/archive/audit"
	"github.com/pecarchive/pecarchive/services/archive/blob/fsstore"
	"github.com/pecarchive/pecarchive/services/archive/catalog"
	"github.com/pecarchive/pecarchive/tlog"
)

const origin = "pecarchive.test/audit"

// finds reports whether rep names kind for sum (any sum when zero) or leaf (any when < 0).
func finds(rep audit.Report, kind string, sum [32]byte, leaf int64) bool {
	for _, f := range rep.Findings {
		if f.Kind == kind && (sum == [32]byte{} || f.SHA256 == sum) && (leaf < 0 || f.LeafIndex == leaf) {
			return true
		}
	}
	return false
}

func TestAudit(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil, nil, nil)
	pool, fs, log, prov, peer, a, vkey := f.pool, f.blobs.(*fsstore.Store), f.log, f.prov, f.peer, f.a, f.vkey

	var recs []archive.Record
	for i := range 3 {
		o, err := prov.Original(&pectest.Original{Subject: fmt.Sprintf("Audit %d", i), MessageID: fmt.Sprintf("audit-%d@pec.ordine.example.it", i)})
		if err != nil {
			t.Fatal(err)
		}
		acc, _ := prov.Acceptance(pectest.Params{Original: o})
		del, _ := peer.Delivery(pectest.Params{Original: o})
		for _, g := range []*pectest.Generated{acc, del} {
			rec, err := a.Store(ctx, g.Bytes, archive.Source{Path: g.Name})
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, rec)
		}
	}
	if _, err := a.Publish(ctx); err != nil {
		t.Fatal(err)
	}
	cfg := audit.Config{Pool: pool, Blobs: fs, Log: log, LogKey: vkey}

	rep, err := audit.Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || len(rep.Findings) != 0 {
		t.Fatalf("clean archive: %v", rep.Findings)
	}
	// 3 acceptances + 3 delivery receipts + their 3 postacert.eml, which have no blob of their
	// own: the audit re-extracts them from the receipts' blobs.
	for _, r := range recs {
		if r.Postacert == nil {
			continue
		}
		if r.Postacert.ContainedIn != r.SHA256 {
			t.Fatalf("postacert %x: contained in %x, want its receipt %x", r.Postacert.SHA256[:4], r.Postacert.ContainedIn[:4], r.SHA256[:4])
		}
		if _, err := fs.Stat(ctx, r.Postacert.SHA256); err == nil {
			t.Fatalf("postacert %x has a blob of its own", r.Postacert.SHA256[:4])
		}
	}
	if rep.Rows != 9 || rep.MessageLeaves != 9 || rep.Blobs != 6 || rep.LogSize != 9 || rep.Checkpoints != 1 || rep.DeliveryMsgIDs == 0 {
		t.Fatalf("counts: %+v", rep)
	}

	// 1. A catalog row altered: a verdict turned trusted, a subject changed.
	acc0, del1 := recs[0], recs[3]
	if _, err := pool.Exec(ctx, `UPDATE messages SET subject = 'forged' WHERE sha256 = $1`, acc0.SHA256[:]); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE messages SET received_at = received_at - interval '1 day' WHERE sha256 = $1`, del1.SHA256[:]); err != nil {
		t.Fatal(err)
	}
	// 2. A blob rewritten on disk (the store made it read-only: chmod, rewrite).
	acc1 := recs[2]
	path := fs.Path(acc1.SHA256)
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	orig, _ := os.ReadFile(path)
	if err := os.WriteFile(path, []byte(strings.Replace(string(orig), "ACCETTAZIONE", "ACCETTAZIONX", 1)), 0o444); err != nil {
		t.Fatal(err)
	}
	// 3. A blob deleted.
	del0 := recs[1]
	if err := os.Remove(fs.Path(del0.SHA256)); err != nil {
		t.Fatal(err)
	}
	// 3b. The receipt carrying a postacert.eml rewritten inside the postacert part: the receipt
	// and its postacert are both reported altered.
	del2 := recs[5]
	path = fs.Path(del2.SHA256)
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	orig, _ = os.ReadFile(path)
	tampered := strings.Replace(string(orig), "Audit 2", "Audit X", -1)
	if tampered == string(orig) {
		t.Fatal("receipt 2 does not carry its subject")
	}
	if err := os.WriteFile(path, []byte(tampered), 0o444); err != nil {
		t.Fatal(err)
	}
	// 3c. A postacert row pointed at a message that does not carry it (the acceptance acc1's
	// neighbour: a receipt without postacert.eml).
	if _, err := pool.Exec(ctx, `UPDATE messages SET contained_in = $1 WHERE sha256 = $2`, recs[0].SHA256[:], del1.Postacert.SHA256[:]); err != nil {
		t.Fatal(err)
	}
	// 4. A leaf rewritten, stored hash updated too, so only the tree and checkpoint betray it.
	acc2 := recs[4]
	forged := tlog.Leaf{Kind: tlog.KindMessage, SHA256: sha256.Sum256([]byte("forged")), Time: time.Unix(1700000000, 0), Extra: "x"}.Marshal()
	fh := tlog.LeafHash(forged)
	asOwner(t, pool, `UPDATE merklelog_leaf SET data = $1, hash = $2 WHERE idx = $3`, forged, fh[:], int64(acc2.LeafIndex))
	// 5. A message leaf with no catalog row, 6. a catalog row with no leaf.
	ghost := sha256.Sum256([]byte("ghost"))
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var lock, writes pgx.Batch
	ap := log.QueueLock(&lock)
	if err := tx.SendBatch(ctx, &lock).Close(); err != nil {
		t.Fatal(err)
	}
	first, err := ap.QueueAppend(&writes, [][]byte{tlog.Leaf{Kind: tlog.KindMessage, SHA256: ghost, Time: time.Now()}.Marshal()})
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.SendBatch(ctx, &writes).Close(); err != nil {
		t.Fatal(err)
	}
	phantom := catalog.Message{SHA256: sha256.Sum256([]byte("phantom")), Size: 10, Kind: "not-pec", LeafIndex: 1000, ReceivedAt: time.Now()}
	if err := catalog.Write(ctx, tx, &catalog.Batch{Messages: []catalog.Message{phantom}}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// 7. An orphan blob (warning).
	orphan := []byte("orphan blob")
	if _, err := fs.Put(ctx, sha256.Sum256(orphan), orphan); err != nil {
		t.Fatal(err)
	}
	// 7b. A delivery state forged: a delivered recipient said not delivered, or the reverse.
	var forgedMsgID, forgedRcpt string
	if err := pool.QueryRow(ctx, `SELECT msgid, recipient FROM deliveries ORDER BY msgid, recipient LIMIT 1`).Scan(&forgedMsgID, &forgedRcpt); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE deliveries SET state = CASE state WHEN 'delivered' THEN 'not-delivered' ELSE 'delivered' END
		WHERE msgid = $1 AND recipient = $2`, forgedMsgID, forgedRcpt); err != nil {
		t.Fatal(err)
	}
	// 8. A checkpoint re-signed by another key.
	other, _, _ := tlog.GenerateKey(origin)
	otherSigner, _ := tlog.NewSigner(other)
	cp, err := log.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := tlog.ParseCheckpoint(cp)
	if err != nil {
		t.Fatal(err)
	}
	resigned, err := tlog.SignCheckpoint(otherSigner, parsed)
	if err != nil {
		t.Fatal(err)
	}
	asOwner(t, pool, `UPDATE merklelog_checkpoint SET signed = $1 WHERE size = $2`, resigned, int64(parsed.Size))

	rep, err = audit.Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range rep.Findings {
		t.Log(f)
	}
	if rep.OK() {
		t.Error("tampered archive audits OK")
	}
	checks := []struct {
		what string
		kind string
		sum  [32]byte
		leaf int64
	}{
		{"altered row (subject)", audit.RowAltered, acc0.SHA256, int64(acc0.LeafIndex)},
		{"altered row (received_at)", audit.RowAltered, del1.SHA256, int64(del1.LeafIndex)},
		{"rewritten blob", audit.BlobAltered, acc1.SHA256, -1},
		{"deleted blob", audit.BlobMissing, del0.SHA256, -1},
		{"postacert of a deleted blob", audit.BlobMissing, del0.Postacert.SHA256, -1},
		{"receipt rewritten", audit.BlobAltered, del2.SHA256, -1},
		{"postacert of a rewritten receipt", audit.BlobAltered, del2.Postacert.SHA256, -1},
		{"postacert said to be in another message", audit.BlobAltered, del1.Postacert.SHA256, -1},
		{"rewritten leaf: row and leaf disagree", audit.RowLeafMismatch, acc2.SHA256, int64(acc2.LeafIndex)},
		{"rewritten leaf: tree recomputation", audit.LogInconsistent, [32]byte{}, -1},
		{"rewritten leaf: checkpoint root", audit.CheckpointInvalid, [32]byte{}, -1},
		{"leaf without row", audit.LeafNotInCatalog, ghost, int64(first)},
		{"row without leaf", audit.RowNotInLog, phantom.SHA256, 1000},
		{"orphan blob", audit.BlobOrphan, sha256.Sum256(orphan), -1},
	}
	for _, c := range checks {
		if !finds(rep, c.kind, c.sum, c.leaf) {
			t.Errorf("%s: no %s finding", c.what, c.kind)
		}
	}
	deliveryNamed := false
	for _, f := range rep.Findings {
		if f.Kind == audit.DeliveryAltered && strings.Contains(f.Detail, forgedMsgID) && strings.Contains(f.Detail, forgedRcpt) &&
			(strings.Contains(f.Detail, "state delivered, derived") || strings.Contains(f.Detail, "state not-delivered, derived")) {
			deliveryNamed = true
		}
	}
	if !deliveryNamed || rep.Count(audit.DeliveryAltered) != 1 {
		t.Errorf("forged delivery state of %s for %s: named %v, %d delivery findings", forgedMsgID, forgedRcpt, deliveryNamed, rep.Count(audit.DeliveryAltered))
	}
	resignedNamed := false
	for _, f := range rep.Findings {
		if f.Kind == audit.CheckpointInvalid && strings.Contains(strings.ToLower(f.Detail), "sign") {
			resignedNamed = true
		}
	}
	if !resignedNamed {
		t.Error("checkpoint signed by another key not named")
	}
	if !audit.Warning(audit.BlobOrphan) || audit.Warning(audit.BlobAltered) {
		t.Error("warning classification")
	}
}

// TestAuditNonCanonicalRow: the digests are of the normalised row, so an insider could store a
// row's values in a form that normalises to the same digest (an address in capitals, a message id
// in angle brackets or with a space, recipient types cut short) and make look-ups, which compare
// the stored values, miss it while it matched its leaf. The audit names each such field.
func TestAuditNonCanonicalRow(t *testing.T) {
	e := newEnv(t, nil)
	acc, del, orig := e.recs["acc"], e.recs["delA"], e.recs["orig"]
	e.insider(`UPDATE messages SET sender = upper(sender), message_id = '<' || message_id || '>' WHERE sha256 = $1`, acc.SHA256[:])
	e.insider(`UPDATE messages SET pec_id = pec_id || ' ' WHERE sha256 = $1`, del.SHA256[:])
	e.insider(`UPDATE messages SET ref_msgid = '', recipient_types = '{}' WHERE sha256 = $1`, orig.SHA256[:])
	rep := e.audit()
	if rep.OK() {
		t.Fatal("rows stored otherwise than the archive writes them audit OK")
	}
	for _, c := range []struct {
		rec   archive.Record
		field string
	}{{acc, "sender"}, {acc, "message_id"}, {del, "pec_id"}, {orig, "ref_msgid"}, {orig, "recipient_types"}} {
		if !finds(rep, audit.RowAltered, c.rec.SHA256, int64(c.rec.LeafIndex)) || !named(rep, audit.RowAltered, c.field) {
			t.Errorf("%s of %x not named", c.field, c.rec.SHA256[:4])
		}
	}
}

// TestAuditLeafIndexMoved: an insider points rows at other leaves: two messages' leaf indexes
// swapped, and a third message's pointed at a source's leaf (its own leaf then left without a
// row). Every row is compared with the leaf at its index: each is named, and so is the leaf left
// without its row.
func TestAuditLeafIndexMoved(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	acc, env, warn := e.recs["acc"], e.recs["env"], e.recs["warnB"]
	var sourceLeaf int64
	if err := e.pool.QueryRow(ctx, `SELECT leaf_index FROM message_sources WHERE leaf_index IS NOT NULL`).Scan(&sourceLeaf); err != nil {
		t.Fatal(err)
	}
	e.insider(`UPDATE messages SET leaf_index = 1000000 WHERE sha256 = $1`, acc.SHA256[:])
	e.insider(`UPDATE messages SET leaf_index = $1 WHERE sha256 = $2`, int64(acc.LeafIndex), env.SHA256[:])
	e.insider(`UPDATE messages SET leaf_index = $1 WHERE sha256 = $2`, int64(env.LeafIndex), acc.SHA256[:])
	e.insider(`UPDATE messages SET leaf_index = $1 WHERE sha256 = $2`, sourceLeaf, warn.SHA256[:])
	rep := e.audit()
	for _, c := range []struct {
		what string
		kind string
		sum  [32]byte
		leaf int64
	}{
		{"acceptance on the envelope's leaf", audit.RowLeafMismatch, acc.SHA256, int64(env.LeafIndex)},
		{"envelope on the acceptance's leaf", audit.RowLeafMismatch, env.SHA256, int64(acc.LeafIndex)},
		{"warning on a source's leaf", audit.RowLeafMismatch, warn.SHA256, sourceLeaf},
		{"the warning's own leaf", audit.LeafNotInCatalog, warn.SHA256, int64(warn.LeafIndex)},
	} {
		if !finds(rep, c.kind, c.sum, c.leaf) {
			t.Errorf("%s: no %s finding", c.what, c.kind)
		}
	}
}

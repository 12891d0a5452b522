package audit_test

import (
	"context"
	"testing"

	"github.com/pecarchive/pecarchive/pec/pectest"
	"github.com/pecarchive/pecarchive/pec/smime"
	"github.com/pecarchive/pecarchive/services/archive"
	"github.com/pecarchive/pecarchive/services/archive/audit"
	"github.com/pecarchive/pecarchive/services/archive/merklelog"
)

// TestAuditDeepForgedAnchors is an insider with write access to PostgreSQL and the blob store,
// but not the log's key, who appends rather than edits: they run the archive's own code against
// the archive's database and store, with a trust store of their own (their CA), and store a
// delivery receipt for b that their CA signed. Row, leaf, blob, events and deliveries are then
// consistent, and the row's anchor set, which holds their CA, is a well-formed set: b went from
// not delivered to delivered. The plain audit cannot tell (it takes the archive's verdicts as
// recorded). The deep audit verifies with the audit's own trust anchors: it names the anchor set
// that holds a certificate it does not trust, and the forged receipt, whose signature its
// anchors do not trust; the genuine rows are not named.
func TestAuditDeepForgedAnchors(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	insider, err := pectest.NewProvider(99, nil)
	if err != nil {
		t.Fatal(err)
	}
	insiderPeer, err := insider.Peer(nil)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := insiderPeer.Delivery(pectest.Params{Original: e.orig, Recipient: "b@pec.esempio.it"})
	if err != nil {
		t.Fatal(err)
	}
	own, _ := smime.New(smime.Config{Anchors: smime.NewTrustStore(insider.CA.Root)})
	log, err := merklelog.New(ctx, merklelog.Config{Pool: e.pool}) // no key: it cannot sign
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := archive.New(ctx, archive.Config{Pool: e.pool, Blobs: e.blobs, Log: log, Verifier: own,
		CheckpointInterval: -1, CheckpointEvery: -1, NoMigrate: true})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := theirs.Store(ctx, forged.Bytes, archive.Source{Mailbox: "ordine@pec.ordine.example.it", Folder: "INBOX", UIDValidity: 7, UID: 99})
	if err != nil {
		t.Fatal(err)
	}
	theirs.Close(ctx)
	if !rec.Message.Verdict.Trusted {
		t.Fatalf("the forged receipt was not recorded as trusted: %v", rec.Message.Verdict.Reasons)
	}
	var state string
	if err := e.pool.QueryRow(ctx, `SELECT state FROM deliveries WHERE recipient = 'b@pec.esempio.it'`).Scan(&state); err != nil || state != "delivered" {
		t.Fatalf("b's delivery state %q (%v), want the forged delivered", state, err)
	}

	if rep := e.audit(); !rep.OK() || len(rep.Findings) != 0 {
		t.Fatalf("the plain audit of a consistent append named %v", rep.Findings)
	}
	e.cfg.Deep = true
	rep := e.audit()
	if rep.OK() {
		t.Fatal("the deep audit of a receipt signed by the insider's CA is OK")
	}
	if !finds(rep, audit.AnchorsUntrusted, rec.Message.AnchorsSHA256, -1) {
		t.Error("the insider's anchor set is not named")
	}
	if !finds(rep, audit.RowNotFromBlob, rec.SHA256, int64(rec.LeafIndex)) || !named(rep, audit.RowNotFromBlob, "sig_trusted false (the row says true)") {
		t.Error("the forged receipt's verdict is not named")
	}
	if n := len(rep.Findings); n != 2 {
		t.Errorf("%d findings, want the anchor set and the forged receipt only", n)
	}
}

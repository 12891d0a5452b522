package audit_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pecarchive/pecarchive/pec"
	"github.com/pecarchive/pecarchive/pec/pectest"
	"github.com/pecarchive/pecarchive/services/archive"
	"github.com/pecarchive/pecarchive/services/archive/audit"
	"github.com/pecarchive/pecarchive/services/archive/blob"
	"github.com/pecarchive/pecarchive/services/archive/catalog"
	"github.com/pecarchive/pecarchive/services/archive/reader"
)

// env is an archive with one conversation stored: an original to a, b and c, its acceptance,
// a's envelope and complete delivery receipt (which carries a postacert.eml), b's non-delivery
// and warning, and a delivery receipt for c whose signature was tampered with (untrusted), all
// from one mailbox, and the acceptance once more from another folder (a source with a leaf of
// its own).
type env struct {
	*fixture
	t    *testing.T
	rd   *reader.Reader
	cfg  audit.Config
	orig *pectest.Original
	recs map[string]archive.Record // by name: orig, acc, env, delA, nonDelB, warnB, delC
	raw  map[string][]byte
}

func newEnv(t *testing.T, blobs blob.Store) *env {
	t.Helper()
	return newEnvWith(t, blobs, nil)
}

// newEnvWith is newEnv with the archive's configuration edited by edit.
func newEnvWith(t *testing.T, blobs blob.Store, edit func(*archive.Config)) *env {
	t.Helper()
	ctx := context.Background()
	f := newFixture(t, blobs, nil, edit)
	rd, err := reader.New(ctx, reader.Config{Pool: f.pool, Blobs: f.blobs, Log: f.log})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{fixture: f, t: t, rd: rd, recs: map[string]archive.Record{}, raw: map[string][]byte{},
		cfg: audit.Config{Pool: f.pool, Blobs: f.blobs, Log: f.log, LogKey: f.vkey, Verifier: f.verify}}
	prov, peer := f.prov, f.peer
	o, err := prov.Original(&pectest.Original{To: []string{"a@pec.esempio.it", "b@pec.esempio.it", "c@pec.esempio.it"},
		Subject: "Derivazione " + t.Name(), MessageID: fmt.Sprintf("derive-%d@pec.ordine.example.it", time.Now().UnixNano())})
	if err != nil {
		t.Fatal(err)
	}
	e.orig = o
	g := func(gen *pectest.Generated, err error) *pectest.Generated {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return gen
	}
	delC := g(peer.Delivery(pectest.Params{Original: o, Recipient: "c@pec.esempio.it"}))
	delC = g(pectest.Damage(delC, pectest.FailureTampered))
	uid := uint32(0)
	for _, m := range []struct {
		name string
		gen  *pectest.Generated
	}{
		{"acc", g(prov.Acceptance(pectest.Params{Original: o}))},
		{"env", g(prov.Envelope(pectest.Params{Original: o, Recipient: "a@pec.esempio.it"}))},
		{"delA", g(peer.Delivery(pectest.Params{Original: o, Recipient: "a@pec.esempio.it", ReceiptType: pec.ReceiptCompleta}))},
		{"nonDelB", g(peer.NonDelivery(pectest.Params{Original: o, Recipient: "b@pec.esempio.it"}))},
		{"warnB", g(prov.NonDeliveryWarning(pectest.Params{Original: o, Recipient: "b@pec.esempio.it"}))},
		{"delC", delC},
	} {
		uid++
		e.raw[m.name] = m.gen.Bytes
		e.recs[m.name] = e.store(m.gen.Bytes, archive.Source{Mailbox: "ordine@pec.ordine.example.it", Folder: "INBOX",
			UIDValidity: 7, UID: uid, InternalDate: pectest.DefaultTime.Add(time.Hour)})
	}
	e.raw["orig"] = o.Raw
	e.recs["orig"] = e.store(o.Raw, archive.Source{Path: "/sent/derive.eml"})
	e.store(e.raw["acc"], archive.Source{Mailbox: "ordine@pec.ordine.example.it", Folder: "Archivio", UIDValidity: 9, UID: 1})
	if _, err := e.a.Publish(ctx); err != nil {
		t.Fatal(err)
	}
	if edit == nil {
		e.clean()
	}
	return e
}

func (e *env) store(raw []byte, src archive.Source) archive.Record {
	e.t.Helper()
	rec, err := e.a.Store(context.Background(), raw, src)
	if err != nil {
		e.t.Fatal(err)
	}
	return rec
}

// clean audits the archive as it is and fails the test on any finding.
func (e *env) clean() {
	e.t.Helper()
	rep := e.audit()
	if !rep.OK() || len(rep.Findings) != 0 {
		e.t.Fatalf("untouched archive: %v", rep.Findings)
	}
}

func (e *env) audit() audit.Report {
	e.t.Helper()
	rep, err := audit.Run(context.Background(), e.cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, f := range rep.Findings {
		e.t.Log(f)
	}
	return rep
}

// insider runs sql as someone with write access to PostgreSQL who also switches the catalog's
// triggers off (session_replication_role, which a superuser or the tables' owner can set).
func (e *env) insider(sql string, args ...any) {
	e.t.Helper()
	ctx := context.Background()
	tx, err := e.pool.Begin(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SET LOCAL session_replication_role = replica`); err != nil {
		e.t.Fatal(err)
	}
	tag, err := tx.Exec(ctx, sql, args...)
	if err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
	if tag.RowsAffected() == 0 {
		e.t.Fatalf("%s: changed nothing", sql)
	}
	if err := tx.Commit(ctx); err != nil {
		e.t.Fatal(err)
	}
}

// named reports whether rep has a finding of kind whose detail contains every one of words.
func named(rep audit.Report, kind string, words ...string) bool {
	for _, f := range rep.Findings {
		if f.Kind != kind {
			continue
		}
		ok := true
		for _, w := range words {
			if !strings.Contains(f.String(), w) {
				ok = false
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func (e *env) state(recipient string) catalog.DeliveryState {
	e.t.Helper()
	ds, err := e.rd.Deliveries(context.Background(), reader.Selector{MsgID: e.orig.MessageID})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, d := range ds {
		if d.Recipient == recipient {
			return d.State
		}
	}
	return ""
}

func hexOf(sum [32]byte) string { return fmt.Sprintf("%x", sum) }

// rederive makes the archive derive recipient's delivery state again from all the events of the
// conversation, as any new receipt about that recipient does: a second warning, issued later.
func (e *env) rederive(recipient string) {
	e.t.Helper()
	w, err := e.prov.NonDeliveryWarning(pectest.Params{Original: e.orig, Recipient: recipient, At: pectest.DefaultTime.Add(30 * time.Hour)})
	if err != nil {
		e.t.Fatal(err)
	}
	e.store(w.Bytes, archive.Source{Mailbox: "ordine@pec.ordine.example.it", Folder: "INBOX", UIDValidity: 7, UID: 100})
}

// Attack 3: a non-delivery rewritten as a delivery in delivery_events, and the deliveries
// derived again consistently (by the archive itself, from the next receipt about that
// recipient): the member goes from not delivered to delivered, CheckDeliveries finds nothing,
// and the audit names the event, against the receipt it claims to come from. Before the events
// were derived again from the messages, the audit said OK.
func TestAuditForgedDelivery(t *testing.T) {
	e := newEnv(t, nil)
	const b = "b@pec.esempio.it"
	if s := e.state(b); s != catalog.StateNotDelivered {
		t.Fatalf("b is %s before the forgery, want not-delivered", s)
	}
	nonDel := e.recs["nonDelB"]
	e.insider(`UPDATE delivery_events SET kind = 'avvenuta-consegna', errore = '', errore_esteso = '', receipt_type = 'completa'
		WHERE receipt_sha256 = $1 AND recipient = $2`, e.sum("nonDelB"), b)
	e.rederive(b)
	if s := e.state(b); s != catalog.StateDelivered {
		t.Fatalf("b is %s after the forgery, want delivered (the forgery did not take)", s)
	}
	if bad, err := catalog.CheckDeliveries(context.Background(), e.pool, []string{e.orig.MessageID}); err != nil || len(bad) != 0 {
		t.Fatalf("deliveries not re-derived consistently: %v, %v", bad, err)
	}
	rep := e.audit()
	if rep.OK() || !named(rep, audit.EventAltered, hexOf(nonDel.SHA256), b, "altered") {
		t.Fatalf("the rewritten non-delivery is not named")
	}
	if rep.Count(audit.DeliveryAltered) != 0 {
		t.Errorf("deliveries were re-derived consistently, yet %d delivery findings", rep.Count(audit.DeliveryAltered))
	}
}

// Attack 3: ok flipped on the event of a receipt whose signature is not valid (c's tampered
// delivery receipt), deliveries derived again: c goes from accepted to delivered; the audit
// names the event.
func TestAuditFlippedOK(t *testing.T) {
	e := newEnv(t, nil)
	const c = "c@pec.esempio.it"
	if s := e.state(c); s == catalog.StateDelivered {
		t.Fatalf("c is delivered by a tampered receipt")
	}
	del := e.recs["delC"]
	e.insider(`UPDATE delivery_events SET ok = true, problem = '' WHERE receipt_sha256 = $1 AND recipient = $2`, e.sum("delC"), c)
	e.rederive(c)
	if s := e.state(c); s != catalog.StateDelivered {
		t.Fatalf("c is %s after the forgery, want delivered", s)
	}
	rep := e.audit()
	if rep.OK() || !named(rep, audit.EventAltered, hexOf(del.SHA256), c, "ok true, derived false") {
		t.Fatalf("the flipped ok is not named")
	}
}

// Attack 3: each table the log's digests do not cover directly, edited behind the archive's back
// (triggers off); the audit names each edit. Before, the audit said OK to all of them except
// the orphans of delivery_events, which it named as delivery states that differ.
func TestAuditEditedTables(t *testing.T) {
	const a, b = "a@pec.esempio.it", "b@pec.esempio.it"
	for _, tc := range []struct {
		name string
		sql  func(e *env) (string, []any)
		kind string
		want func(e *env) []string // words of the finding
	}{
		{"recipient added",
			func(e *env) (string, []any) {
				return `INSERT INTO message_recipients SELECT 'intruso@pec.example.it', received_at, sha256 FROM messages WHERE sha256 = $1`,
					[]any{e.sum("acc")}
			},
			audit.RecipientAltered, func(e *env) []string { return []string{"extra", "intruso@pec.example.it", hexOf(e.recs["acc"].SHA256)} }},
		{"recipient removed",
			func(e *env) (string, []any) {
				return `DELETE FROM message_recipients WHERE sha256 = $1 AND recipient = $2`, []any{e.sum("delA"), a}
			},
			audit.RecipientAltered, func(e *env) []string { return []string{"missing", a, hexOf(e.recs["delA"].SHA256)} }},
		{"recipient's time moved",
			func(e *env) (string, []any) {
				return `UPDATE message_recipients SET received_at = received_at - interval '1 hour' WHERE sha256 = $1`, []any{e.sum("orig")}
			},
			audit.RecipientAltered, func(e *env) []string { return []string{"altered", hexOf(e.recs["orig"].SHA256)} }},
		{"link removed",
			func(e *env) (string, []any) {
				return `DELETE FROM message_links WHERE referrer_sha256 = $1 AND via = 'msgid'`, []any{e.sum("nonDelB")}
			},
			audit.LinkAltered, func(e *env) []string { return []string{"missing", "msgid", hexOf(e.recs["nonDelB"].SHA256)} }},
		{"link added",
			func(e *env) (string, []any) {
				return `INSERT INTO message_links VALUES ($1, $2, 'pec-id')`, []any{e.sum("warnB"), e.sum("acc")}
			},
			audit.LinkAltered, func(e *env) []string { return []string{"extra", "pec-id", hexOf(e.recs["acc"].SHA256)} }},
		{"link to no message",
			func(e *env) (string, []any) {
				return `INSERT INTO message_links VALUES (sha256('nothing'), $1, 'msgid')`, []any{e.sum("orig")}
			},
			audit.LinkAltered, func(e *env) []string { return []string{"extra", "not stored"} }},
		{"event added",
			func(e *env) (string, []any) {
				return `INSERT INTO delivery_events (msgid, recipient, receipt_sha256, kind, ok) VALUES ($1, $2, $3, 'avvenuta-consegna', true)`,
					[]any{e.orig.MessageID, b, e.sum("env")}
			},
			audit.EventAltered, func(e *env) []string { return []string{"extra", b, hexOf(e.recs["env"].SHA256)} }},
		{"event removed",
			func(e *env) (string, []any) {
				return `DELETE FROM delivery_events WHERE receipt_sha256 = $1`, []any{e.sum("nonDelB")}
			},
			audit.EventAltered, func(e *env) []string { return []string{"missing", b, hexOf(e.recs["nonDelB"].SHA256)} }},
		{"event of no receipt",
			func(e *env) (string, []any) {
				return `INSERT INTO delivery_events (msgid, recipient, receipt_sha256, kind, ok) VALUES ($1, $2, sha256('nothing'), 'avvenuta-consegna', true)`,
					[]any{e.orig.MessageID, b}
			},
			audit.EventAltered, func(e *env) []string { return []string{"extra", b, "not stored"} }},
		{"first source edited",
			func(e *env) (string, []any) {
				return `UPDATE message_sources SET folder = 'Posta inviata' WHERE sha256 = $1 AND leaf_index IS NULL`, []any{e.sum("delA")}
			},
			audit.SourceAltered, func(e *env) []string { return []string{"Posta inviata", hexOf(e.recs["delA"].SHA256)} }},
		{"further source edited",
			func(e *env) (string, []any) {
				return `UPDATE message_sources SET uid = 2 WHERE leaf_index IS NOT NULL`, nil
			},
			audit.SourceAltered, func(e *env) []string { return []string{"Archivio", hexOf(e.recs["acc"].SHA256)} }},
		{"further source removed",
			func(e *env) (string, []any) { return `DELETE FROM message_sources WHERE leaf_index IS NOT NULL`, nil },
			audit.SourceAltered, func(e *env) []string { return []string{"missing", hexOf(e.recs["acc"].SHA256)} }},
		{"source added",
			func(e *env) (string, []any) {
				return `INSERT INTO message_sources (sha256, mailbox, folder, uidvalidity, uid, first_seen) VALUES ($1, 'falso', 'INBOX', 1, 1, now())`,
					[]any{e.sum("delA")}
			},
			audit.SourceAltered, func(e *env) []string { return []string{"extra", "falso", hexOf(e.recs["delA"].SHA256)} }},
		{"source of no message",
			func(e *env) (string, []any) {
				return `INSERT INTO message_sources (sha256, mailbox, first_seen) VALUES (sha256('nothing'), 'falso', now())`, nil
			},
			audit.SourceAltered, func(e *env) []string { return []string{"extra", "not stored"} }},
		{"chain edited",
			func(e *env) (string, []any) {
				return `UPDATE cert_chains SET certs = certs[1:1] WHERE sha256 = $1`, []any{e.chain("acc")}
			},
			audit.ChainAltered, func(e *env) []string { return []string{"altered", hexOf(e.recs["acc"].ChainSHA256)} }},
		{"anchors edited",
			func(e *env) (string, []any) {
				return `UPDATE trust_anchor_sets SET certs = certs || certs[1:1] WHERE sha256 = $1`, []any{e.anchors("acc")}
			},
			audit.AnchorsAltered, func(e *env) []string { return []string{"altered", hexOf(e.recs["acc"].AnchorsSHA256)} }},
		{"anchors relabelled",
			func(e *env) (string, []any) {
				return `UPDATE trust_anchor_sets SET label = 'AgID' WHERE sha256 = $1`, []any{e.anchors("acc")}
			},
			audit.AnchorsAltered, func(e *env) []string { return []string{"label", hexOf(e.recs["acc"].AnchorsSHA256)} }},
		{"chain deleted",
			func(e *env) (string, []any) {
				return `DELETE FROM cert_chains WHERE sha256 = $1`, []any{e.chain("delA")}
			},
			audit.ChainAltered, func(e *env) []string { return []string{"missing", hexOf(e.recs["delA"].ChainSHA256)} }},
		{"received_at moved within its second",
			func(e *env) (string, []any) {
				// messages and message_recipients alike, so that nothing but the leaf can tell.
				return `WITH m AS (UPDATE messages SET received_at = date_trunc('second', received_at) +
						CASE WHEN received_at - date_trunc('second', received_at) = interval '123457 microseconds'
						     THEN interval '654321 microseconds' ELSE interval '123457 microseconds' END
					WHERE sha256 = $1 RETURNING sha256, received_at)
					UPDATE message_recipients r SET received_at = m.received_at FROM m WHERE r.sha256 = m.sha256`,
					[]any{e.sum("acc")}
			},
			audit.RowAltered, func(e *env) []string { return []string{"received_at", hexOf(e.recs["acc"].SHA256)} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			sql, args := tc.sql(e)
			e.insider(sql, args...)
			rep := e.audit()
			if rep.OK() || !named(rep, tc.kind, tc.want(e)...) {
				t.Fatalf("no %s finding with %q", tc.kind, tc.want(e))
			}
			if tc.kind == audit.RowAltered && rep.Count(audit.RecipientAltered) != 0 {
				t.Errorf("recipients moved with the row, yet named")
			}
		})
	}
}

func (e *env) sum(name string) []byte     { s := e.recs[name].SHA256; return s[:] }
func (e *env) chain(name string) []byte   { s := e.recs[name].ChainSHA256; return s[:] }
func (e *env) anchors(name string) []byte { s := e.recs[name].AnchorsSHA256; return s[:] }

package catalog_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pecarchive/pecarchive/internal/testenv"
	"github.com/pecarchive/pecarchive/pec"
	"github.com/pecarchive/pecarchive/services/archive/catalog"
)

// env is a migrated catalog in a fresh schema, with a leaf counter standing in for the log.
type env struct {
	t    *testing.T
	pool *pgxpool.Pool
	cat  *catalog.Catalog
	leaf uint64
	now  time.Time
}

func newEnv(t *testing.T) *env {
	t.Helper()
	pool := testenv.PG(t)
	if err := catalog.Migrate(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
	return &env{t: t, pool: pool, cat: catalog.New(pool), now: time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)}
}

// store writes msgs (new) and their sources in one transaction, as the archive does.
func (e *env) store(msgs ...catalog.Message) []catalog.Message {
	e.t.Helper()
	ctx := context.Background()
	tx, err := e.pool.Begin(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	sums := make([][32]byte, len(msgs))
	for i := range msgs {
		sums[i] = msgs[i].SHA256
	}
	stored := map[[32]byte]catalog.Message{}
	var lock pgx.Batch
	catalog.QueueLockAndLookup(&lock, sums, stored)
	if err := tx.SendBatch(ctx, &lock).Close(); err != nil {
		e.t.Fatal(err)
	}
	if again, err := catalog.Lookup(ctx, tx, sums); err != nil || len(again) != len(stored) {
		e.t.Fatalf("QueueLockAndLookup found %d, Lookup %d (%v)", len(stored), len(again), err)
	}
	b := &catalog.Batch{Now: e.now}
	for i := range msgs {
		msgs[i].LeafIndex = e.leaf
		e.leaf++
		e.now = e.now.Add(time.Second)
		msgs[i].ReceivedAt = e.now
		b.Messages = append(b.Messages, msgs[i])
		b.Sources = append(b.Sources, catalog.SourceRow{SHA256: msgs[i].SHA256, Source: catalog.Source{Mailbox: "m", Folder: "INBOX", UIDValidity: 1, UID: uint32(msgs[i].LeafIndex + 1)}})
	}
	if err := catalog.Write(ctx, tx, b); err != nil {
		e.t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		e.t.Fatal(err)
	}
	return msgs
}

func sum(s string) [32]byte { return sha256.Sum256([]byte(s)) }

var trusted = catalog.Verdict{Present: true, Valid: true, Trusted: true, Digest: "sha1", Signer: "CN=Provider", SignerEmail: "posta-certificata@pec.example.it",
	Reasons: []string{"weak-digest-sha1"}, Details: []string{"the CMS digest is SHA-1"},
	SignedAt: time.Date(2024, 5, 6, 7, 0, 0, 0, time.UTC), VerifiedAt: time.Date(2024, 5, 6, 7, 0, 0, 0, time.UTC)}

var rome = time.FixedZone("+0200", 7200)

func original(msgid string, rcpts ...string) catalog.Message {
	return catalog.Message{SHA256: sum("orig " + msgid), Size: 100, Kind: pec.KindNotPEC, MessageID: msgid,
		Sender: "sender@pec.example.it", From: "sender@pec.example.it", Recipients: rcpts, Subject: "hello"}
}

func receipt(kind pec.Kind, msgid, pecID string, rcpts []string, consegna string, v catalog.Verdict, salt string) catalog.Message {
	return catalog.Message{SHA256: sum(string(kind) + msgid + consegna + salt), Size: 200, Kind: kind,
		MessageID: "r-" + string(kind) + "-" + consegna + salt + "@pec.example.it", PECID: pecID, OrigMsgID: msgid, XRiferimento: msgid,
		Sender: "sender@pec.example.it", From: "posta-certificata@pec.example.it", Recipients: rcpts,
		Subject: string(kind) + ": hello", Provider: "Example PEC S.p.A.", Consegna: consegna,
		DaticertTime: time.Date(2024, 5, 6, 9, 0, 0, 0, rome), Verdict: v}
}

func TestRoundTripAndDigest(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	m := catalog.Message{
		SHA256: sum("x"), Size: 1234, Kind: pec.KindAvvenutaConsegna, MessageID: "<id@x>", PECID: "opec.1@pec.example.it",
		OrigMsgID: "orig@x", XRiferimento: "<orig@x>", Sender: "Sender@PEC.example.it", From: "posta-certificata@pec.example.it",
		Recipients: []string{"A@pec.example.it"}, RecipientTypes: []string{"certificato"},
		Subject: "CONSEGNA: caf\xe9 \x00 bad", Provider: "Example", DaticertTime: time.Date(2023, 8, 18, 17, 37, 14, 0, rome),
		HeaderDate: time.Date(2023, 8, 18, 15, 37, 14, 123456789, time.UTC), ReceiptType: pec.ReceiptCompleta,
		Errore: pec.ErrNessuno, Consegna: "a@pec.example.it", Verdict: trusted,
		Problems: []string{"pec: something"}, PostacertSHA256: sum("inner"),
	}
	chain := catalog.ChainSet([][]byte{[]byte("leaf-der"), []byte("ca-der")})
	anchors := catalog.AnchorSet([][]byte{[]byte("root-b"), []byte("root-a"), []byte("root-b")}, "default")
	m.ChainSHA256, m.AnchorsSHA256 = chain.SHA256, anchors.SHA256
	want := m
	want.Normalize()
	digest := m.EvidenceDigest()

	tx, err := e.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m.LeafIndex, m.ReceivedAt = 7, time.Date(2024, 1, 2, 3, 4, 5, 678912345, time.UTC)
	err = catalog.Write(ctx, tx, &catalog.Batch{Messages: []catalog.Message{m}, Chains: []catalog.CertSet{chain}, Anchors: []catalog.CertSet{anchors},
		Sources: []catalog.SourceRow{{SHA256: m.SHA256, Source: catalog.Source{Mailbox: "mb", Folder: "INBOX", UIDValidity: 9, UID: 4294967295,
			InternalDate: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)}}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := e.cat.Get(ctx, m.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	want.LeafIndex, want.ReceivedAt = 7, time.Date(2024, 1, 2, 3, 4, 5, 678912000, time.UTC)
	if got.EvidenceDigest() != digest {
		t.Errorf("digest changed by the round trip")
	}
	if !got.DaticertTime.Equal(want.DaticertTime) {
		t.Errorf("daticert time %v, want %v", got.DaticertTime, want.DaticertTime)
	}
	if _, off := got.DaticertTime.Zone(); off != 7200 {
		t.Errorf("daticert zone offset %d, want 7200", off)
	}
	got.DaticertTime, want.DaticertTime = time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
	}
	if got.Sender != "sender@pec.example.it" || got.MessageID != "id@x" || strings.ContainsRune(got.Subject, 0) {
		t.Errorf("normalisation: %q %q %q", got.Sender, got.MessageID, got.Subject)
	}
	if _, err := catalog.ParseLeafExtra(got.LeafExtra()); err != nil {
		t.Error(err)
	}
	cs, err := e.cat.Chain(ctx, chain.SHA256)
	if err != nil || len(cs.Certs) != 2 || string(cs.Certs[0]) != "leaf-der" {
		t.Errorf("chain: %v %v", cs, err)
	}
	as, err := e.cat.Anchors(ctx, anchors.SHA256)
	if err != nil || len(as.Certs) != 2 || as.Label != "default" {
		t.Errorf("anchors: %v %v", as, err)
	}
	srcs, err := e.cat.Sources(ctx, m.SHA256)
	if err != nil || len(srcs) != 1 || srcs[0].UID != 4294967295 || srcs[0].UIDValidity != 9 {
		t.Errorf("sources: %+v %v", srcs, err)
	}
	if _, err := e.cat.Get(ctx, sum("absent")); err == nil {
		t.Error("absent message found")
	}
	// Tampering with any evidence field changes the digest.
	tampered := got
	tampered.Verdict.Trusted = false
	if tampered.EvidenceDigest() == digest {
		t.Error("digest ignores the verdict")
	}
}

func states(ds []catalog.Delivery) map[string]catalog.DeliveryState {
	out := map[string]catalog.DeliveryState{}
	for _, d := range ds {
		out[d.Recipient] = d.State
	}
	return out
}

// Receipts arriving before the original, an untrusted delivery receipt, a pending recipient,
// the envelope linked by PEC id, and the original linked when it arrives.
func TestCorrelationOutOfOrder(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const msgid = "m1@client.example.it"
	const pecID = "opec.123@pec.example.it"
	rcpts := []string{"a@pec.example.it", "b@pec.example.it", "c@pec.example.it"}
	untrusted := trusted
	untrusted.Trusted = false

	dA := receipt(pec.KindAvvenutaConsegna, msgid, pecID, rcpts, "a@pec.example.it", trusted, "")
	dA.ReceiptType = pec.ReceiptCompleta
	dA.PostacertSHA256 = sum("orig " + msgid)
	e.store(dA)
	ds, err := e.cat.Deliveries(ctx, msgid)
	if err != nil {
		t.Fatal(err)
	}
	if got := states(ds); len(got) != 1 || got["a@pec.example.it"] != catalog.StateDelivered {
		t.Fatalf("after delivery receipt: %v", got)
	}
	// Untrusted delivery for b, errore-consegna for c, then the acceptance for all.
	dB := receipt(pec.KindAvvenutaConsegna, msgid, pecID, rcpts, "b@pec.example.it", untrusted, "")
	dB.Verdict.Reasons = []string{"chain-untrusted"}
	nC := receipt(pec.KindErroreConsegna, msgid, pecID, rcpts, "c@pec.example.it", trusted, "")
	nC.Errore, nC.ErroreEsteso = pec.ErrNoDest, "5.1.1 unknown user"
	acc := receipt(pec.KindAccettazione, msgid, pecID, rcpts, "", trusted, "")
	e.store(dB, nC, acc)
	ds, _ = e.cat.Deliveries(ctx, msgid)
	got := states(ds)
	want := map[string]catalog.DeliveryState{"a@pec.example.it": catalog.StateDelivered, "b@pec.example.it": catalog.StateAccepted, "c@pec.example.it": catalog.StateNotDelivered}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("states %v, want %v", got, want)
	}
	for _, d := range ds {
		if d.Acceptance != acc.SHA256 || d.PECID != pecID || d.Sender != "sender@pec.example.it" {
			t.Errorf("%s: acceptance/pec id/sender not set: %+v", d.Recipient, d)
		}
		switch d.Recipient {
		case "a@pec.example.it":
			if d.Delivery != dA.SHA256 || d.ReceiptType != pec.ReceiptCompleta || d.Problem != "" {
				t.Errorf("a: %+v", d)
			}
		case "b@pec.example.it":
			if d.Delivery != dB.SHA256 || !strings.Contains(d.Problem, "not trusted") || !strings.Contains(d.Problem, "chain-untrusted") {
				t.Errorf("b: untrusted delivery not recorded with its problem: %+v", d)
			}
		case "c@pec.example.it":
			if d.NonDelivery != nC.SHA256 || d.Errore != pec.ErrNoDest || d.ErroreEsteso != "5.1.1 unknown user" {
				t.Errorf("c: %+v", d)
			}
		}
		if d.Original != ([32]byte{}) {
			t.Errorf("%s: original set before it arrived", d.Recipient)
		}
	}
	// The envelope (received by a recipient that is us) links to the receipts by PEC id.
	env := receipt(pec.KindPostaCertificata, msgid, pecID, rcpts, "", trusted, "")
	env.MessageID = pecID
	// The original arrives last, with an extra Cc recipient: pending.
	orig := original(msgid, "A@pec.example.it", "b@pec.example.it", "c@pec.example.it", "d@pec.example.it")
	e.store(env, orig)
	ds, _ = e.cat.Deliveries(ctx, msgid)
	got = states(ds)
	want["d@pec.example.it"] = catalog.StatePending
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("states %v, want %v", got, want)
	}
	for _, d := range ds {
		if d.Original != orig.SHA256 {
			t.Errorf("%s: original not linked", d.Recipient)
		}
	}
	links, err := e.cat.Links(ctx, orig.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	type key struct {
		r   [32]byte
		via string
	}
	have := map[key]bool{}
	for _, l := range links {
		if l.Original == orig.SHA256 {
			have[key{l.Referrer, l.Via}] = true
		}
	}
	for _, k := range []key{{dA.SHA256, catalog.LinkMsgID}, {dA.SHA256, catalog.LinkPostacert}, {dB.SHA256, catalog.LinkMsgID},
		{nC.SHA256, catalog.LinkMsgID}, {acc.SHA256, catalog.LinkMsgID}, {env.SHA256, catalog.LinkMsgID}} {
		if !have[k] {
			t.Errorf("missing link %x via %s", k.r[:4], k.via)
		}
	}
	envLinks, _ := e.cat.Links(ctx, env.SHA256)
	n := 0
	for _, l := range envLinks {
		if l.Via == catalog.LinkPECID && l.Original == env.SHA256 {
			n++
		}
	}
	if n != 4 {
		t.Errorf("envelope has %d pec-id links, want 4 (every receipt)", n)
	}
	// A late trusted delivery for b overrides the untrusted one; its problem goes away.
	dB2 := receipt(pec.KindAvvenutaConsegna, msgid, pecID, rcpts, "b@pec.example.it", trusted, "again")
	dB2.ReceiptType = pec.ReceiptSintetica
	e.store(dB2)
	ds, _ = e.cat.DeliveriesByPECID(ctx, pecID)
	for _, d := range ds {
		if d.Recipient == "b@pec.example.it" && (d.State != catalog.StateDelivered || d.Delivery != dB2.SHA256 || d.Problem != "" || d.ReceiptType != pec.ReceiptSintetica) {
			t.Errorf("b after trusted receipt: %+v", d)
		}
	}
	// Lookups.
	ms, err := e.cat.ByMsgID(ctx, "<"+msgid+">", 0)
	if err != nil || len(ms) != 7 {
		t.Errorf("by msgid: %d messages, %v; want 7", len(ms), err)
	}
	ms, err = e.cat.ByPECID(ctx, pecID, 0)
	if err != nil || len(ms) != 6 {
		t.Errorf("by PEC id: %d messages, %v; want 6", len(ms), err)
	}
	sd, err := e.cat.SearchDeliveries(ctx, catalog.DeliveryQuery{Sender: "SENDER@pec.example.it", Recipient: "c@pec.example.it"})
	if err != nil || len(sd) != 1 || sd[0].State != catalog.StateNotDelivered {
		t.Errorf("search deliveries: %+v %v", sd, err)
	}
	// Receipts that arrive after what they refer to link to it: dB2 to the stored envelope by PEC
	// id, and a second complete delivery receipt to the stored original it carries.
	dA2 := receipt(pec.KindAvvenutaConsegna, msgid, pecID, rcpts, "a@pec.example.it", trusted, "second")
	dA2.ReceiptType = pec.ReceiptCompleta
	dA2.PostacertSHA256 = orig.SHA256
	e.store(dA2)
	for _, w := range []catalog.Link{
		{Referrer: dB2.SHA256, Original: env.SHA256, Via: catalog.LinkPECID},
		{Referrer: dA2.SHA256, Original: orig.SHA256, Via: catalog.LinkPostacert},
		{Referrer: dA2.SHA256, Original: orig.SHA256, Via: catalog.LinkMsgID},
		{Referrer: dA2.SHA256, Original: env.SHA256, Via: catalog.LinkPECID},
	} {
		ls, err := e.cat.Links(ctx, w.Referrer)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(ls, w) {
			t.Errorf("missing link %x -> %x via %s (%d links from or to %x)", w.Referrer[:4], w.Original[:4], w.Via, len(ls), w.Referrer[:4])
		}
	}
}

// The same result whatever the arrival order.
func TestCorrelationOrderIndependent(t *testing.T) {
	const msgid = "m2@client.example.it"
	rcpts := []string{"a@pec.example.it", "b@pec.example.it"}
	warn := receipt(pec.KindPreavvisoErroreConsegna, msgid, "p2", rcpts, "b@pec.example.it", trusted, "")
	warn.ErroreEsteso = "5.4.1 timeout"
	all := []catalog.Message{
		original(msgid, rcpts...),
		receipt(pec.KindAccettazione, msgid, "p2", rcpts, "", trusted, ""),
		receipt(pec.KindAvvenutaConsegna, msgid, "p2", rcpts, "a@pec.example.it", trusted, ""),
		warn,
	}
	var ref []catalog.Delivery
	for _, order := range [][]int{{0, 1, 2, 3}, {3, 2, 1, 0}, {2, 0, 3, 1}, {-1}} {
		e := newEnv(t)
		if order[0] == -1 {
			e.store(all...) // all in one batch
		} else {
			for _, i := range order {
				e.store(all[i])
			}
		}
		ds, err := e.cat.Deliveries(context.Background(), msgid)
		if err != nil {
			t.Fatal(err)
		}
		for i := range ds {
			ds[i].UpdatedAt = time.Time{}
		}
		if ref == nil {
			ref = ds
			if s := states(ds); s["a@pec.example.it"] != catalog.StateDelivered || s["b@pec.example.it"] != catalog.StateWarned {
				t.Fatalf("states %v", s)
			}
			continue
		}
		if !reflect.DeepEqual(ds, ref) {
			t.Errorf("order %v:\n got %+v\nwant %+v", order, ds, ref)
		}
	}
}

func TestSourcesAndSearch(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var ms []catalog.Message
	for i := range 5 {
		m := original("s"+string(rune('a'+i))+"@x", "r@pec.example.it")
		ms = append(ms, m)
	}
	e.store(ms...)
	// Re-adding a known source adds nothing; a new one is added.
	tx, _ := e.pool.Begin(ctx)
	src := catalog.Source{Mailbox: "m", Folder: "INBOX", UIDValidity: 1, UID: 1}
	err := catalog.Write(ctx, tx, &catalog.Batch{Sources: []catalog.SourceRow{
		{SHA256: ms[0].SHA256, Source: src},
		{SHA256: ms[0].SHA256, Source: catalog.Source{Path: "/import/x.eml"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	tx.Commit(ctx)
	srcs, _ := e.cat.Sources(ctx, ms[0].SHA256)
	if len(srcs) != 2 {
		t.Errorf("sources %+v, want 2", srcs)
	}
	// Paging.
	var seen int
	var after *catalog.Message
	for {
		page, err := e.cat.Search(ctx, catalog.Query{Recipient: "R@pec.example.it", Kinds: []pec.Kind{pec.KindNotPEC}, Limit: 2, After: after})
		if err != nil {
			t.Fatal(err)
		}
		seen += len(page)
		if len(page) < 2 {
			break
		}
		after = &page[len(page)-1]
	}
	if seen != 5 {
		t.Errorf("paged search saw %d, want 5", seen)
	}
	n := 0
	if err := e.cat.Scan(ctx, func(m catalog.Message) error { n++; return nil }); err != nil || n != 5 {
		t.Errorf("scan %d %v", n, err)
	}
	// A new message's sources are inserted without a conflict check: the same source twice in
	// one batch is one row, and a stored message's sources in the same batch are still checked.
	fresh := receipt(pec.KindAccettazione, "s-new@x", "id-new", []string{"a@pec.example.it", "a@pec.example.it", "b@pec.example.it"}, "", trusted, "")
	fresh.LeafIndex, fresh.ReceivedAt = e.leaf, e.now
	e.leaf++
	tx, _ = e.pool.Begin(ctx)
	defer tx.Rollback(ctx) // after a failure, so that dropping the schema does not wait for it
	err = catalog.Write(ctx, tx, &catalog.Batch{Messages: []catalog.Message{fresh}, Sources: []catalog.SourceRow{
		{SHA256: fresh.SHA256, Source: catalog.Source{Path: "/import/new.eml"}},
		{SHA256: fresh.SHA256, Source: catalog.Source{Path: "/import/new.eml", InternalDate: e.now}},
		{SHA256: fresh.SHA256, Source: catalog.Source{Mailbox: "m", Folder: "INBOX", UIDValidity: 1, UID: 99}},
		{SHA256: ms[0].SHA256, Source: src},
		{SHA256: ms[1].SHA256, Source: catalog.Source{Path: "/import/y.eml"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		sum  [32]byte
		want int
	}{{fresh.SHA256, 2}, {ms[0].SHA256, 2}, {ms[1].SHA256, 2}} {
		if srcs, err := e.cat.Sources(ctx, c.sum); err != nil || len(srcs) != c.want {
			t.Errorf("sources of %x: %+v (%v), want %d", c.sum[:4], srcs, err, c.want)
		}
	}
	var events int
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM delivery_events WHERE receipt_sha256 = $1`, fresh.SHA256[:]).Scan(&events); err != nil || events != 2 {
		t.Errorf("%d delivery events of an acceptance for a@ twice and b@ (%v), want 2", events, err)
	}
}

// A receipt about one recipient of a message rewrites that recipient's delivery row only: the
// rows of the others, derived again to the same values, keep their row version and updated_at
// (a message to many recipients would otherwise rewrite every row for every receipt).
func TestDeliveriesRewrittenOnlyWhenChanged(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const msgid = "many@client.example.it"
	const pecID = "opec.many@pec.example.it"
	rcpts := []string{"a@pec.example.it", "b@pec.example.it", "c@pec.example.it"}
	e.store(original(msgid, rcpts...), receipt(pec.KindAccettazione, msgid, pecID, rcpts, "", trusted, ""))
	type version struct {
		xmin      uint32
		updatedAt time.Time
		state     string
	}
	versions := func() map[string]version {
		rows, err := e.pool.Query(ctx, `SELECT recipient, xmin::text::bigint, updated_at, state FROM deliveries WHERE msgid = $1`, msgid)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]version{}
		var r, st string
		var x int64
		var u time.Time
		if _, err := pgx.ForEachRow(rows, []any{&r, &x, &u, &st}, func() error {
			out[r] = version{uint32(x), u, st}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	before := versions()
	if len(before) != 3 || before["b@pec.example.it"].state != string(catalog.StateAccepted) {
		t.Fatalf("after the acceptance: %+v", before)
	}
	e.store(receipt(pec.KindAvvenutaConsegna, msgid, pecID, rcpts, "a@pec.example.it", trusted, ""))
	after := versions()
	if a := after["a@pec.example.it"]; a.state != string(catalog.StateDelivered) || a.xmin == before["a@pec.example.it"].xmin ||
		!a.updatedAt.After(before["a@pec.example.it"].updatedAt) {
		t.Errorf("a: %+v, before %+v: want delivered, rewritten, updated later", a, before["a@pec.example.it"])
	}
	for _, r := range rcpts[1:] {
		if after[r] != before[r] {
			t.Errorf("%s: %+v, before %+v: an unchanged row was rewritten", r, after[r], before[r])
		}
	}
}

// A search by recipient finds the messages sent to that recipient and the receipts about it: a
// receipt about one recipient (consegna) is found under that recipient only, although its
// daticert lists every recipient of the original.
func TestSearchByRecipientOfReceipts(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const msgid = "search@client.example.it"
	const pecID = "opec.search@pec.example.it"
	rcpts := []string{"a@pec.example.it", "b@pec.example.it", "c@pec.example.it"}
	orig := original(msgid, rcpts...)
	acc := receipt(pec.KindAccettazione, msgid, pecID, rcpts, "", trusted, "")
	dA := receipt(pec.KindAvvenutaConsegna, msgid, pecID, rcpts, "a@pec.example.it", trusted, "")
	nB := receipt(pec.KindErroreConsegna, msgid, pecID, rcpts, "b@pec.example.it", trusted, "")
	e.store(orig, acc, dA, nB)
	for r, want := range map[string][][32]byte{
		"a@pec.example.it": {orig.SHA256, acc.SHA256, dA.SHA256},
		"B@pec.example.it": {orig.SHA256, acc.SHA256, nB.SHA256},
		"c@pec.example.it": {orig.SHA256, acc.SHA256},
	} {
		ms, err := e.cat.Search(ctx, catalog.Query{Recipient: r})
		if err != nil {
			t.Fatal(err)
		}
		var got [][32]byte
		for _, m := range ms {
			got = append(got, m.SHA256)
		}
		slices.SortFunc(got, func(x, y [32]byte) int { return bytes.Compare(x[:], y[:]) })
		slices.SortFunc(want, func(x, y [32]byte) int { return bytes.Compare(x[:], y[:]) })
		if !reflect.DeepEqual(got, want) {
			t.Errorf("recipient %s: %d messages, want %d", r, len(got), len(want))
		}
	}
}

// Migration 0005 drops the rows of catalogs written before receipts were listed under their
// consegna only, and keeps the others.
func TestMigrationReceiptRecipients(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const msgid = "old@client.example.it"
	rcpts := []string{"a@pec.example.it", "b@pec.example.it"}
	acc := receipt(pec.KindAccettazione, msgid, "opec.old", rcpts, "", trusted, "")
	dA := receipt(pec.KindAvvenutaConsegna, msgid, "opec.old", rcpts, "a@pec.example.it", trusted, "")
	e.store(acc, dA)
	// As an older catalog had it: the delivery receipt listed under b too.
	if _, err := e.pool.Exec(ctx, `INSERT INTO message_recipients (recipient, received_at, sha256)
		SELECT 'b@pec.example.it', received_at, sha256 FROM messages WHERE sha256 = $1`, dA.SHA256[:]); err != nil {
		t.Fatal(err)
	}
	sql, err := fs.ReadFile(catalog.Migrations, "migrations/0005_receipt_recipients.up.sql")
	if err != nil {
		t.Fatal(err)
	}
	// Run as it ran then, before migration 0006 made the table insert-only.
	if _, err := e.pool.Exec(ctx, `ALTER TABLE message_recipients DISABLE TRIGGER message_recipients_written_once;`+
		string(sql)+`;ALTER TABLE message_recipients ENABLE TRIGGER message_recipients_written_once`); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM message_recipients`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 3 { // the acceptance under a and b, the delivery receipt under a
		t.Errorf("%d message_recipients rows after the migration, want 3", n)
	}
}

// CheckDeliveries finds nothing in deliveries written by commits, and names a row altered,
// deleted or added behind the archive's back.
func TestCheckDeliveries(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	rcpts := []string{"a@pec.example.it", "b@pec.example.it", "c@pec.example.it"}
	for i := range 3 {
		msgid := fmt.Sprintf("check%d@client.example.it", i)
		pecID := fmt.Sprintf("opec.check%d@pec.example.it", i)
		e.store(receipt(pec.KindAccettazione, msgid, pecID, rcpts, "", trusted, ""))
		e.store(receipt(pec.KindAvvenutaConsegna, msgid, pecID, rcpts, "a@pec.example.it", trusted, ""),
			original(msgid, append(rcpts, "d@pec.example.it")...))
	}
	var ids []string
	for after := ""; ; {
		page, err := catalog.DeliveryMsgIDs(ctx, e.pool, after, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		ids = append(ids, page...)
		after = page[len(page)-1]
	}
	if len(ids) != 3 {
		t.Fatalf("msgids %v, want 3", ids)
	}
	if got, err := catalog.CheckDeliveries(ctx, e.pool, ids); err != nil || len(got) != 0 {
		t.Fatalf("clean catalog: %+v, %v", got, err)
	}
	for _, q := range []string{
		`UPDATE deliveries SET state = 'delivered' WHERE msgid = 'check0@client.example.it' AND recipient = 'b@pec.example.it'`,
		`DELETE FROM deliveries WHERE msgid = 'check1@client.example.it' AND recipient = 'd@pec.example.it'`,
		`INSERT INTO deliveries (msgid, recipient, state, updated_at) VALUES ('check2@client.example.it', 'z@pec.example.it', 'delivered', now())`,
	} {
		if _, err := e.pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	got, err := catalog.CheckDeliveries(ctx, e.pool, ids)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"check0@client.example.it b@pec.example.it stored otherwise than derived from the events: state delivered, derived accepted",
		"check1@client.example.it d@pec.example.it derived from the events (state pending) but not stored",
		"check2@client.example.it z@pec.example.it stored (state delivered) but not derived from the events",
	}
	var have []string
	for _, m := range got {
		have = append(have, m.MsgID+" "+m.Recipient+" "+m.What)
	}
	if !reflect.DeepEqual(have, want) {
		t.Errorf("mismatches:\n%s\nwant:\n%s", strings.Join(have, "\n"), strings.Join(want, "\n"))
	}
}

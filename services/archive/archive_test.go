package archive_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pecarchive/pecarchive/internal/samples"
	"github.com/pecarchive/pecarchive/internal/testenv"
	"github.com/pecarchive/pecarchive/pec"
	"github.com/pecarchive/pecarchive/pec/pectest"
	"github.com/pecarchive/pecarchive/pec/smime"
	"github.com/pecarchive/pecarchive/services/archive"
	"github.com/pecarchive/pecarchive/services/archive/blob"
	"github.com/pecarchive/pecarchive/services/archive/blob/fsstore"
	"github.com/pecarchive/pecarchive/services/archive/catalog"
	"github.com/pecarchive/pecarchive/services/archive/merklelog"
	"github.com/pecarchive/pecarchive/services/archive/reader"
	"github.com/pecarchive/pecarchive/tlog"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.CloseShared()
	os.Exit(code)
}

const origin = "pecarchive.test/log"

// fixture is an archive on the real PostgreSQL (fresh schema) and a filesystem blob store,
// verifying against the pectest CA.
type fixture struct {
	t     testing.TB
	pool  *pgxpool.Pool
	blobs blob.Store
	fs    *fsstore.Store
	log   *merklelog.Log
	vkey  string
	a     *archive.Archive
	rd    *reader.Reader    // reads back what a stored
	prov  *pectest.Provider // the sender's provider (ProviderA)
	peer  *pectest.Provider // the recipients' provider (ProviderB)
	cfg   archive.Config
}

var (
	provOnce       sync.Once
	provA, provB   *pectest.Provider
	provErr        error
	testVerifier   *smime.Verifier
	sharedPoolOnce sync.Once
)

func providers(t testing.TB) (*pectest.Provider, *pectest.Provider, *smime.Verifier) {
	t.Helper()
	provOnce.Do(func() {
		provA, provErr = pectest.NewProvider(1, nil)
		if provErr != nil {
			return
		}
		provB, provErr = provA.Peer(nil)
		if provErr != nil {
			return
		}
		testVerifier, provErr = smime.New(smime.Config{Anchors: smime.NewTrustStore(provA.CA.Root)})
	})
	if provErr != nil {
		t.Fatal(provErr)
	}
	return provA, provB, testVerifier
}

func newFixture(t testing.TB, mod func(*archive.Config)) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{t: t}
	f.prov, f.peer, _ = providers(t)
	_, _, v := providers(t)
	f.pool = testenv.PG(t)
	fs, err := fsstore.New(ctx, fsstore.Config{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	f.fs, f.blobs = fs, fs
	if err := archive.Migrate(ctx, f.pool); err != nil {
		t.Fatal(err)
	}
	skey, vkey, err := tlog.GenerateKey(origin)
	if err != nil {
		t.Fatal(err)
	}
	f.vkey = vkey
	signer, err := tlog.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := tlog.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	f.log, err = merklelog.New(ctx, merklelog.Config{Pool: f.pool, Signer: signer, Verifier: verifier, Checkpoints: fs})
	if err != nil {
		t.Fatal(err)
	}
	f.cfg = archive.Config{Pool: f.pool, Blobs: f.blobs, Log: f.log, Verifier: v, CheckpointInterval: -1, CheckpointEvery: -1}
	if mod != nil {
		mod(&f.cfg)
	}
	f.a, err = archive.New(ctx, f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.a.Close(context.Background()) })
	f.rd, err = reader.New(ctx, reader.Config{Pool: f.cfg.Pool, Blobs: f.cfg.Blobs, Log: f.log})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) store(raw []byte, src archive.Source) archive.Record {
	f.t.Helper()
	rec, err := f.a.Store(context.Background(), raw, src)
	if err != nil {
		f.t.Fatalf("store: %v", err)
	}
	return rec
}

func (f *fixture) count(table string) int {
	f.t.Helper()
	var n int
	if err := f.pool.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		f.t.Fatal(err)
	}
	return n
}

func (f *fixture) logSize() uint64 {
	f.t.Helper()
	n, err := f.log.Size(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	return n
}

func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// conversation is one original sent to two recipients and the provider messages about it.
type conversation struct {
	orig                   *pectest.Original
	acc, env, delA, nonDel *pectest.Generated
	warn                   *pectest.Generated
}

func newConversation(t *testing.T, f *fixture, subject string) *conversation {
	t.Helper()
	g := must[*pectest.Generated](t)
	o, err := f.prov.Original(&pectest.Original{
		To: []string{"a@pec.esempio.it", "b@pec.esempio.it"}, Subject: subject,
		MessageID: fmt.Sprintf("%x@pec.ordine.example.it", sha256.Sum256([]byte(subject+t.Name()))),
	})
	if err != nil {
		t.Fatal(err)
	}
	return &conversation{
		orig:   o,
		acc:    g(f.prov.Acceptance(pectest.Params{Original: o})),
		env:    g(f.prov.Envelope(pectest.Params{Original: o, Recipient: "a@pec.esempio.it"})),
		delA:   g(f.peer.Delivery(pectest.Params{Original: o, Recipient: "a@pec.esempio.it", ReceiptType: pec.ReceiptCompleta})),
		nonDel: g(f.peer.NonDelivery(pectest.Params{Original: o, Recipient: "b@pec.esempio.it"})),
		warn:   g(f.prov.NonDeliveryWarning(pectest.Params{Original: o, Recipient: "b@pec.esempio.it"})),
	}
}

func states(ds []catalog.Delivery) map[string]catalog.DeliveryState {
	out := map[string]catalog.DeliveryState{}
	for _, d := range ds {
		out[d.Recipient] = d.State
	}
	return out
}

func TestStoreConversation(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	c := newConversation(t, f, "Convocazione assemblea")
	src := func(uid uint32) archive.Source {
		return archive.Source{Mailbox: "ordine@pec.ordine.example.it", Folder: "INBOX", UIDValidity: 7, UID: uid,
			InternalDate: pectest.DefaultTime.Add(time.Hour)}
	}
	// The delivery receipt first: its original arrives later.
	del := f.store(c.delA.Bytes, src(1))
	if !del.New || del.Kind != pec.KindAvvenutaConsegna || !del.Verdict.Valid || !del.Verdict.Trusted {
		t.Fatalf("delivery record: new=%v kind=%s verdict=%+v problems=%v", del.New, del.Kind, del.Verdict, del.Problems)
	}
	if del.SHA256 != sha256.Sum256(c.delA.Bytes) || del.Size != int64(len(c.delA.Bytes)) {
		t.Error("hash or size not recomputed from the bytes")
	}
	if del.ReceiptType != pec.ReceiptCompleta || del.Consegna != "a@pec.esempio.it" || del.RefMsgID != c.orig.MessageID || del.PECID != c.orig.ID {
		t.Errorf("delivery fields: %+v", del.Message)
	}
	if del.ChainSHA256 == ([32]byte{}) || del.AnchorsSHA256 == ([32]byte{}) {
		t.Error("chain or anchor snapshot not referenced")
	}
	if del.Postacert == nil || !del.Postacert.New || del.Postacert.Kind != pec.KindNotPEC || del.Postacert.RefMsgID != c.orig.MessageID {
		t.Fatalf("postacert.eml not stored as its own message: %+v", del.Postacert)
	}
	if del.Postacert.LeafIndex == del.LeafIndex {
		t.Error("postacert shares the receipt's leaf")
	}
	acc := f.store(c.acc.Bytes, src(2))
	nd := f.store(c.nonDel.Bytes, src(3))
	env := f.store(c.env.Bytes, src(4))
	orig := f.store(c.orig.Raw, archive.Source{Mailbox: "ordine@pec.ordine.example.it", Folder: "Sent", UIDValidity: 1, UID: 1})
	for _, r := range []archive.Record{acc, nd, env} {
		if !r.New || !r.Verdict.Trusted {
			t.Errorf("%s: new=%v verdict=%+v reasons=%v", r.Kind, r.New, r.Verdict, r.Reasons)
		}
	}
	ds, err := f.rd.Deliveries(ctx, reader.Selector{SHA256: orig.SHA256})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]catalog.DeliveryState{"a@pec.esempio.it": catalog.StateDelivered, "b@pec.esempio.it": catalog.StateNotDelivered}
	if got := states(ds); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("states %v, want %v", got, want)
	}
	for _, d := range ds {
		if d.Acceptance != acc.SHA256 || d.PECID != c.orig.ID {
			t.Errorf("%s: acceptance %x pec id %q", d.Recipient, d.Acceptance[:4], d.PECID)
		}
		if d.Original == ([32]byte{}) {
			t.Errorf("%s: original not linked", d.Recipient)
		}
	}
	// Same answer from a receipt, by msgid and by PEC id.
	for _, get := range []func() ([]catalog.Delivery, error){
		func() ([]catalog.Delivery, error) { return f.rd.Deliveries(ctx, reader.Selector{SHA256: nd.SHA256}) },
		func() ([]catalog.Delivery, error) {
			return f.rd.Deliveries(ctx, reader.Selector{MsgID: "<" + c.orig.MessageID + ">"})
		},
		func() ([]catalog.Delivery, error) { return f.rd.Deliveries(ctx, reader.Selector{PECID: c.orig.ID}) },
	} {
		ds, err := get()
		if err != nil || len(ds) != 2 {
			t.Errorf("deliveries: %d, %v", len(ds), err)
		}
	}
	recs, err := f.rd.Messages(ctx, reader.Selector{MsgID: c.orig.MessageID}, 0)
	if err != nil || len(recs) != 6 { // orig, postacert copy, acc, del, non-del, envelope
		t.Errorf("by msgid: %d records, %v", len(recs), err)
	}
	recs, err = f.rd.Messages(ctx, reader.Selector{PECID: c.orig.ID}, 0)
	if err != nil || len(recs) != 5 { // acc, del, non-del, envelope, postacert copy (Message-ID = PEC id)
		t.Errorf("by PEC id: %d records, %v", len(recs), err)
	}

	// Idempotent: the same bytes again, from another folder, add only the source, sealed by a
	// leaf of its own; from the same folder again, nothing.
	for range 2 {
		again := f.store(c.delA.Bytes, archive.Source{Mailbox: "ordine@pec.ordine.example.it", Folder: "Archivio", UIDValidity: 9, UID: 5})
		if again.New || again.LeafIndex != del.LeafIndex || again.SHA256 != del.SHA256 {
			t.Errorf("second store: new=%v leaf %d (first %d)", again.New, again.LeafIndex, del.LeafIndex)
		}
	}
	got, err := f.rd.Get(ctx, del.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Sources) != 2 || got.Sources[0].Folder != "INBOX" || got.Sources[1].Folder != "Archivio" {
		t.Errorf("sources: %+v", got.Sources)
	}
	if got.EvidenceDigest() != del.EvidenceDigest() {
		t.Error("Get differs from what Store returned")
	}
	// Store returned exactly what the log leaf commits to.
	data, err := f.log.LeafData(ctx, del.LeafIndex)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := tlog.ParseLeaf(data)
	if err != nil {
		t.Fatal(err)
	}
	if err := catalog.CheckMessageLeaf(leaf, &got.Message, &got.Sources[0]); err != nil || leaf.Extra != got.LeafExtraV2(&got.Sources[0]) {
		t.Errorf("leaf %+v does not match the record: %v", leaf, err)
	}
	if n := f.count("messages"); n != 6 || f.logSize() != 7 {
		t.Errorf("%d messages, %d leaves; want 6 and 7 (the second source's)", n, f.logSize())
	}
	if data, err = f.log.LeafData(ctx, 6); err != nil {
		t.Fatal(err)
	}
	if leaf, err = tlog.ParseLeaf(data); err != nil {
		t.Fatal(err)
	}
	if err := catalog.CheckSourceLeaf(leaf, del.SHA256, &got.Sources[1]); err != nil {
		t.Errorf("source leaf %+v: %v", leaf, err)
	}
	rc, err := f.rd.Open(ctx, del.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(b, c.delA.Bytes) {
		t.Errorf("blob differs: %v", err)
	}
	// The postacert.eml has its catalog row but no blob of its own: Get names the receipt
	// carrying it, the reader extracts it from the receipt's blob, byte-exact.
	pc, err := f.rd.Get(ctx, del.Postacert.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if pc.ContainedIn != del.SHA256 || pc.EvidenceDigest() != del.Postacert.EvidenceDigest() {
		t.Errorf("postacert record: contained in %x, want %x", pc.ContainedIn[:4], del.SHA256[:4])
	}
	if len(pc.Sources) != 1 || pc.Sources[0].Parent != del.SHA256 || pc.Sources[0].Path != "postacert.eml" {
		t.Errorf("postacert sources: %+v", pc.Sources)
	}
	if _, err := f.blobs.Stat(ctx, del.Postacert.SHA256); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("postacert has a blob of its own: %v", err)
	}
	pm, _ := pec.Parse(c.delA.Bytes, nil)
	rc, err = f.rd.Open(ctx, del.Postacert.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	b, err = io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(b, pm.Postacert) || sha256.Sum256(b) != del.Postacert.SHA256 {
		t.Errorf("postacert bytes differ: %v", err)
	}
	if _, err := f.rd.Get(ctx, sha256.Sum256([]byte("absent"))); !errors.Is(err, reader.ErrNotFound) {
		t.Errorf("absent: %v", err)
	}
	if _, err := f.rd.Open(ctx, sha256.Sum256([]byte("absent"))); !errors.Is(err, reader.ErrNotFound) {
		t.Errorf("absent blob: %v", err)
	}
}

// Receipts with bad signatures, malformed and non-PEC input are stored all the same, flagged.
func TestStoreFlagged(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	c := newConversation(t, f, "Diffida")
	expired, err := f.peer.With(func(o *pectest.Options) { o.Defect = pectest.DefectExpired })
	if err != nil {
		t.Fatal(err)
	}
	badDel, err := expired.Delivery(pectest.Params{Original: c.orig, Recipient: "a@pec.esempio.it", ReceiptType: pec.ReceiptSintetica})
	if err != nil {
		t.Fatal(err)
	}
	tampered := must[*pectest.Generated](t)(pectest.Damage(c.acc, pectest.FailureTampered))
	f.store(c.acc.Bytes, archive.Source{Path: "acc.eml"})
	bad := f.store(badDel.Bytes, archive.Source{Path: "bad.eml"})
	if !bad.Verdict.Valid || bad.Verdict.Trusted || !containsStr(bad.Reasons, smime.ReasonExpired) {
		t.Errorf("expired signer: %+v", bad.Verdict)
	}
	ds, _ := f.rd.Deliveries(ctx, reader.Selector{MsgID: c.orig.MessageID})
	for _, d := range ds {
		if d.Recipient == "a@pec.esempio.it" {
			if d.State != catalog.StateAccepted || d.Delivery != bad.SHA256 || d.Problem == "" {
				t.Errorf("untrusted delivery must not make it delivered: %+v", d)
			}
		}
	}
	tam := f.store(tampered.Bytes, archive.Source{Path: "tampered.eml"})
	if tam.Verdict.Valid || tam.Verdict.Trusted {
		t.Errorf("tampered: %+v", tam.Verdict)
	}
	trunc := f.store(pectest.Truncate(c.env.Bytes), archive.Source{Path: "trunc.eml"})
	if trunc.Verdict.Valid || len(trunc.Problems) == 0 {
		t.Errorf("truncated: verdict %+v problems %v", trunc.Verdict, trunc.Problems)
	}
	junk := f.store([]byte("\x00\xff not a message at all \x00"), archive.Source{Path: "junk"})
	if junk.Kind != pec.KindNotPEC || junk.Verdict.Present || !junk.New {
		t.Errorf("junk: %+v", junk.Message)
	}
	if _, err := f.a.Store(ctx, nil, archive.Source{}); !errors.Is(err, archive.ErrInvalid) {
		t.Errorf("empty: %v", err)
	}
	small := newFixture(t, func(c *archive.Config) { c.MaxSize = 100 })
	if _, err := small.a.Store(ctx, make([]byte, 101), archive.Source{}); !errors.Is(err, archive.ErrInvalid) {
		t.Errorf("too large: %v", err)
	}
}

func containsStr(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// Concurrent stores of the same bytes (one batch or several): one row, one leaf, every source.
func TestConcurrentDuplicates(t *testing.T) {
	f := newFixture(t, func(c *archive.Config) { c.BatchDelay = 20 * time.Millisecond })
	c := newConversation(t, f, "Duplicati")
	const n = 40
	recs := make([]archive.Record, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			recs[i], errs[i] = f.a.Store(context.Background(), c.nonDel.Bytes, archive.Source{Mailbox: "m", Folder: "INBOX", UIDValidity: 1, UID: uint32(i + 1)})
		}()
	}
	wg.Wait()
	news := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if recs[i].New {
			news++
		}
		if recs[i].LeafIndex != recs[0].LeafIndex || recs[i].SHA256 != recs[0].SHA256 {
			t.Errorf("call %d: different record", i)
		}
	}
	if news != 1 {
		t.Errorf("%d calls report New, want 1", news)
	}
	// One leaf for the message (and its first source), one for each further source.
	if m, s, l := f.count("messages"), f.count("message_sources"), f.logSize(); m != 1 || s != n || l != n {
		t.Errorf("%d messages, %d sources, %d leaves; want 1, %d, %d", m, s, l, n, n)
	}
}

// Many concurrent stores are grouped into few transactions, with contiguous leaves.
func TestGroupCommit(t *testing.T) {
	f := newFixture(t, nil)
	var raws [][]byte
	for i := range 30 {
		c := newConversation(t, f, fmt.Sprintf("Pratica %d", i))
		raws = append(raws, c.acc.Bytes, c.nonDel.Bytes, c.warn.Bytes, c.env.Bytes)
	}
	st0 := f.a.Stats()
	before := st0.Batches
	var wg sync.WaitGroup
	errs := make(chan error, len(raws))
	for i, raw := range raws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := f.a.Store(context.Background(), raw, archive.Source{Path: fmt.Sprint(i)})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	st := f.a.Stats()
	batches := st.Batches - before
	t.Logf("%d messages in %d transactions", len(raws), batches)
	// The timing counters cover every call and every batch.
	if calls, batched := st.Calls-st0.Calls, st.Batched-st0.Batched; calls != uint64(len(raws)) || batched != calls ||
		st.Prepare <= st0.Prepare || st.Put <= st0.Put || st.Commit <= st0.Commit || st.Transact <= st0.Transact {
		t.Errorf("stats: %d calls, %d batched, prepare %v, put %v, commit %v, transact %v; want %d calls, all batched, times grown",
			calls, batched, st.Prepare-st0.Prepare, st.Put-st0.Put, st.Commit-st0.Commit, st.Transact-st0.Transact, len(raws))
	}
	if batches >= uint64(len(raws)) {
		t.Errorf("no grouping: %d transactions for %d messages", batches, len(raws))
	}
	var n, minLeaf, maxLeaf int
	if err := f.pool.QueryRow(context.Background(), "SELECT count(*), min(leaf_index), max(leaf_index) FROM messages").Scan(&n, &minLeaf, &maxLeaf); err != nil {
		t.Fatal(err)
	}
	if n != len(raws) || minLeaf != 0 || maxLeaf != len(raws)-1 || f.logSize() != uint64(len(raws)) {
		t.Errorf("%d rows, leaves %d..%d, log size %d", n, minLeaf, maxLeaf, f.logSize())
	}
}

// Checkpoints are published by leaf count and on Close; records prove inclusion.
func TestCheckpoints(t *testing.T) {
	f := newFixture(t, func(c *archive.Config) { c.CheckpointEvery = 3 })
	ctx := context.Background()
	var recs []archive.Record
	for i := range 4 {
		c := newConversation(t, f, fmt.Sprintf("Checkpoint %d", i))
		recs = append(recs, f.store(c.acc.Bytes, archive.Source{}), f.store(c.warn.Bytes, archive.Source{}))
	}
	deadline := time.Now().Add(5 * time.Second)
	for f.a.Stats().Published == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if f.a.Stats().Published == 0 {
		t.Fatal("no checkpoint published by leaf count")
	}
	if err := f.a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := f.a.Store(ctx, []byte("x"), archive.Source{}); !errors.Is(err, archive.ErrClosed) {
		t.Errorf("store after close: %v", err)
	}
	signed, err := f.log.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := tlog.VerifyCheckpoint(signed, f.vkey)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != uint64(len(recs)) {
		t.Fatalf("final checkpoint size %d, want %d", cp.Size, len(recs))
	}
	for _, r := range recs {
		data, err := f.log.LeafData(ctx, r.LeafIndex)
		if err != nil {
			t.Fatal(err)
		}
		proof, err := f.log.InclusionProof(ctx, r.LeafIndex, cp.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.VerifyInclusion(tlog.LeafHash(data), r.LeafIndex, cp.Size, proof, cp.Hash); err != nil {
			t.Errorf("leaf %d: %v", r.LeafIndex, err)
		}
	}
}

// The real Aruba envelope verifies as of its signing time with the built-in anchors.
func TestRealSample(t *testing.T) {
	raw := samples.Read(t, "real/aruba-busta-trasporto-2023-08-18.eml")
	f := newFixture(t, func(c *archive.Config) { c.Verifier = nil })
	rec := f.store(raw, archive.Source{Path: "real/aruba-busta-trasporto-2023-08-18.eml"})
	if rec.Kind != pec.KindPostaCertificata || rec.PECID != "opec21010.20230818173714.75133.134.1.56@pec.aruba.it" ||
		rec.Provider != "ARUBA PEC S.p.A." || rec.Verdict.Digest != "sha1" {
		t.Errorf("record: %+v", rec.Message)
	}
	if !rec.Verdict.Valid || !rec.Verdict.Trusted {
		t.Errorf("real envelope not valid and trusted as of signing time: %+v reasons %v", rec.Verdict, rec.Reasons)
	}
	if rec.Verdict.VerifiedAt.Year() != 2023 {
		t.Errorf("verified at %v, want its 2023 signing time", rec.Verdict.VerifiedAt)
	}
	chain, err := f.rd.Chain(context.Background(), rec.ChainSHA256)
	if err != nil || len(chain.Certs) < 2 {
		t.Errorf("chain snapshot: %d certs, %v", len(chain.Certs), err)
	}
	anchors, err := f.rd.Anchors(context.Background(), rec.AnchorsSHA256)
	if err != nil || len(anchors.Certs) == 0 {
		t.Errorf("anchor snapshot: %v", err)
	}
}

// Every kind the test provider makes is stored with its kind, and moves the deliveries as the
// rules say (non-acceptance: not delivered; taking charge and virus notices: linked only).
func TestAllKinds(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	g := must[*pectest.Generated](t)
	o, err := f.prov.Original(&pectest.Original{To: []string{"a@pec.esempio.it"}, Subject: "Tutti i tipi", MessageID: "all-kinds@pec.ordine.example.it"})
	if err != nil {
		t.Fatal(err)
	}
	refused, err := f.prov.Original(&pectest.Original{To: []string{"z@pec.esempio.it"}, Subject: "Rifiutato", MessageID: "refused@pec.ordine.example.it"})
	if err != nil {
		t.Fatal(err)
	}
	msgs := []*pectest.Generated{
		g(f.prov.Acceptance(pectest.Params{Original: o})),
		g(f.prov.Envelope(pectest.Params{Original: o})),
		g(f.peer.TakingCharge(pectest.Params{Original: o})),
		g(f.peer.VirusDetected(pectest.Params{Original: o})),
		g(f.peer.Delivery(pectest.Params{Original: o, ReceiptType: pec.ReceiptBreve})),
		g(f.peer.Anomaly(pectest.Params{Original: o})),
		g(f.prov.NonAcceptance(pectest.Params{Original: refused})),
	}
	for _, m := range msgs {
		rec := f.store(m.Bytes, archive.Source{Path: m.Name})
		if rec.Kind != m.Kind {
			t.Errorf("%s: kind %s, want %s", m.Name, rec.Kind, m.Kind)
		}
		if rec.Verdict.Trusted != m.WantTrusted {
			t.Errorf("%s: trusted %v, want %v (reasons %v)", m.Name, rec.Verdict.Trusted, m.WantTrusted, rec.Reasons)
		}
		if rec.Postacert != nil {
			t.Errorf("%s: only complete delivery receipts have their postacert.eml stored", m.Name)
		}
	}
	ds, err := f.rd.Deliveries(ctx, reader.Selector{MsgID: o.MessageID})
	if err != nil || len(ds) != 1 || ds[0].State != catalog.StateDelivered || ds[0].ReceiptType != pec.ReceiptBreve {
		t.Errorf("deliveries of the original: %+v %v", ds, err)
	}
	ds, err = f.rd.Deliveries(ctx, reader.Selector{MsgID: refused.MessageID})
	if err != nil || len(ds) != 1 || ds[0].State != catalog.StateNotDelivered || ds[0].NonDelivery == ([32]byte{}) {
		t.Errorf("deliveries of the refused original: %+v %v", ds, err)
	}
}

// The anonymised samples (signatures truncated) are stored all the same, flagged.
func TestAnonymisedSamples(t *testing.T) {
	paths := samples.Glob(t, "anonymised/*.eml")
	if len(paths) == 0 {
		t.Skip("no anonymised samples")
	}
	f := newFixture(t, func(c *archive.Config) { c.Verifier = nil })
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		rec := f.store(raw, archive.Source{Path: p})
		if rec.Kind == pec.KindNotPEC || rec.Verdict.Trusted || len(rec.Reasons) == 0 {
			t.Errorf("%s: kind %s, verdict %+v", p, rec.Kind, rec.Verdict)
		}
		t.Logf("%s: %s, reasons %v, problems %v", p, rec.Kind, rec.Reasons, rec.Problems)
	}
}

// A lone caller is not held back by the batch delay: the committer waits for more only while
// other Store calls are on their way.
func TestLoneCallerNotDelayed(t *testing.T) {
	const delay = 2 * time.Second
	f := newFixture(t, func(c *archive.Config) { c.BatchDelay = delay })
	c := newConversation(t, f, "Da solo")
	for i, raw := range [][]byte{c.acc.Bytes, c.nonDel.Bytes, c.warn.Bytes} {
		start := time.Now()
		f.store(raw, archive.Source{Mailbox: "m", Folder: "INBOX", UIDValidity: 1, UID: uint32(i + 1)})
		if d := time.Since(start); d >= delay {
			t.Fatalf("store %d took %v: the committer waited the batch delay for callers that were not coming", i, d)
		}
	}
}

// A commit assumes its messages are new and the log is as it left it (one round trip); when a
// message is already stored, or another archive on the same schema (a replica) appended, the
// transaction is rolled back and redone with a look-up: nothing is duplicated, leaves stay
// contiguous, and the record says the message was stored before.
func TestCommitAssumptionsRedone(t *testing.T) {
	f := newFixture(t, nil)
	replica, err := archive.New(context.Background(), f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer replica.Close(context.Background())
	c := newConversation(t, f, "Assunzioni")
	first := f.store(c.acc.Bytes, archive.Source{Path: "acc"})  // looks up: nothing known yet
	second := f.store(c.env.Bytes, archive.Source{Path: "env"}) // assumes, rightly
	if !first.New || !second.New || second.LeafIndex != first.LeafIndex+1 {
		t.Fatalf("first %d new=%v, second %d new=%v", first.LeafIndex, first.New, second.LeafIndex, second.New)
	}
	redone := f.a.Stats().Redone
	if redone != 0 {
		t.Fatalf("%d transactions redone before any wrong assumption", redone)
	}

	// Stored already: the insert fails on the primary key, the redo finds the record and adds
	// the new source with its leaf.
	again := f.store(c.acc.Bytes, archive.Source{Path: "acc-again"})
	if again.New || again.LeafIndex != first.LeafIndex {
		t.Errorf("stored again: leaf %d new=%v, want leaf %d new=false", again.LeafIndex, again.New, first.LeafIndex)
	}
	if got := f.a.Stats().Redone; got != redone+1 {
		t.Errorf("redone %d, want %d", got, redone+1)
	}

	// The log moved: the replica appends, then this archive's assumed state is stale.
	if _, err := replica.Store(context.Background(), c.warn.Bytes, archive.Source{Path: "warn"}); err != nil {
		t.Fatal(err)
	}
	moved := f.store(c.nonDel.Bytes, archive.Source{Path: "nonDel"})
	if !moved.New || moved.LeafIndex != second.LeafIndex+3 {
		t.Errorf("after the replica appended: leaf %d new=%v, want leaf %d new=true", moved.LeafIndex, moved.New, second.LeafIndex+3)
	}
	if got := f.a.Stats().Redone; got != redone+2 {
		t.Errorf("redone %d, want %d", got, redone+2)
	}
	if m, l := f.count("messages"), f.logSize(); m != 4 || l != 5 {
		t.Errorf("%d messages, %d leaves; want 4 and 5 (a source's)", m, l)
	}
	if s := f.count("message_sources"); s != 5 {
		t.Errorf("%d sources, want 5", s)
	}
}

package reader_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pecarchive/pecarchive/internal/testenv"
	"github.com/pecarchive/pecarchive/pec"
	"github.com/pecarchive/pecarchive/pec/pectest"
	"github.com/pecarchive/pecarchive/pec/smime"
	"github.com/pecarchive/pecarchive/services/archive"
	"github.com/pecarchive/pecarchive/services/archive/blob/fsstore"
	"github.com/pecarchive/pecarchive/services/archive/merklelog"
	"github.com/pecarchive/pecarchive/services/archive/reader"
	"github.com/pecarchive/pecarchive/tlog"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.CloseShared()
	os.Exit(code)
}

var (
	provOnce     sync.Once
	provA, provB *pectest.Provider
	verifier     *smime.Verifier
	provErr      error
)

// fixture is an archive (the writer) and a Reader on the same schema and blob store.
type fixture struct {
	pool *pgxpool.Pool
	fs   *fsstore.Store
	a    *archive.Archive
	rd   *reader.Reader
	vkey string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	provOnce.Do(func() {
		if provA, provErr = pectest.NewProvider(1, nil); provErr != nil {
			return
		}
		if provB, provErr = provA.Peer(nil); provErr != nil {
			return
		}
		verifier, provErr = smime.New(smime.Config{Anchors: smime.NewTrustStore(provA.CA.Root)})
	})
	if provErr != nil {
		t.Fatal(provErr)
	}
	f := &fixture{pool: testenv.PG(t)}
	var err error
	if f.fs, err = fsstore.New(ctx, fsstore.Config{Root: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	skey, vkey, err := tlog.GenerateKey("pecarchive.test/reader")
	if err != nil {
		t.Fatal(err)
	}
	f.vkey = vkey
	signer, _ := tlog.NewSigner(skey)
	logVerifier, _ := tlog.NewVerifier(vkey)
	if err := archive.Migrate(ctx, f.pool); err != nil {
		t.Fatal(err)
	}
	l, err := merklelog.New(ctx, merklelog.Config{Pool: f.pool, Signer: signer, Verifier: logVerifier, Checkpoints: f.fs})
	if err != nil {
		t.Fatal(err)
	}
	f.a, err = archive.New(ctx, archive.Config{Pool: f.pool, Blobs: f.fs, Log: l, Verifier: verifier,
		CheckpointInterval: -1, CheckpointEvery: -1, NoMigrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.a.Close(context.Background()) })
	// The reader opens its own log, without a signer.
	if f.rd, err = reader.New(ctx, reader.Config{Pool: f.pool, Blobs: f.fs}); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) store(t *testing.T, g *pectest.Generated) archive.Record {
	t.Helper()
	rec, err := f.a.Store(context.Background(), g.Bytes, archive.Source{Path: g.Name})
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func gen(t *testing.T) func(*pectest.Generated, error) *pectest.Generated {
	return func(g *pectest.Generated, err error) *pectest.Generated {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
}

// One conversation read back by every selector, its bytes byte-exact (the postacert.eml from
// inside its receipt), and the log's checkpoint and proofs checked as an auditor would.
func TestRead(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	g := gen(t)
	o, err := provA.Original(&pectest.Original{To: []string{"a@pec.esempio.it", "b@pec.esempio.it"}, Subject: "Lettura",
		MessageID: "lettura-1@pec.ordine.example.it"})
	if err != nil {
		t.Fatal(err)
	}
	acc := f.store(t, g(provA.Acceptance(pectest.Params{Original: o})))
	del := f.store(t, g(provB.Delivery(pectest.Params{Original: o, Recipient: "a@pec.esempio.it", ReceiptType: pec.ReceiptCompleta})))
	nd := f.store(t, g(provB.NonDelivery(pectest.Params{Original: o, Recipient: "b@pec.esempio.it"})))
	if del.Postacert == nil {
		t.Fatal("no postacert.eml catalogued")
	}

	rec, err := f.rd.Get(ctx, del.SHA256)
	if err != nil || rec.EvidenceDigest() != del.EvidenceDigest() || len(rec.Sources) != 1 || rec.Sources[0].Path == "" {
		t.Fatalf("Get: %+v, %v", rec, err)
	}
	for _, sel := range []reader.Selector{{MsgID: "<" + o.MessageID + ">"}, {PECID: o.ID}, {SHA256: nd.SHA256}} {
		ds, err := f.rd.Deliveries(ctx, sel)
		if err != nil || len(ds) != 2 || ds[0].State != "delivered" || ds[1].State != "not-delivered" || ds[0].Acceptance != acc.SHA256 {
			t.Errorf("Deliveries(%+v): %+v, %v", sel, ds, err)
		}
	}
	ms, err := f.rd.Messages(ctx, reader.Selector{MsgID: o.MessageID}, 0)
	if err != nil || len(ms) != 4 { // acceptance, delivery, its postacert.eml, non-delivery
		t.Errorf("Messages by msgid: %d, %v", len(ms), err)
	}
	ms, err = f.rd.Messages(ctx, reader.Selector{SHA256: acc.SHA256}, 0)
	if err != nil || len(ms) != 1 || ms[0].SHA256 != acc.SHA256 {
		t.Errorf("Messages by SHA-256: %+v, %v", ms, err)
	}
	if ms, err := f.rd.Messages(ctx, reader.Selector{SHA256: sha256.Sum256([]byte("absent"))}, 0); err != nil || len(ms) != 0 {
		t.Errorf("Messages of an absent SHA-256: %v, %v", ms, err)
	}
	for _, sel := range []reader.Selector{{}, {MsgID: "x", PECID: "y"}, {MsgID: "<>"}} {
		if _, err := f.rd.Messages(ctx, sel, 0); !errors.Is(err, reader.ErrInvalid) {
			t.Errorf("Messages(%+v): %v, want ErrInvalid", sel, err)
		}
	}
	if _, err := f.rd.Deliveries(ctx, reader.Selector{SHA256: sha256.Sum256([]byte("absent"))}); !errors.Is(err, reader.ErrNotFound) {
		t.Errorf("Deliveries of an absent message: %v, want ErrNotFound", err)
	}
	links, err := f.rd.Links(ctx, del.SHA256)
	if err != nil || len(links) == 0 {
		t.Errorf("Links: %v, %v", links, err)
	}

	read := func(sum [32]byte) []byte {
		t.Helper()
		rc, err := f.rd.Open(ctx, sum)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if b := read(del.SHA256); sha256.Sum256(b) != del.SHA256 {
		t.Error("receipt bytes differ")
	}
	if b := read(del.Postacert.SHA256); sha256.Sum256(b) != del.Postacert.SHA256 {
		t.Error("postacert.eml bytes differ")
	}
	pm, err := f.rd.Message(ctx, del.Postacert.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := f.rd.OpenMessage(ctx, &pm)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if sha256.Sum256(b) != pm.SHA256 {
		t.Error("OpenMessage of the postacert.eml: bytes differ")
	}
	if _, err := f.rd.Open(ctx, sha256.Sum256([]byte("absent"))); !errors.Is(err, reader.ErrNotFound) {
		t.Errorf("Open of an absent message: %v", err)
	}

	// The log, read only.
	if _, err := f.rd.Checkpoint(ctx); !errors.Is(err, reader.ErrNotFound) {
		t.Errorf("Checkpoint before the first: %v, want ErrNotFound", err)
	}
	if _, err := f.a.Publish(ctx); err != nil {
		t.Fatal(err)
	}
	signed, err := f.rd.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := tlog.VerifyCheckpoint(signed, f.vkey)
	if err != nil || cp.Size != 4 {
		t.Fatalf("checkpoint: %+v, %v", cp, err)
	}
	if at, err := f.rd.CheckpointAt(ctx, cp.Size); err != nil || !bytes.Equal(at, signed) {
		t.Errorf("CheckpointAt: %v", err)
	}
	if n, err := f.rd.Size(ctx); err != nil || n != cp.Size {
		t.Errorf("Size: %d, %v", n, err)
	}
	for _, r := range []archive.Record{acc, del, nd} {
		data, err := f.rd.LeafData(ctx, r.LeafIndex)
		if err != nil {
			t.Fatal(err)
		}
		p, err := f.rd.InclusionProof(ctx, r.LeafIndex, cp.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.VerifyInclusion(tlog.LeafHash(data), r.LeafIndex, cp.Size, p, cp.Hash); err != nil {
			t.Errorf("leaf %d: %v", r.LeafIndex, err)
		}
	}
	root2, err := f.rd.Root(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := f.rd.ConsistencyProof(ctx, 2, cp.Size)
	if err != nil || tlog.VerifyConsistency(2, cp.Size, cons, root2, cp.Hash) != nil {
		t.Errorf("consistency: %v", err)
	}
	if _, err := f.rd.InclusionProof(ctx, 0, cp.Size+1); !errors.Is(err, reader.ErrOutOfRange) {
		t.Errorf("proof beyond the log: %v, want ErrOutOfRange", err)
	}
	if _, err := f.rd.InclusionProof(ctx, 5, 5); !errors.Is(err, reader.ErrInvalid) {
		t.Errorf("index at size: %v, want ErrInvalid", err)
	}
	if _, err := f.rd.LeafData(ctx, 99); !errors.Is(err, reader.ErrNotFound) {
		t.Errorf("leaf beyond the log: %v, want ErrNotFound", err)
	}
}

// Errors come sorted into kinds: the database closed is ErrUnavailable, an unmigrated schema
// ErrSchema.
func TestErrorKinds(t *testing.T) {
	ctx := context.Background()
	fs, err := fsstore.New(ctx, fsstore.Config{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reader.New(ctx, reader.Config{Pool: testenv.PG(t), Blobs: fs}); !errors.Is(err, reader.ErrSchema) {
		t.Errorf("New on an unmigrated schema: %v, want ErrSchema", err)
	}
	f := newFixture(t)
	f.pool.Close()
	sum := sha256.Sum256([]byte("x"))
	for name, call := range map[string]func() error{
		"Get":        func() error { _, err := f.rd.Get(ctx, sum); return err },
		"Messages":   func() error { _, err := f.rd.Messages(ctx, reader.Selector{MsgID: "m@x"}, 0); return err },
		"Deliveries": func() error { _, err := f.rd.Deliveries(ctx, reader.Selector{PECID: "p@x"}); return err },
		"Checkpoint": func() error { _, err := f.rd.Checkpoint(ctx); return err },
		"Open":       func() error { _, err := f.rd.Open(ctx, sum); return err }, // blob absent, then the catalog
	} {
		if err := call(); !errors.Is(err, reader.ErrUnavailable) {
			t.Errorf("%s with the pool closed: %v, want ErrUnavailable", name, err)
		}
	}
}

// A postacert.eml is read from its receipt's blob: a receipt blob altered, or a row pointing at a
// message that does not carry it, fails with ErrIntegrity rather than returning other bytes.
func TestContainedPostacertIntegrity(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	g := gen(t)
	o, err := provA.Original(&pectest.Original{To: []string{"a@pec.esempio.it"}, Subject: "Postacert integrity",
		MessageID: "postacert-integrity@pec.ordine.example.it"})
	if err != nil {
		t.Fatal(err)
	}
	del := f.store(t, g(provB.Delivery(pectest.Params{Original: o, Recipient: "a@pec.esempio.it", ReceiptType: pec.ReceiptCompleta})))
	acc := f.store(t, g(provA.Acceptance(pectest.Params{Original: o})))
	if del.Postacert == nil || del.Postacert.ContainedIn != del.SHA256 {
		t.Fatalf("postacert: %+v", del.Postacert)
	}
	open := func() error {
		rc, err := f.rd.Open(ctx, del.Postacert.SHA256)
		if err != nil {
			return err
		}
		defer rc.Close()
		_, err = io.ReadAll(rc)
		return err
	}
	if err := open(); err != nil {
		t.Fatal(err)
	}
	// Pointed at the acceptance, which carries no postacert.eml.
	if _, err := f.pool.Exec(ctx, `UPDATE messages SET contained_in = $1 WHERE sha256 = $2`, acc.SHA256[:], del.Postacert.SHA256[:]); err != nil {
		t.Fatal(err)
	}
	if err := open(); !errors.Is(err, reader.ErrIntegrity) {
		t.Errorf("postacert said to be in the acceptance: %v, want ErrIntegrity", err)
	}
	if _, err := f.pool.Exec(ctx, `UPDATE messages SET contained_in = $1 WHERE sha256 = $2`, del.SHA256[:], del.Postacert.SHA256[:]); err != nil {
		t.Fatal(err)
	}
	// The receipt's blob rewritten on disk.
	path := f.fs.Path(del.SHA256)
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	orig, _ := os.ReadFile(path)
	if err := os.WriteFile(path, bytes.Replace(orig, []byte("Postacert integrity"), []byte("Postacert integritX"), -1), 0o444); err != nil {
		t.Fatal(err)
	}
	if err := open(); !errors.Is(err, reader.ErrIntegrity) {
		t.Errorf("receipt blob rewritten: %v, want ErrIntegrity", err)
	}
	// The receipt itself, read through the verifying reader: ErrIntegrity at EOF.
	rc, err := f.rd.Open(ctx, del.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(rc); !errors.Is(err, reader.ErrIntegrity) {
		t.Errorf("rewritten receipt read: %v, want ErrIntegrity", err)
	}
	rc.Close()
	// The receipt's blob gone: not found.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := open(); !errors.Is(err, reader.ErrNotFound) {
		t.Errorf("receipt blob removed: %v, want ErrNotFound", err)
	}
}

package audit_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pecarchive/pecarchive/internal/testenv"
	"github.com/pecarchive/pecarchive/pec/pectest"
	"github.com/pecarchive/pecarchive/pec/smime"
	"github.com/pecarchive/pecarchive/services/archive"
	"github.com/pecarchive/pecarchive/services/archive/blob"
	"github.com/pecarchive/pecarchive/services/archive/blob/fsstore"
	"github.com/pecarchive/pecarchive/services/archive/merklelog"
	"github.com/pecarchive/pecarchive/tlog"
)

// fixture is an archive on the real PostgreSQL (a fresh schema) and a blob store that also
// keeps the log's checkpoints, signing with a key of its own and trusting prov's CA; every test
// of the package builds on one.
type fixture struct {
	pool   *pgxpool.Pool
	blobs  blob.Store
	log    *merklelog.Log
	vkey   string // the log's public key
	a      *archive.Archive
	prov   *pectest.Provider
	peer   *pectest.Provider // another provider of prov's CA
	verify *smime.Verifier
}

// newFixture makes a fixture on blobs (nil: a filesystem store in a temporary folder) with
// prov's CA (nil: a provider of seed 1), the archive's configuration edited by edit, if set.
func newFixture(t *testing.T, blobs blob.Store, prov *pectest.Provider, edit func(*archive.Config)) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{pool: testenv.PG(t), blobs: blobs, prov: prov}
	if f.blobs == nil {
		fs, err := fsstore.New(ctx, fsstore.Config{Root: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		f.blobs = fs
	}
	if err := archive.Migrate(ctx, f.pool); err != nil {
		t.Fatal(err)
	}
	skey, vkey, _ := tlog.GenerateKey(origin)
	signer, _ := tlog.NewSigner(skey)
	verifier, _ := tlog.NewVerifier(vkey)
	var err error
	f.log, err = merklelog.New(ctx, merklelog.Config{Pool: f.pool, Signer: signer, Verifier: verifier,
		Checkpoints: f.blobs.(merklelog.CheckpointStore)})
	if err != nil {
		t.Fatal(err)
	}
	f.vkey = vkey
	if f.prov == nil {
		if f.prov, err = pectest.NewProvider(1, nil); err != nil {
			t.Fatal(err)
		}
	}
	if f.peer, err = f.prov.Peer(nil); err != nil {
		t.Fatal(err)
	}
	f.verify, _ = smime.New(smime.Config{Anchors: smime.NewTrustStore(f.prov.CA.Root)})
	cfg := archive.Config{Pool: f.pool, Blobs: f.blobs, Log: f.log, Verifier: f.verify, CheckpointInterval: -1, CheckpointEvery: -1}
	if edit != nil {
		edit(&cfg)
	}
	if f.a, err = archive.New(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.a.Close(context.Background()) })
	return f
}

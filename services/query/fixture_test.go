package query_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/transparency-dev/formats/log"

	querypb "github.com/pecarchive/pecarchive/gen/pecarchive/query/v1"
	"github.com/pecarchive/pecarchive/internal/auth"
	"github.com/pecarchive/pecarchive/internal/auth/authtest"
	"github.com/pecarchive/pecarchive/internal/testenv"
	"github.com/pecarchive/pecarchive/pec/pectest"
	"github.com/pecarchive/pecarchive/pec/smime"
	"github.com/pecarchive/pecarchive/services/archive"
	"github.com/pecarchive/pecarchive/services/archive/blob/fsstore"
	"github.com/pecarchive/pecarchive/services/archive/catalog"
	"github.com/pecarchive/pecarchive/services/archive/merklelog"
	"github.com/pecarchive/pecarchive/services/archive/reader"
	"github.com/pecarchive/pecarchive/services/query"
	"github.com/pecarchive/pecarchive/tlog"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.CloseShared()
	os.Exit(code)
}

var (
	provOnce sync.Once
	provA    *pectest.Provider // the sender's provider
	provB    *pectest.Provider // the recipients' provider
	verifier *smime.Verifier
	provErr  error
)

func providers(t testing.TB) {
	t.Helper()
	provOnce.Do(func() {
		if provA, provErr = pectest.NewProvider(3, nil); provErr != nil {
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
}

// Tokens of the test credentials, one per role.
var tokens = map[auth.Role]string{}

const origin = "pecarchive.test/query"

// switchRecorder records through the archive, or fails while off is set.
type switchRecorder struct {
	a   *archive.Archive
	off atomic.Bool
	n   atomic.Int64 // records made
}

var errRecorderDown = errors.New("test: the archive refuses the record")

func (r *switchRecorder) RecordAccess(ctx context.Context, acc catalog.Access) (catalog.Access, error) {
	if r.off.Load() {
		return catalog.Access{}, errRecorderDown
	}
	rec, err := r.a.RecordAccess(ctx, acc)
	if err == nil {
		r.n.Add(1)
	}
	return rec, err
}

// fixture is the whole chain on real components: the archive (the writer) on PostgreSQL and a
// filesystem blob store, the reader on the read-only role pecarchive_query, the query service
// recording through the archive, and its gRPC server on loopback.
type fixture struct {
	pool   *pgxpool.Pool // the writer's
	roPool *pgxpool.Pool // the query service's, as pecarchive_query
	fs     *fsstore.Store
	log    *merklelog.Log
	vkey   string
	a      *archive.Archive
	rd     *reader.Reader
	rec    *switchRecorder
	svc    *query.Service
	srv    *query.Server
	addr   string
	ca     *authtest.CA
	caFile string
	dir    string
}

type fixtureOptions struct {
	mtls bool
}

func newFixture(t *testing.T, o fixtureOptions) *fixture {
	t.Helper()
	providers(t)
	ctx := context.Background()
	f := &fixture{dir: t.TempDir()}
	f.pool = testenv.PG(t)
	var err error
	if f.fs, err = fsstore.New(ctx, fsstore.Config{Root: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	if err := archive.Migrate(ctx, f.pool); err != nil {
		t.Fatal(err)
	}
	skey, vkey, err := tlog.GenerateKey(origin)
	if err != nil {
		t.Fatal(err)
	}
	f.vkey = vkey
	signer, _ := tlog.NewSigner(skey)
	logVerifier, _ := tlog.NewVerifier(vkey)
	if f.log, err = merklelog.New(ctx, merklelog.Config{Pool: f.pool, Signer: signer, Verifier: logVerifier, Checkpoints: f.fs}); err != nil {
		t.Fatal(err)
	}
	f.a, err = archive.New(ctx, archive.Config{Pool: f.pool, Blobs: f.fs, Log: f.log, Verifier: verifier,
		CheckpointInterval: -1, CheckpointEvery: -1, NoMigrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.a.Close(context.Background()) })

	// The query service reads as pecarchive_query, in read-only transactions.
	cfg := f.pool.Config().Copy()
	cfg.ConnConfig.RuntimeParams["role"] = "pecarchive_query"
	cfg.ConnConfig.RuntimeParams["default_transaction_read_only"] = "on"
	f.roPool = testenv.PGPool(t, cfg)
	if f.rd, err = reader.New(ctx, reader.Config{Pool: f.roPool, Blobs: f.fs}); err != nil {
		t.Fatal(err)
	}
	f.rec = &switchRecorder{a: f.a}
	if f.svc, err = query.New(ctx, query.Config{Reader: f.rd, Recorder: f.rec, LogKey: vkey}); err != nil {
		t.Fatal(err)
	}

	f.ca = authtest.NewCA(t, "query test CA")
	f.caFile = f.ca.WriteFile(t, f.dir, "ca")
	creds := auth.NewCredentials()
	for _, r := range auth.Roles {
		tok := "token-of-" + string(r)
		tokens[r] = tok
		if err := creds.AddToken(sha256.Sum256([]byte(tok)), auth.Principal{Name: "as-" + string(r), Roles: []auth.Role{r}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := creds.AddCert("dns:segreteria.ordine.test", auth.Principal{Name: "segreteria-mtls", Roles: []auth.Role{auth.RoleBackoffice}}); err != nil {
		t.Fatal(err)
	}
	authz, err := auth.NewAuthorizer(creds, query.DefaultPolicy(), &auth.Options{Public: query.PublicMethods()})
	if err != nil {
		t.Fatal(err)
	}
	scfg := query.ServerConfig{Service: f.svc, Authorizer: authz}
	if o.mtls {
		certFile, keyFile := f.ca.IssueFiles(t, f.dir, "server", authtest.Localhost)
		if scfg.TLS, err = (auth.ServerTLS{CertFile: certFile, KeyFile: keyFile, ClientCAFile: f.caFile, ClientCertOptional: true}).Config(); err != nil {
			t.Fatal(err)
		}
	}
	if f.srv, err = query.NewServer(scfg); err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = lis.Addr().String()
	go f.srv.Serve(lis)
	t.Cleanup(f.srv.Stop)
	return f
}

// client dials the service with the token of role ("" for none).
func (f *fixture) client(t testing.TB, role auth.Role) querypb.EvidenceServiceClient {
	t.Helper()
	opts := query.DialOptions{}
	if role != "" {
		opts.Token = tokens[role]
	}
	cc, c, err := query.Dial(f.addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return c
}

func (f *fixture) store(t testing.TB, g *pectest.Generated) archive.Record {
	t.Helper()
	rec, err := f.a.Store(context.Background(), g.Bytes, archive.Source{Mailbox: "ordine@pec.ordine.example.it", Folder: "INBOX", Path: g.Name})
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func (f *fixture) publish(t testing.TB) log.Checkpoint {
	t.Helper()
	signed, err := f.a.Publish(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	cp, err := tlog.VerifyCheckpoint(signed, f.vkey)
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

// accesses returns the access rows recorded so far.
func (f *fixture) accesses(t testing.TB) []catalog.Access {
	t.Helper()
	var out []catalog.Access
	if err := catalog.New(f.pool).ScanAccesses(context.Background(), 0, func(a catalog.Access) error {
		out = append(out, a)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func gen(t testing.TB) func(*pectest.Generated, error) *pectest.Generated {
	return func(g *pectest.Generated, err error) *pectest.Generated {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
}

// conversation is one notice to several members, each with a different fate.
type conversation struct {
	orig *pectest.Original
	gens map[string]*pectest.Generated // by name
}

// Recipients of newConversation and what befalls each.
const (
	rDelivered = "consegnato@pec.esempio.it"  // a good delivery receipt
	rForged    = "falsificato@pec.esempio.it" // a delivery receipt signed by another key
	rTampered  = "manomesso@pec.esempio.it"   // a delivery receipt changed after signing
	rRogue     = "abusivo@pec.esempio.it"     // a delivery receipt signed under a look-alike root
	rExpired   = "scaduto@pec.esempio.it"     // a delivery receipt signed with an expired certificate
	rNotDeliv  = "inesistente@pec.esempio.it" // a non-delivery notice
	rPending   = "in-attesa@pec.esempio.it"   // nothing yet
)

func newConversation(t *testing.T, subject, msgid string) *conversation {
	t.Helper()
	g := gen(t)
	o, err := provA.Original(&pectest.Original{Subject: subject, MessageID: msgid,
		To: []string{rDelivered, rForged, rTampered, rRogue, rExpired, rNotDeliv, rPending}})
	if err != nil {
		t.Fatal(err)
	}
	c := &conversation{orig: o, gens: map[string]*pectest.Generated{}}
	c.gens["acceptance"] = g(provA.Acceptance(pectest.Params{Original: o}))
	c.gens["delivered"] = g(provB.Delivery(pectest.Params{Original: o, Recipient: rDelivered, ReceiptType: "completa"}))
	defect := func(d pectest.Defect, rcpt string) *pectest.Generated {
		p, err := provB.With(func(op *pectest.Options) { op.Defect = d })
		if err != nil {
			t.Fatal(err)
		}
		return g(p.Delivery(pectest.Params{Original: o, Recipient: rcpt, ReceiptType: "sintetica"}))
	}
	c.gens["forged"] = defect(pectest.DefectForged, rForged)
	c.gens["rogue"] = defect(pectest.DefectUntrusted, rRogue)
	c.gens["expired"] = defect(pectest.DefectExpired, rExpired)
	good := g(provB.Delivery(pectest.Params{Original: o, Recipient: rTampered, ReceiptType: "sintetica"}))
	c.gens["tampered"] = g(pectest.Damage(good, pectest.FailureTampered))
	c.gens["non-delivery"] = g(provB.NonDelivery(pectest.Params{Original: o, Recipient: rNotDeliv}))
	return c
}

func (f *fixture) storeAll(t *testing.T, c *conversation) map[string]archive.Record {
	t.Helper()
	out := map[string]archive.Record{}
	if _, err := f.a.Store(context.Background(), c.orig.Raw, archive.Source{Mailbox: "ordine", Folder: "Sent", Path: "orig"}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"acceptance", "delivered", "forged", "rogue", "expired", "tampered", "non-delivery"} {
		out[name] = f.store(t, c.gens[name])
	}
	return out
}

func msgName(i int) string { return fmt.Sprintf("avviso-%d@pec.ordine.example.it", i) }

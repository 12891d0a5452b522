package grpcserver_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	archivev1 "github.com/pecarchive/pecarchive/gen/pecarchive/archive/v1"
	"github.com/pecarchive/pecarchive/internal/auth"
	"github.com/pecarchive/pecarchive/internal/auth/authtest"
	"github.com/pecarchive/pecarchive/pec"
	"github.com/pecarchive/pecarchive/services/archive"
	"github.com/pecarchive/pecarchive/services/archive/archiveclient"
	"github.com/pecarchive/pecarchive/services/archive/blob"
	"github.com/pecarchive/pecarchive/services/archive/catalog"
	"github.com/pecarchive/pecarchive/services/archive/grpcserver"
	"github.com/pecarchive/pecarchive/services/archive/reader"
)

// fakeArchive stores records in memory. Store fails with the queued errors first.
type fakeArchive struct {
	mu      sync.Mutex
	records map[[32]byte]archive.Record
	fail    []error       // errors returned by the next Store calls, in order
	always  error         // when set, every Store and Get fails with it
	gate    chan struct{} // when set, Store waits for it (after counting the call)
	calls   int
	maxCap  int // largest cap(raw) seen
	sources []archive.Source
	access  []catalog.Access // recorded accesses
}

func (f *fakeArchive) RecordAccess(ctx context.Context, acc catalog.Access) (catalog.Access, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.always != nil {
		return catalog.Access{}, f.always
	}
	if err := acc.Check(); err != nil {
		return catalog.Access{}, fmt.Errorf("fake: %w: %w", archive.ErrInvalid, err)
	}
	acc.LeafIndex, acc.At = uint64(100+len(f.access)), time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	f.access = append(f.access, acc)
	return acc, nil
}

func newFakeArchive() *fakeArchive {
	return &fakeArchive{records: map[[32]byte]archive.Record{}}
}

func (f *fakeArchive) Store(ctx context.Context, raw []byte, src archive.Source) (archive.Record, error) {
	f.mu.Lock()
	f.calls++
	f.maxCap = max(f.maxCap, cap(raw))
	gate := f.gate
	var err error
	if f.always != nil {
		err = f.always
	} else if len(f.fail) > 0 {
		err, f.fail = f.fail[0], f.fail[1:]
	}
	f.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return archive.Record{}, ctx.Err()
		}
	}
	if err != nil {
		return archive.Record{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sources = append(f.sources, src)
	sum := sha256.Sum256(raw)
	if rec, ok := f.records[sum]; ok {
		rec.New = false
		return rec, nil
	}
	rec := archive.Record{Message: catalog.Message{
		SHA256: sum, Size: int64(len(raw)), Kind: pec.KindAvvenutaConsegna, ReceiptType: pec.ReceiptCompleta,
		Verdict: catalog.Verdict{Present: true, Valid: true, Trusted: true, Digest: "sha256",
			Signer: "CN=posta-certificata@pec.example.it", SignerEmail: "posta-certificata@pec.example.it",
			SignedAt: time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC), VerifiedAt: time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)},
		PECID: "opec.20240301.x@pec.example.it", OrigMsgID: "orig@example.it", Sender: "a@pec.example.it",
		Recipients: []string{"b@pec.example.it", "c@example.it"}, RecipientTypes: []string{"certificato", "esterno"},
		DaticertTime: time.Date(2024, 3, 1, 11, 0, 0, 0, time.FixedZone("", 3600)),
		LeafIndex:    uint64(len(f.records)),
	}, New: true}
	f.records[sum] = rec
	return rec, nil
}

// Get is the reader's Get over the same records (see fakeReader).
func (f *fakeArchive) Get(ctx context.Context, sum [32]byte) (reader.Record, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.always != nil {
		return reader.Record{}, f.always
	}
	rec, ok := f.records[sum]
	if !ok {
		return reader.Record{}, fmt.Errorf("fake: %x: %w", sum[:4], reader.ErrNotFound)
	}
	return reader.Record{Message: rec.Message,
		Sources: []catalog.Source{{Mailbox: "m", Folder: "INBOX", UID: 1, FirstSeen: time.Unix(1e9, 0)}, {Path: "postacert.eml", Parent: sum}}}, nil
}

// fakeReader reads the fake archive's records and a fake log.
type fakeReader struct {
	*fakeArchive
	*fakeLog
}

func (f *fakeArchive) set(fn func(f *fakeArchive)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeArchive) stats() (calls, maxCap int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls, f.maxCap
}

const (
	ingestToken   = "ingest-token"
	readerToken   = "reader-token"
	adminToken    = "admin-token"
	recorderToken = "recorder-token"
)

type env struct {
	addr    string
	srv     *grpcserver.Server
	archive *fakeArchive
	dir     string
	ca      *authtest.CA
	caFile  string
}

type envOptions struct {
	cfg      grpcserver.Config // Authorizer, TLS and (when nil) Archive and Reader filled in by newEnv
	policy   auth.Policy       // default grpcserver.DefaultPolicy()
	mtls     bool
	log      *fakeLog // the log of the default reader (default: an empty one)
	noReader bool     // serve without a Reader
}

func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	e := &env{archive: newFakeArchive(), dir: t.TempDir(), ca: authtest.NewCA(t, "test CA")}
	e.caFile = e.ca.WriteFile(t, e.dir, "ca")
	creds, err := auth.ParseCredentials(fmt.Appendf(nil, `
token %s ingester ingest
token %s reader reader
token %s admin admin
token %s query recorder
cert dns:ingest.pecarchive.test ingest-mtls ingest
`, auth.HashToken(ingestToken), auth.HashToken(readerToken), auth.HashToken(adminToken), auth.HashToken(recorderToken)))
	if err != nil {
		t.Fatal(err)
	}
	if o.policy == nil {
		o.policy = grpcserver.DefaultPolicy()
	}
	authz, err := auth.NewAuthorizer(creds, o.policy, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := o.cfg
	if cfg.Archive == nil {
		cfg.Archive = e.archive
	}
	if cfg.Reader == nil && !o.noReader {
		if o.log == nil {
			o.log = &fakeLog{}
		}
		cfg.Reader = fakeReader{e.archive, o.log}
	}
	cfg.Authorizer = authz
	if o.mtls {
		certFile, keyFile := e.ca.IssueFiles(t, e.dir, "server", authtest.Localhost)
		cfg.TLS, err = auth.ServerTLS{CertFile: certFile, KeyFile: keyFile, ClientCAFile: e.caFile}.Config()
		if err != nil {
			t.Fatal(err)
		}
	}
	srv, err := grpcserver.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = lis.Addr().String()
	e.srv = srv
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return e
}

func (e *env) client(t testing.TB, token string) archivev1.ArchiveServiceClient {
	t.Helper()
	cc, c, err := archiveclient.Dial(e.addr, archiveclient.DialOptions{Token: token})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return c
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

var src = &archivev1.Source{Mailbox: "ufficio@pec.example.it", Folder: "INBOX", UidValidity: 7, Uid: 42,
	InternalDate: timestamppb.New(time.Date(2024, 3, 1, 10, 0, 1, 0, time.UTC))}

var once = &archiveclient.Options{MaxAttempts: 1}

func TestStoreAndGetRecord(t *testing.T) {
	e := newEnv(t, envOptions{})
	ingest := e.client(t, ingestToken)
	raw := bytes.Repeat([]byte("Return-Path: <x@pec.example.it>\r\n"), 100_000) // 3.4 MB: four chunks
	rec, err := archiveclient.StoreBytes(ctxT(t), ingest, raw, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	if !bytes.Equal(rec.GetSha256(), sum[:]) || rec.GetSize() != int64(len(raw)) || !rec.GetNew() ||
		rec.GetKind() != "avvenuta-consegna" || rec.GetReceiptType() != "completa" ||
		!rec.GetVerdict().GetTrusted() || rec.GetVerdict().GetSignedAt().AsTime().Year() != 2024 ||
		rec.GetPecId() != "opec.20240301.x@pec.example.it" || rec.GetDaticertTime() != "2024-03-01T11:00:00+01:00" ||
		len(rec.GetRecipients()) != 2 || rec.GetRecipients()[1].GetType() != "esterno" || rec.GetPostacertSha256() != nil {
		t.Errorf("record %v", rec)
	}
	if _, maxCap := e.archive.stats(); maxCap != len(raw) {
		t.Errorf("buffer capacity %d for a declared %d-byte message", maxCap, len(raw))
	}
	e.archive.mu.Lock()
	if got := e.archive.sources[0]; got.Mailbox != src.Mailbox || got.Folder != "INBOX" || got.UIDValidity != 7 || got.UID != 42 ||
		!got.InternalDate.Equal(src.InternalDate.AsTime()) {
		t.Errorf("source %+v", got)
	}
	e.archive.mu.Unlock()

	rec, err = archiveclient.StoreBytes(ctxT(t), ingest, raw, &archivev1.Source{Path: "/import/x.eml"}, nil)
	if err != nil || rec.GetNew() {
		t.Errorf("second store: new=%v, %v", rec.GetNew(), err)
	}

	got, err := e.client(t, readerToken).GetRecord(ctxT(t), &archivev1.GetRecordRequest{Sha256: sum[:]})
	if err != nil || !bytes.Equal(got.GetRecord().GetSha256(), sum[:]) || got.GetRecord().GetNew() ||
		len(got.GetRecord().GetSources()) != 2 || !bytes.Equal(got.GetRecord().GetSources()[1].GetParentSha256(), sum[:]) ||
		got.GetRecord().GetSources()[0].GetParentSha256() != nil || got.GetRecord().GetSources()[0].GetFirstSeen().GetSeconds() != 1e9 {
		t.Errorf("GetRecord: %v, %v", got, err)
	}
	other := sha256.Sum256([]byte("other"))
	_, err = e.client(t, adminToken).GetRecord(ctxT(t), &archivev1.GetRecordRequest{Sha256: other[:]})
	if status.Code(err) != codes.NotFound {
		t.Errorf("GetRecord of an unknown message: %v, want NotFound", err)
	}
	_, err = e.client(t, readerToken).GetRecord(ctxT(t), &archivev1.GetRecordRequest{Sha256: sum[:5]})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("GetRecord with a short sha256: %v, want InvalidArgument", err)
	}
}

func TestAuthorization(t *testing.T) {
	e := newEnv(t, envOptions{})
	raw := []byte("Subject: x\r\n\r\nx\r\n")
	for _, tc := range []struct {
		token string
		store codes.Code
		get   codes.Code
	}{
		{ingestToken, codes.OK, codes.OK}, // GetRecord: ingest confirms before an after_archive policy
		{readerToken, codes.PermissionDenied, codes.OK},
		{adminToken, codes.OK, codes.OK},
		{"", codes.Unauthenticated, codes.Unauthenticated},
		{"wrong", codes.Unauthenticated, codes.Unauthenticated},
	} {
		c := e.client(t, tc.token)
		_, err := archiveclient.StoreBytes(ctxT(t), c, raw, src, once)
		if status.Code(err) != tc.store {
			t.Errorf("Store with %q: %v, want %v", tc.token, err, tc.store)
		}
		sum := sha256.Sum256(raw)
		_, err = c.GetRecord(ctxT(t), &archivev1.GetRecordRequest{Sha256: sum[:]})
		if status.Code(err) != tc.get {
			t.Errorf("GetRecord with %q: %v, want %v", tc.token, err, tc.get)
		}
	}
	if calls, _ := e.archive.stats(); calls != 2 {
		t.Errorf("archive saw %d Store calls, want 2 (ingest, admin)", calls)
	}
}

func TestMethodMissingFromPolicy(t *testing.T) {
	p := grpcserver.DefaultPolicy()
	delete(p, archivev1.ArchiveService_GetRecord_FullMethodName)
	e := newEnv(t, envOptions{policy: p})
	sum := sha256.Sum256(nil)
	_, err := e.client(t, adminToken).GetRecord(ctxT(t), &archivev1.GetRecordRequest{Sha256: sum[:]})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("GetRecord missing from the policy: %v, want PermissionDenied", err)
	}
	if _, err := archiveclient.StoreBytes(ctxT(t), e.client(t, adminToken), []byte("x"), src, once); err != nil {
		t.Errorf("Store still allowed: %v", err)
	}
}

func TestMTLS(t *testing.T) {
	e := newEnv(t, envOptions{mtls: true})
	dial := func(ca *authtest.CA, dns string) archivev1.ArchiveServiceClient {
		certFile, keyFile := ca.IssueFiles(t, t.TempDir(), "client", authtest.Leaf{CommonName: dns, DNSNames: []string{dns}, Client: true})
		cfg, err := auth.ClientTLS{CAFile: e.caFile, CertFile: certFile, KeyFile: keyFile}.Config()
		if err != nil {
			t.Fatal(err)
		}
		cc, c, err := archiveclient.Dial(e.addr, archiveclient.DialOptions{TLS: cfg})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		return c
	}
	raw := []byte("Subject: mtls\r\n\r\nbody\r\n")
	if _, err := archiveclient.StoreBytes(ctxT(t), dial(e.ca, "ingest.pecarchive.test"), raw, src, once); err != nil {
		t.Errorf("Store with the ingest certificate: %v", err)
	}
	if _, err := archiveclient.StoreBytes(ctxT(t), dial(e.ca, "stranger.pecarchive.test"), raw, src, once); status.Code(err) != codes.Unauthenticated {
		t.Errorf("Store with an unlisted certificate: %v, want Unauthenticated", err)
	}
	if _, err := archiveclient.StoreBytes(ctxT(t), dial(authtest.NewCA(t, "other CA"), "ingest.pecarchive.test"), raw, src, once); status.Code(err) != codes.Unavailable {
		t.Errorf("Store with a certificate from an unknown CA: %v, want Unavailable (handshake refused)", err)
	}
	if calls, _ := e.archive.stats(); calls != 1 {
		t.Errorf("archive saw %d Store calls, want 1", calls)
	}
	// Tokens work over TLS too, with a client certificate (required by this server).
	certFile, keyFile := e.ca.IssueFiles(t, t.TempDir(), "anon", authtest.Leaf{CommonName: "anon", Client: true})
	cfg, err := auth.ClientTLS{CAFile: e.caFile, CertFile: certFile, KeyFile: keyFile}.Config()
	if err != nil {
		t.Fatal(err)
	}
	cc, c, err := archiveclient.Dial(e.addr, archiveclient.DialOptions{TLS: cfg, Token: ingestToken})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if _, err := archiveclient.StoreBytes(ctxT(t), c, raw, src, once); err != nil {
		t.Errorf("Store with a token over mTLS: %v", err)
	}
}

// rawStore sends the given requests on a Store stream and returns the outcome.
func rawStore(t *testing.T, c archivev1.ArchiveServiceClient, reqs ...*archivev1.StoreRequest) (*archivev1.StoreResponse, error) {
	t.Helper()
	s, err := c.Store(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reqs {
		if err := s.Send(r); err != nil {
			break // the server ended the stream; CloseAndRecv has its status
		}
	}
	return s.CloseAndRecv()
}

func header(src *archivev1.Source, sum []byte, size *int64) *archivev1.StoreRequest {
	return &archivev1.StoreRequest{Part: &archivev1.StoreRequest_Header{Header: &archivev1.StoreHeader{Source: src, ExpectedSha256: sum, ExpectedSize: size}}}
}

func chunk(b []byte) *archivev1.StoreRequest {
	return &archivev1.StoreRequest{Part: &archivev1.StoreRequest_Chunk{Chunk: b}}
}

func i64(n int) *int64 { v := int64(n); return &v }

func TestStoreStream(t *testing.T) {
	const limit = 3 << 20
	e := newEnv(t, envOptions{cfg: grpcserver.Config{MaxMessageSize: limit}})
	c := e.client(t, ingestToken)
	mib := bytes.Repeat([]byte{'a'}, 1<<20)
	body := []byte("Subject: x\r\n\r\nbody\r\n")
	sum := sha256.Sum256(body)
	bad := sha256.Sum256([]byte("something else"))
	for _, tc := range []struct {
		name string
		reqs []*archivev1.StoreRequest
		want codes.Code
	}{
		{"ok", []*archivev1.StoreRequest{header(src, sum[:], i64(len(body))), chunk(body[:5]), chunk(body[5:])}, codes.OK},
		{"ok undeclared", []*archivev1.StoreRequest{header(src, nil, nil), chunk(body)}, codes.OK},
		{"ok at the limit", []*archivev1.StoreRequest{header(src, nil, i64(limit)), chunk(mib), chunk(mib), chunk(mib)}, codes.OK},
		{"no requests", nil, codes.InvalidArgument},
		{"chunk first", []*archivev1.StoreRequest{chunk(body)}, codes.InvalidArgument},
		{"header twice", []*archivev1.StoreRequest{header(src, nil, nil), chunk(body), header(src, nil, nil)}, codes.InvalidArgument},
		{"no source", []*archivev1.StoreRequest{header(nil, nil, nil), chunk(body)}, codes.InvalidArgument},
		{"empty source", []*archivev1.StoreRequest{header(&archivev1.Source{Folder: "INBOX"}, nil, nil), chunk(body)}, codes.InvalidArgument},
		{"bad internal date", []*archivev1.StoreRequest{header(&archivev1.Source{Path: "x", InternalDate: &timestamppb.Timestamp{Nanos: -1}}, nil, nil), chunk(body)}, codes.InvalidArgument},
		{"short sha256", []*archivev1.StoreRequest{header(src, sum[:31], nil), chunk(body)}, codes.InvalidArgument},
		{"zero size", []*archivev1.StoreRequest{header(src, nil, i64(0))}, codes.InvalidArgument},
		{"empty message", []*archivev1.StoreRequest{header(src, nil, nil)}, codes.InvalidArgument},
		{"empty chunk", []*archivev1.StoreRequest{header(src, nil, nil), chunk(nil)}, codes.InvalidArgument},
		{"chunk over 1 MiB", []*archivev1.StoreRequest{header(src, nil, nil), chunk(append(mib, 'b'))}, codes.InvalidArgument},
		{"declared over limit", []*archivev1.StoreRequest{header(src, nil, i64(limit+1)), chunk(body)}, codes.ResourceExhausted},
		{"stream over limit", []*archivev1.StoreRequest{header(src, nil, nil), chunk(mib), chunk(mib), chunk(mib), chunk(body)}, codes.ResourceExhausted},
		{"sha256 mismatch", []*archivev1.StoreRequest{header(src, bad[:], nil), chunk(body)}, codes.DataLoss},
		{"fewer bytes than declared", []*archivev1.StoreRequest{header(src, nil, i64(len(body)+1)), chunk(body)}, codes.DataLoss},
		{"more bytes than declared", []*archivev1.StoreRequest{header(src, nil, i64(len(body)-1)), chunk(body)}, codes.DataLoss},
	} {
		before, _ := e.archive.stats()
		resp, err := rawStore(t, c, tc.reqs...)
		if status.Code(err) != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
			continue
		}
		after, maxCap := e.archive.stats()
		if tc.want != codes.OK && after != before {
			t.Errorf("%s: the archive was called", tc.name)
		}
		if tc.want == codes.OK && resp.GetRecord().GetSize() == 0 {
			t.Errorf("%s: record %v", tc.name, resp.GetRecord())
		}
		if maxCap > limit {
			t.Errorf("%s: buffered %d bytes, over the limit %d", tc.name, maxCap, limit)
		}
	}
}

func TestErrorMapping(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.client(t, adminToken)
	for _, tc := range []struct {
		err  error
		want codes.Code
	}{
		{fmt.Errorf("archive: empty: %w", archive.ErrInvalid), codes.InvalidArgument},
		{fmt.Errorf("archive: pg: %w", archive.ErrUnavailable), codes.Unavailable},
		{fmt.Errorf("%w: s3: %w", archive.ErrUnavailable, blob.ErrUnavailable), codes.Unavailable},
		{fmt.Errorf("%w: %w", archive.ErrIntegrity, blob.ErrIntegrity), codes.DataLoss},
		{fmt.Errorf("archive: %w", archive.ErrNotFound), codes.NotFound},
		// The reader's kinds.
		{fmt.Errorf("reader: %w", reader.ErrInvalid), codes.InvalidArgument},
		{fmt.Errorf("reader: %w", reader.ErrNotFound), codes.NotFound},
		{fmt.Errorf("reader: %w", reader.ErrOutOfRange), codes.OutOfRange},
		{fmt.Errorf("reader: %w", reader.ErrIntegrity), codes.DataLoss},
		{fmt.Errorf("reader: %w", reader.ErrSchema), codes.FailedPrecondition},
		{fmt.Errorf("reader: %w", reader.ErrUnavailable), codes.Unavailable},
		// A timeout that is not the RPC's own is a backing store's: retry.
		{context.DeadlineExceeded, codes.Unavailable},
		{context.Canceled, codes.Canceled},
		{errors.New("archive: bug"), codes.Internal},
	} {
		e.archive.set(func(f *fakeArchive) { f.always = tc.err })
		_, err := archiveclient.StoreBytes(ctxT(t), c, []byte("x"), src, once)
		if status.Code(err) != tc.want {
			t.Errorf("Store failing with %v: %v, want %v", tc.err, err, tc.want)
		}
		sum := sha256.Sum256(nil)
		_, err = c.GetRecord(ctxT(t), &archivev1.GetRecordRequest{Sha256: sum[:]})
		if status.Code(err) != tc.want {
			t.Errorf("GetRecord failing with %v: %v, want %v", tc.err, err, tc.want)
		}
	}
}

func TestStoreBytesRetries(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.client(t, ingestToken)
	fast := &archiveclient.Options{MaxAttempts: 4, InitialBackoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond, ChunkSize: 7}
	raw := []byte("Subject: retry\r\n\r\nbody\r\n")

	e.archive.set(func(f *fakeArchive) {
		f.fail = []error{archive.ErrUnavailable, fmt.Errorf("%w: s3: %w", archive.ErrUnavailable, blob.ErrUnavailable)}
	})
	rec, err := archiveclient.StoreBytes(ctxT(t), c, raw, src, fast)
	if err != nil || !rec.GetNew() {
		t.Fatalf("after two Unavailable: %v, %v", rec, err)
	}
	if calls, _ := e.archive.stats(); calls != 3 {
		t.Errorf("calls = %d, want 3", calls)
	}

	e.archive.set(func(f *fakeArchive) { f.always = archive.ErrUnavailable })
	_, err = archiveclient.StoreBytes(ctxT(t), c, raw, src, fast)
	if status.Code(err) != codes.Unavailable {
		t.Errorf("always Unavailable: %v", err)
	}
	if calls, _ := e.archive.stats(); calls != 3+4 {
		t.Errorf("calls = %d, want 7 (bounded by MaxAttempts)", calls)
	}

	e.archive.set(func(f *fakeArchive) { f.always = archive.ErrInvalid })
	_, err = archiveclient.StoreBytes(ctxT(t), c, raw, src, fast)
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("invalid: %v", err)
	}
	if calls, _ := e.archive.stats(); calls != 8 {
		t.Errorf("calls = %d, want 8 (InvalidArgument is not retried)", calls)
	}

	// The context bounds the retries.
	e.archive.set(func(f *fakeArchive) { f.always = archive.ErrUnavailable })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = archiveclient.StoreBytes(ctx, c, raw, src, &archiveclient.Options{MaxAttempts: 100, InitialBackoff: 20 * time.Millisecond})
	if err == nil || time.Since(start) > 5*time.Second {
		t.Errorf("cancelled retries: %v after %v", err, time.Since(start))
	}
}

func TestBufferBudget(t *testing.T) {
	const msg = 1 << 20
	e := newEnv(t, envOptions{cfg: grpcserver.Config{MaxMessageSize: msg, MaxBufferedBytes: 2 * msg}})
	c := e.client(t, ingestToken)
	gate := make(chan struct{})
	e.archive.set(func(f *fakeArchive) { f.gate = gate })
	raw := func(i int) []byte { return bytes.Repeat([]byte{byte('a' + i)}, msg) }

	// Two declared 1 MiB uploads fill the budget and wait in the archive.
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range 2 {
		wg.Go(func() { _, errs[i] = archiveclient.StoreBytes(ctxT(t), c, raw(i), src, once) })
	}
	waitCalls(t, e.archive, 2)

	// A third cannot reserve its buffer before its deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	_, err := archiveclient.StoreBytes(ctx, c, raw(2), src, once)
	cancel()
	if status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("third upload: %v, want DeadlineExceeded", err)
	}
	// With a longer deadline it waits for the budget and succeeds once the others finish.
	wg.Go(func() { _, errs[2] = archiveclient.StoreBytes(ctxT(t), c, raw(2), src, once) })
	time.Sleep(50 * time.Millisecond)
	if calls, _ := e.archive.stats(); calls != 2 {
		t.Errorf("the third upload reached the archive before the budget was freed")
	}
	close(gate)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("upload %d: %v", i, err)
		}
	}
}

func waitCalls(t *testing.T, f *fakeArchive, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if calls, _ := f.stats(); calls >= n {
			return
		}
	}
	t.Fatalf("the archive did not see %d calls", n)
}

func TestStalledUpload(t *testing.T) {
	const msg = 1 << 20
	e := newEnv(t, envOptions{cfg: grpcserver.Config{MaxMessageSize: msg, MaxBufferedBytes: msg, MaxUploadTime: 200 * time.Millisecond}})
	c := e.client(t, ingestToken)
	// Reserve the whole budget, send a chunk, then stall without half-closing (the client sets
	// no deadline).
	s, err := c.Store(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(header(src, nil, i64(msg))); err != nil {
		t.Fatal(err)
	}
	if err := s.Send(chunk([]byte("partial"))); err != nil {
		t.Fatal(err)
	}
	var resp archivev1.StoreResponse
	err = s.RecvMsg(&resp) // waits for the server to give up
	if status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("stalled upload: %v, want DeadlineExceeded", err)
	}
	// Its reservation is returned: a new upload gets the budget.
	if _, err := archiveclient.StoreBytes(ctxT(t), c, []byte("after"), src, once); err != nil {
		t.Errorf("upload after a stalled one: %v", err)
	}
}

// RecordAccess: the recorder role only; the caller's principal is the recorder; the SHA-256s are
// checked; the archive's errors keep their kinds.
func TestRecordAccess(t *testing.T) {
	e := newEnv(t, envOptions{})
	a, b := sha256.Sum256([]byte("a")), sha256.Sum256([]byte("b"))
	req := &archivev1.RecordAccessRequest{Principal: "segreteria", Auth: "token", Method: "/pecarchive.query.v1.EvidenceService/ProveDelivery",
		Selector: "msgid=x@y", Returned: [][]byte{a[:], b[:]}}
	resp, err := e.client(t, recorderToken).RecordAccess(ctxT(t), req)
	if err != nil || resp.GetLeafIndex() != 100 || resp.GetAt().AsTime().Year() != 2024 {
		t.Fatalf("RecordAccess: %v, %v", resp, err)
	}
	e.archive.mu.Lock()
	got := e.archive.access[0]
	e.archive.mu.Unlock()
	if got.Principal != "segreteria" || got.Recorder != "query" || len(got.Returned) != 2 || got.Returned[1] != b || got.Selector != "msgid=x@y" {
		t.Errorf("recorded %+v", got)
	}
	for _, tok := range []string{readerToken, ingestToken} {
		if _, err := e.client(t, tok).RecordAccess(ctxT(t), req); status.Code(err) != codes.PermissionDenied {
			t.Errorf("RecordAccess with %s: %v, want PermissionDenied", tok, err)
		}
	}
	c := e.client(t, recorderToken)
	for name, r := range map[string]*archivev1.RecordAccessRequest{
		"short sha256": {Principal: "p", Method: "/m", Returned: [][]byte{a[:31]}},
		"no principal": {Method: "/m"},
		"too many":     {Principal: "p", Method: "/m", Returned: make([][]byte, catalog.MaxAccessReturned+1)},
	} {
		if _, err := c.RecordAccess(ctxT(t), r); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}
	e.archive.set(func(f *fakeArchive) { f.always = archive.ErrUnavailable })
	if _, err := c.RecordAccess(ctxT(t), req); status.Code(err) != codes.Unavailable {
		t.Errorf("archive unavailable: %v", err)
	}
}

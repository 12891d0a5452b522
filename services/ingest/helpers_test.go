package ingest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/client"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pecarchive/pecarchive/internal/testenv"
	"github.com/pecarchive/pecarchive/pec/pectest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.CloseShared()
	os.Exit(code)
}

// fakeArchiver is an in-memory Archiver for the unit tests of this package (the tests with the
// real archive are in cmd/pecarchive). It records every Store and checks that no message is in
// flight twice at once.
type fakeArchiver struct {
	mu       sync.Mutex
	stored   map[[32]byte]Stored
	sources  map[[32]byte][]Source
	calls    int
	inflight map[[32]byte]int
	overlap  int // Store calls that found the same bytes already in flight
	// down makes Store fail with ErrUnavailable while it returns true.
	down func(src Source) bool
	// refuse makes Store refuse with ErrRefused.
	refuse func(raw []byte) bool
	// hide makes Lookup answer ErrNotArchived for that sum.
	hide map[[32]byte]bool
	// delay is slept inside every Store call.
	delay time.Duration
}

func newFakeArchiver() *fakeArchiver {
	return &fakeArchiver{stored: map[[32]byte]Stored{}, sources: map[[32]byte][]Source{}, inflight: map[[32]byte]int{}, hide: map[[32]byte]bool{}}
}

func (f *fakeArchiver) Store(ctx context.Context, raw []byte, src Source) (Stored, error) {
	sum := sha256.Sum256(raw)
	f.mu.Lock()
	f.calls++
	if f.inflight[sum] > 0 {
		f.overlap++
	}
	f.inflight[sum]++
	down, refuse, delay := f.down, f.refuse, f.delay
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.inflight[sum]--
		f.mu.Unlock()
	}()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return Stored{}, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
		}
	}
	if down != nil && down(src) {
		return Stored{}, fmt.Errorf("%w: fake archive down", ErrUnavailable)
	}
	if refuse != nil && refuse(raw) {
		return Stored{}, fmt.Errorf("%w: fake: over the size limit", ErrRefused)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sources[sum] = append(f.sources[sum], src)
	if s, ok := f.stored[sum]; ok {
		s.New = false
		return s, nil
	}
	s := Stored{SHA256: sum, Size: int64(len(raw)), New: true, LeafIndex: uint64(len(f.stored)), Kind: "not-pec"}
	f.stored[sum] = s
	return s, nil
}

func (f *fakeArchiver) Lookup(ctx context.Context, sum [32]byte) (Stored, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.stored[sum]
	if !ok || f.hide[sum] {
		return Stored{}, fmt.Errorf("%w: %x", ErrNotArchived, sum[:8])
	}
	s.New = false
	return s, nil
}

func (f *fakeArchiver) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.stored)
}

func (f *fakeArchiver) has(raw []byte) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.stored[sha256.Sum256(raw)]
	return ok
}

// env is one test's world: a user of the shared Dovecot, a PostgreSQL schema, a fake archive.
type env struct {
	t    *testing.T
	d    *testenv.Dovecot
	pool *pgxpool.Pool
	arc  *fakeArchiver
	user string
	pass string
	dir  string
	logs *syncBuffer
}

var userSeq struct {
	sync.Mutex
	n int
}

func newEnv(t *testing.T) *env {
	t.Helper()
	d := testenv.SharedDovecot(t)
	userSeq.Lock()
	userSeq.n++
	user := fmt.Sprintf("u%d-%s", userSeq.n, strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())))
	userSeq.Unlock()
	if len(user) > 60 {
		user = user[:60]
	}
	e := &env{t: t, d: d, pool: testenv.PG(t), arc: newFakeArchiver(), user: user, pass: "pw-" + user, dir: t.TempDir(), logs: &syncBuffer{}}
	d.AddUser(t, user, e.pass, "")
	if err := os.WriteFile(filepath.Join(e.dir, "pass"), []byte(e.pass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// mailbox returns a mailbox entry for the env's user over implicit TLS, trusting the test CA.
func (e *env) mailbox(name string) Mailbox {
	m := Mailbox{Name: name, Host: "127.0.0.1", Port: e.d.TLSPort, TLS: TLSImplicit, CAFile: e.d.CAFile,
		Username: e.user, PasswordFile: filepath.Join(e.dir, "pass")}
	if err := m.check(); err != nil {
		e.t.Fatal(err)
	}
	return m
}

func testOptions() *Options {
	return &Options{LeaseTTL: 3 * time.Second, PollInterval: 200 * time.Millisecond, StatusInterval: time.Second,
		BackoffMin: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond, AuthBackoff: time.Minute,
		StoreBackoffMax: 200 * time.Millisecond, CommandTimeout: 30 * time.Second}
}

func (e *env) service(mbs ...Mailbox) *Service {
	e.t.Helper()
	s, err := New(context.Background(), Config{Mailboxes: mbs, Archiver: e.arc, Pool: e.pool, Options: testOptions(),
		Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// client logs in as the env's user (for filling and changing the mailbox).
func (e *env) client() *client.Client { return e.d.Client(e.t, e.user, e.pass) }

// fill appends msgs to folder (created when missing) and returns the bytes the server keeps
// (Dovecot turns bare LF into CRLF; these messages have CRLF already).
func (e *env) fill(c *client.Client, folder string, msgs [][]byte) {
	e.t.Helper()
	if folder != "INBOX" {
		c.Create(folder)
	}
	for _, m := range msgs {
		if err := c.Append(folder, nil, time.Now().Add(-time.Hour), bytes.NewBuffer(m)); err != nil {
			e.t.Fatalf("append to %s: %v", folder, err)
		}
	}
}

// messages returns n distinct PEC delivery receipts (CRLF line ends).
func messages(n int, label string) [][]byte {
	base := pectest.TypicalDeliveryReceipt(7)
	out := make([][]byte, n)
	for i := range out {
		hdr := fmt.Sprintf("Received: from mx.pec.esempio.it by imap.archivio.invalid (%s) id %08d;\r\n\tWed, 25 Nov 2026 10:00:00 +0100\r\n", label, i)
		out[i] = append([]byte(hdr), base...)
	}
	return out
}

func (e *env) cursorOf(mailbox, folder string) cursor {
	e.t.Helper()
	c, _, err := (&state{pool: e.pool}).cursor(context.Background(), mailbox, folder)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func once(t *testing.T, s *Service) Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := s.Once(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func folderReport(t *testing.T, rep Report, mailbox, folder string) FolderReport {
	t.Helper()
	for _, f := range rep.Folders {
		if f.Mailbox == mailbox && f.Folder == folder {
			return f
		}
	}
	t.Fatalf("no report for %s/%s in %+v", mailbox, folder, rep)
	return FolderReport{}
}

// writeOtherCA writes the certificate of a CA that signed nothing the test server presents.
func writeOtherCA(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "another CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "other-ca.crt")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func newEnvPool(t *testing.T) *pgxpool.Pool { return testenv.PG(t) }

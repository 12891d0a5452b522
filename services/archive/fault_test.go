package archive_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pecarchive/pecarchive/internal/testenv"
	"github.com/pecarchive/pecarchive/services/archive"
	"github.com/pecarchive/pecarchive/services/archive/blob"
	"github.com/pecarchive/pecarchive/services/archive/blob/s3store"
	"github.com/pecarchive/pecarchive/services/archive/catalog"
	"github.com/pecarchive/pecarchive/services/archive/merklelog"
	"github.com/pecarchive/pecarchive/services/archive/reader"
)

var errCrash = errors.New("test: simulated crash")

// exact checks the archive holds exactly one row, one leaf and the blob for raw.
func (f *fixture) exact(raw []byte, rows int) {
	f.t.Helper()
	if m, l := f.count("messages"), f.logSize(); m != rows || l != uint64(rows) {
		f.t.Fatalf("%d message rows and %d leaves, want %d and %d", m, l, rows, rows)
	}
	if _, err := f.blobs.Stat(context.Background(), sha256.Sum256(raw)); err != nil {
		f.t.Fatalf("blob: %v", err)
	}
}

// Crash after the blob is durable, before the transaction: nothing in the catalog or the log;
// the retry stores it once.
func TestFaultAfterBlobPut(t *testing.T) {
	f := newFixture(t, nil)
	raw := newConversation(t, f, "Crash dopo il blob").acc.Bytes
	var fired atomic.Bool
	archive.SetHooks(f.a, func([32]byte) error {
		if fired.CompareAndSwap(false, true) {
			return errCrash
		}
		return nil
	}, nil, nil)
	if _, err := f.a.Store(context.Background(), raw, archive.Source{Path: "x"}); !errors.Is(err, errCrash) {
		t.Fatalf("store: %v", err)
	}
	if m, l := f.count("messages"), f.logSize(); m != 0 || l != 0 {
		t.Fatalf("after the crash: %d rows, %d leaves", m, l)
	}
	rec := f.store(raw, archive.Source{Path: "x"})
	if !rec.New {
		t.Error("retry: New = false")
	}
	f.exact(raw, 1)
}

// Connection killed inside the transaction before commit (pg_terminate_backend of our own
// backend): ErrUnavailable, nothing committed; the retry stores it once.
func TestFaultInsideTransaction(t *testing.T) {
	f := newFixture(t, nil)
	c := newConversation(t, f, "Crash nella transazione")
	raw := c.delA.Bytes // with its postacert.eml: two messages, two leaves
	var fired atomic.Bool
	archive.SetHooks(f.a, nil, func(ctx context.Context, tx pgx.Tx) error {
		if fired.CompareAndSwap(false, true) {
			_, err := tx.Exec(ctx, "SELECT pg_terminate_backend(pg_backend_pid())")
			if err == nil {
				return errors.New("test: backend survived pg_terminate_backend")
			}
			return err
		}
		return nil
	}, nil)
	_, err := f.a.Store(context.Background(), raw, archive.Source{Path: "x"})
	if !errors.Is(err, archive.ErrUnavailable) {
		t.Fatalf("store with the backend killed: %v, want ErrUnavailable", err)
	}
	t.Logf("first attempt: %v", err)
	if m, l := f.count("messages"), f.logSize(); m != 0 || l != 0 {
		t.Fatalf("after the crash: %d rows, %d leaves", m, l)
	}
	rec := f.store(raw, archive.Source{Path: "x"})
	if !rec.New || rec.Postacert == nil || !rec.Postacert.New {
		t.Errorf("retry: %+v", rec)
	}
	f.exact(raw, 2)
}

// Crash after commit, before the caller heard: the retry returns the same record, New=false.
func TestFaultAfterCommit(t *testing.T) {
	f := newFixture(t, nil)
	raw := newConversation(t, f, "Crash dopo il commit").acc.Bytes
	var fired atomic.Bool
	archive.SetHooks(f.a, nil, nil, func() error {
		if fired.CompareAndSwap(false, true) {
			return errCrash
		}
		return nil
	})
	if _, err := f.a.Store(context.Background(), raw, archive.Source{Path: "x"}); !errors.Is(err, errCrash) {
		t.Fatalf("store: %v", err)
	}
	f.exact(raw, 1)
	rec := f.store(raw, archive.Source{Path: "x"})
	if rec.New || rec.LeafIndex != 0 {
		t.Errorf("retry: New=%v leaf %d", rec.New, rec.LeafIndex)
	}
	f.exact(raw, 1)
	if n := f.count("message_sources"); n != 1 {
		t.Errorf("%d sources, want 1 (same source twice)", n)
	}
}

// A batch whose transaction fails fails every caller in it, with nothing half written; retries
// complete without duplicates.
func TestFaultBatchFailsEveryCaller(t *testing.T) {
	f := newFixture(t, func(c *archive.Config) { c.BatchDelay = 100 * time.Millisecond })
	var raws [][]byte
	for i := range 4 {
		c := newConversation(t, f, fmt.Sprintf("Lotto %d", i))
		raws = append(raws, c.acc.Bytes, c.nonDel.Bytes, c.env.Bytes)
	}
	var fired atomic.Bool
	// Every call waits after its blob put until all have got there, so that they reach the
	// committer together: otherwise a call that gets there alone (the others not yet started)
	// is committed alone, and the failing batch holds one call.
	var arrived atomic.Int32
	together := make(chan struct{})
	waitForAll := func([32]byte) error {
		if arrived.Add(1) == int32(len(raws)) {
			close(together)
		}
		select {
		case <-together:
		case <-time.After(10 * time.Second):
		}
		return nil
	}
	archive.SetHooks(f.a, waitForAll, func(ctx context.Context, tx pgx.Tx) error {
		if fired.CompareAndSwap(false, true) {
			_, err := tx.Exec(ctx, "SELECT pg_terminate_backend(pg_backend_pid())")
			return err
		}
		return nil
	}, nil)
	errs := make([]error, len(raws))
	var wg sync.WaitGroup
	for i := range raws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = f.a.Store(context.Background(), raws[i], archive.Source{Path: fmt.Sprint(i)})
		}()
	}
	wg.Wait()
	failed := 0
	for _, err := range errs {
		if err != nil {
			if !errors.Is(err, archive.ErrUnavailable) {
				t.Fatalf("failed call: %v, want ErrUnavailable", err)
			}
			failed++
		}
	}
	t.Logf("%d of %d calls failed with the batch", failed, len(raws))
	if failed < 2 {
		t.Errorf("only %d calls failed: the batch did not group them", failed)
	}
	if m := f.count("messages"); m != len(raws)-failed || f.logSize() != uint64(m) {
		t.Fatalf("%d rows, %d leaves after the failed batch; want %d", m, f.logSize(), len(raws)-failed)
	}
	for i, raw := range raws {
		f.store(raw, archive.Source{Path: fmt.Sprint(i)})
	}
	if m, s := f.count("messages"), f.count("message_sources"); m != len(raws) || s != len(raws) || f.logSize() != uint64(len(raws)) {
		t.Errorf("after retries: %d rows, %d sources, %d leaves; want %d each", m, s, f.logSize(), len(raws))
	}
}

// proxy is a TCP proxy to PostgreSQL that a test can take down (refusing connections and cutting
// the open ones) and bring back on the same port.
type proxy struct {
	target string
	addr   string
	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]bool
}

func newProxy(t *testing.T, target string) *proxy {
	p := &proxy{target: target, conns: map[net.Conn]bool{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(p.down)
	return p
}

func (p *proxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.pipe(c)
		}
	}()
}

func (p *proxy) pipe(c net.Conn) {
	s, err := net.DialTimeout("tcp", p.target, 2*time.Second)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[s] = true, true
	p.mu.Unlock()
	go func() { io.Copy(s, c); s.Close(); c.Close() }()
	io.Copy(c, s)
	c.Close()
	s.Close()
}

func (p *proxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]bool{}
}

func (p *proxy) up(t *testing.T) {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	p.serve(ln)
}

// PostgreSQL down: Store fails quickly with ErrUnavailable (the blob may be stored, the catalog
// is not touched), and works again once PostgreSQL is back; nothing is lost or duplicated.
func TestPostgresUnavailable(t *testing.T) {
	ctx := context.Background()
	schema, dsn := testenv.PGSchema(t)
	_ = schema
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	target := fmt.Sprintf("%s:%d", cfg.ConnConfig.Host, cfg.ConnConfig.Port)
	px := newProxy(t, target)
	host, port, _ := net.SplitHostPort(px.addr)
	cfg.ConnConfig.Host = host
	fmt.Sscan(port, &cfg.ConnConfig.Port)
	cfg.ConnConfig.ConnectTimeout = 2 * time.Second
	pool := testenv.PGPool(t, cfg)

	f := newFixture(t, func(c *archive.Config) {
		c.Pool = pool
		c.Log = nil
		c.CommitTimeout = 3 * time.Second
	})
	f.pool = pool // counts below read the proxied schema
	conv := newConversation(t, f, "Database giù")
	f.store(conv.acc.Bytes, archive.Source{Path: "1"})

	px.down()
	for _, raw := range [][]byte{conv.nonDel.Bytes, conv.env.Bytes} {
		start := time.Now()
		_, err := f.a.Store(ctx, raw, archive.Source{Path: "2"})
		if !errors.Is(err, archive.ErrUnavailable) {
			t.Fatalf("store with PostgreSQL down: %v, want ErrUnavailable", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("took %v to fail", d)
		}
		t.Logf("failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
	}
	if _, err := f.rd.Get(ctx, sha256.Sum256(conv.acc.Bytes)); !errors.Is(err, reader.ErrUnavailable) {
		t.Errorf("get with PostgreSQL down: %v", err)
	}
	if _, err := f.a.RecordAccess(ctx, catalog.Access{Principal: "p", Method: "/m"}); !errors.Is(err, archive.ErrUnavailable) {
		t.Errorf("access record with PostgreSQL down: %v, want ErrUnavailable", err)
	}

	px.up(t)
	var rec archive.Record
	for attempt := 0; ; attempt++ {
		rec, err = f.a.Store(ctx, conv.nonDel.Bytes, archive.Source{Path: "2"})
		if err == nil {
			break
		}
		if !errors.Is(err, archive.ErrUnavailable) || attempt == 5 {
			t.Fatalf("store after PostgreSQL came back: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !rec.New {
		t.Error("New = false for a message the outage kept out")
	}
	f.store(conv.env.Bytes, archive.Source{Path: "3"})
	var n int
	if err := f.pool.QueryRow(ctx, "SELECT count(*) FROM messages").Scan(&n); err != nil || n != 3 {
		t.Errorf("%d rows, %v; want 3", n, err)
	}
	l, err := merklelog.New(ctx, merklelog.Config{Pool: pool})
	if err != nil {
		t.Fatal(err)
	}
	if size, _ := l.Size(ctx); size != 3 {
		t.Errorf("log size %d, want 3", size)
	}
}

// Nothing listening: New fails quickly with ErrUnavailable.
func TestPostgresClosedPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	pool, err := pgxpool.New(context.Background(), "postgres://postgres@"+addr+"/test?sslmode=disable&connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	_, _, v := providers(t)
	start := time.Now()
	_, err = archive.New(context.Background(), archive.Config{Pool: pool, Blobs: nopBlobs{}, Verifier: v})
	if !errors.Is(err, archive.ErrUnavailable) {
		t.Fatalf("New on a closed port: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v", d)
	}
}

// S3 down (real versitygw, stopped and restarted): ErrUnavailable before anything reaches the
// catalog; works again when S3 is back.
func TestS3Unavailable(t *testing.T) {
	srv := testenv.StartVersityGW(t)
	ctx := context.Background()
	s3, err := s3store.New(ctx, s3store.Config{Endpoint: srv.Endpoint, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey,
		Region: srv.Region, Bucket: testenv.Bucket("archive"), Retention: time.Hour, CreateBucket: true, Timeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(c *archive.Config) { c.Blobs = s3 })
	f.blobs = s3
	conv := newConversation(t, f, "S3 giù")
	f.store(conv.acc.Bytes, archive.Source{Path: "1"})
	srv.Stop()
	start := time.Now()
	_, err = f.a.Store(ctx, conv.delA.Bytes, archive.Source{Path: "2"})
	if !errors.Is(err, archive.ErrUnavailable) {
		t.Fatalf("store with S3 down: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v to fail", d)
	}
	t.Logf("failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
	if m := f.count("messages"); m != 1 || f.logSize() != 1 {
		t.Fatalf("%d rows after the failed store", m)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	rec := f.store(conv.delA.Bytes, archive.Source{Path: "2"})
	if !rec.New || rec.Postacert == nil {
		t.Errorf("after S3 came back: %+v", rec)
	}
	f.exact(conv.delA.Bytes, 3)
}

// nopBlobs is a blob store that is never reached.
type nopBlobs struct{}

func (nopBlobs) Put(context.Context, [32]byte, []byte) (bool, error) {
	return false, blob.ErrUnavailable
}
func (nopBlobs) Get(context.Context, [32]byte) (io.ReadCloser, error) { return nil, blob.ErrNotFound }
func (nopBlobs) Stat(context.Context, [32]byte) (blob.Info, error) {
	return blob.Info{}, blob.ErrNotFound
}
func (nopBlobs) SetLegalHold(context.Context, [32]byte, bool) error { return blob.ErrUnavailable }
func (nopBlobs) Walk(context.Context, func([32]byte) error) error   { return nil }
func (nopBlobs) Check(context.Context) error                        { return nil }

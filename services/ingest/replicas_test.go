package ingest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestTwoReplicas runs two replicas on the same two mailboxes: no message is ever in flight twice
// at once (each mailbox is pulled by one replica at a time), and when the replica pulling a
// mailbox dies (keeping its lease, as a killed process does) the other takes it over within one
// lease period and finishes it.
func TestTwoReplicas(t *testing.T) {
	e := newEnv(t)
	e2 := newEnv(t)
	e2.arc, e2.pool = e.arc, e.pool
	e.fill(e.client(), "INBOX", messages(150, "replica-a"))
	e2.fill(e2.client(), "INBOX", messages(150, "replica-b"))
	e.arc.delay = 10 * time.Millisecond // slow enough to kill a replica mid-way
	mbs := []Mailbox{e.mailbox("mb0"), e2.mailbox("mb1")}
	o := testOptions()
	o.Concurrency = 4
	newReplica := func(name string) *Service {
		s, err := New(context.Background(), Config{Mailboxes: mbs, Archiver: e.arc, Pool: e.pool, Options: o, Replica: name,
			Logger: slog.New(slog.NewTextHandler(e.logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, b := newReplica("replica-a"), newReplica("replica-b")
	actx, acancel := context.WithCancel(context.Background())
	bctx, bcancel := context.WithCancel(context.Background())
	defer bcancel()
	adone, bdone := make(chan struct{}), make(chan struct{})
	go func() { a.Run(actx); close(adone) }()
	time.Sleep(200 * time.Millisecond) // a takes both leases first
	go func() { b.Run(bctx); close(bdone) }()
	waitFor(t, func() bool { return e.arc.count() >= 60 })
	holder := func(mb string) string {
		var h string
		e.pool.QueryRow(context.Background(), `SELECT holder FROM ingest_leases WHERE mailbox = $1 AND expires_at > now()`, mb).Scan(&h)
		return h
	}
	if holder("mb0") != "replica-a" || holder("mb1") != "replica-a" {
		t.Fatalf("leases held by %q and %q", holder("mb0"), holder("mb1"))
	}
	// a dies.
	a.crashed.Store(true)
	killed := time.Now()
	acancel()
	<-adone
	waitFor(t, func() bool { return holder("mb0") == "replica-b" && holder("mb1") == "replica-b" })
	if d := time.Since(killed); d > o.LeaseTTL+2*time.Second {
		t.Errorf("takeover took %v with a lease of %v", d, o.LeaseTTL)
	}
	waitFor(t, func() bool { return e.arc.count() == 300 })
	waitFor(t, func() bool { return e.cursorOf("mb0", "INBOX").UID == 150 && e.cursorOf("mb1", "INBOX").UID == 150 })
	bcancel()
	<-bdone
	e.arc.mu.Lock()
	defer e.arc.mu.Unlock()
	if e.arc.overlap != 0 {
		t.Errorf("%d Store calls found the same message in flight", e.arc.overlap)
	}
}

// dropProxy forwards TCP connections to target and cuts the first len(cuts) of them after
// cuts[i] bytes from the server.
type dropProxy struct {
	l      net.Listener
	target string
	cuts   []int64
	n      atomic.Int32
	wg     sync.WaitGroup
	// stall, when set, makes a cut connection hang (nothing more forwarded, left open) instead
	// of closing; rate, when positive, forwards at most that many bytes per second.
	stall bool
	rate  int64
	done  chan struct{}
}

func startDropProxy(t *testing.T, target string, cuts ...int64) *dropProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &dropProxy{l: l, target: target, cuts: cuts, done: make(chan struct{})}
	t.Cleanup(func() { close(p.done); l.Close(); p.wg.Wait() })
	return p
}

func (p *dropProxy) serve() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		i := int(p.n.Add(1)) - 1
		limit := int64(-1)
		if i < len(p.cuts) {
			limit = p.cuts[i]
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer c.Close()
			s, err := net.Dial("tcp", p.target)
			if err != nil {
				return
			}
			defer s.Close()
			go func() { io.Copy(s, c); s.Close() }()
			var r io.Reader = s
			if limit >= 0 {
				r = io.LimitReader(s, limit)
			}
			if p.rate > 0 {
				r = &slowReader{r: r, rate: p.rate}
			}
			io.Copy(c, r)
			if limit >= 0 && p.stall {
				<-p.done // hang: the client must give up by itself
			}
		}()
	}
}

// TestConnectionDroppedMidFetch: the connection is cut in the middle of the body FETCH, twice;
// ingest reconnects, resumes from the cursor and archives every message.
func TestConnectionDroppedMidFetch(t *testing.T) {
	e := newEnv(t)
	msgs := messages(200, "drop") // about 2.7 MB
	e.fill(e.client(), "INBOX", msgs)
	p := startDropProxy(t, e.d.TLSAddr(), 600_000, 1_500_000)
	go p.serve()
	mb := e.mailbox("mb")
	mb.Port = p.l.Addr().(*net.TCPAddr).Port
	s := e.service(mb)
	rep := once(t, s)
	if len(rep.Failed) != 0 {
		t.Fatalf("failed: %v", rep.Failed)
	}
	fr := folderReport(t, rep, "mb", "INBOX")
	if fr.New != 200 || fr.UID != 200 || fr.Fetched < 200 {
		t.Fatalf("report %v", fr)
	}
	if p.n.Load() < 3 {
		t.Errorf("%d connections: the cuts did not happen", p.n.Load())
	}
	if e.arc.count() != 200 {
		t.Errorf("archive holds %d", e.arc.count())
	}
	if !strings.Contains(e.logs.String(), "reconnecting") {
		t.Error("no reconnection logged")
	}
}

// TestQuotaWarning: a mailbox over 80% of its quota is exposed in the metrics and named in a
// warning.
func TestQuotaWarning(t *testing.T) {
	e := newEnv(t)
	e.d.AddUser(t, e.user, e.pass, "200K")
	e.fill(e.client(), "INBOX", messages(13, "quota")) // about 175 KB
	reg := prometheus.NewRegistry()
	s, err := New(context.Background(), Config{Mailboxes: []Mailbox{e.mailbox("full")}, Archiver: e.arc, Pool: e.pool,
		Options: testOptions(), Registerer: reg, Logger: slog.New(slog.NewTextHandler(e.logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	once(t, s)
	if !strings.Contains(e.logs.String(), "mailbox nearly full") || !strings.Contains(e.logs.String(), "mailbox=full") {
		t.Errorf("no warning naming the mailbox:\n%s", e.logs.String())
	}
	got := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if m.GetGauge() != nil {
				got[mf.GetName()] += m.GetGauge().GetValue()
			}
			if m.GetCounter() != nil {
				got[mf.GetName()] += m.GetCounter().GetValue()
			}
		}
	}
	if got["pecarchive_ingest_quota_limit"] != 200 || got["pecarchive_ingest_quota_usage"] < 160 {
		t.Errorf("quota metrics: %v", got)
	}
	if got["pecarchive_ingest_archived_messages_total"] != 13 || got["pecarchive_ingest_fetched_messages_total"] != 13 ||
		got["pecarchive_ingest_fetched_bytes_total"] < 13*13000 {
		t.Errorf("counters: %v", got)
	}
}

// TestLeaseFencing: a replica whose lease was taken over cannot move the cursor any more.
func TestLeaseFencing(t *testing.T) {
	e := newEnv(t)
	s := e.service(e.mailbox("mb"))
	st := s.st
	ctx := context.Background()
	l1, ok, _, err := st.acquire(ctx, "mb", "one", time.Second)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if err := st.start(ctx, l1, "INBOX", 7); err != nil {
		t.Fatal(err)
	}
	if err := st.advance(ctx, l1, "INBOX", 7, 5); err != nil {
		t.Fatal(err)
	}
	if _, ok, held, _ := st.acquire(ctx, "mb", "two", time.Second); ok || held != "one" {
		t.Fatalf("a held lease was taken: %v %q", ok, held)
	}
	time.Sleep(1100 * time.Millisecond)
	l2, ok, _, err := st.acquire(ctx, "mb", "two", time.Minute)
	if err != nil || !ok {
		t.Fatal("an expired lease was not taken over", ok, err)
	}
	if err := st.advance(ctx, l1, "INBOX", 7, 9); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("the old holder advanced the cursor: %v", err)
	}
	if err := st.renew(ctx, l1, time.Minute); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("the old holder renewed: %v", err)
	}
	if err := st.advance(ctx, l2, "INBOX", 7, 9); err != nil {
		t.Fatal(err)
	}
	if err := st.advance(ctx, l2, "INBOX", 7, 3); err != nil { // backwards: ignored
		t.Fatal(err)
	}
	if c := e.cursorOf("mb", "INBOX"); c.UID != 9 {
		t.Fatalf("cursor %+v", c)
	}
}

// slowReader reads at most rate bytes per second.
type slowReader struct {
	r     io.Reader
	rate  int64
	start time.Time
	n     int64
}

func (s *slowReader) Read(b []byte) (int, error) {
	if s.start.IsZero() {
		s.start = time.Now()
	}
	if len(b) > int(s.rate/20) {
		b = b[:s.rate/20]
	}
	n, err := s.r.Read(b)
	s.n += int64(n)
	if ahead := time.Duration(float64(s.n)/float64(s.rate)*float64(time.Second)) - time.Since(s.start); ahead > 0 {
		time.Sleep(ahead)
	}
	return n, err
}

// TestReadDeadlines: a connection that stops answering in the middle of a FETCH is given up after
// the command timeout plus the batch's bytes at the slowest rate tolerated, and the pull resumes
// on a new one; a slow link carrying a 1.5 MB message, slower than the command timeout but
// faster than that rate, is not cut.
func TestReadDeadlines(t *testing.T) {
	e := newEnv(t)
	e.fill(e.client(), "INBOX", messages(20, "stall"))
	big := append([]byte("From: a@pec.esempio.it\r\nSubject: grande\r\n\r\n"), bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789ab\r\n"), 19_000)...)
	e.fill(e.client(), "Grandi", [][]byte{big})
	o := testOptions()
	o.CommandTimeout = time.Second
	o.MinRate = 128 << 10
	o.OneConnection = true

	// A stall after 100 KB, on the first connection only.
	stall := startDropProxy(t, e.d.TLSAddr(), 100_000)
	stall.stall = true
	go stall.serve()
	mb := e.mailbox("stall")
	mb.Port = stall.l.Addr().(*net.TCPAddr).Port
	mb.Folders = []string{"INBOX"}
	s, err := New(context.Background(), Config{Mailboxes: []Mailbox{mb}, Archiver: e.arc, Pool: e.pool, Options: o,
		Logger: slog.New(slog.NewTextHandler(e.logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	rep := once(t, s)
	if fr := folderReport(t, rep, "stall", "INBOX"); len(rep.Failed) != 0 || fr.New != 20 {
		t.Fatalf("report %+v", rep)
	}
	if d := time.Since(t0); d > 20*time.Second {
		t.Errorf("the stall cost %v", d)
	}

	// A link of 400 KB/s: the 1.5 MB message takes about 4 s, over the 1 s command timeout;
	// its budget is 1 s + 1.5 MB at 128 KB/s, about 13 s.
	slow := startDropProxy(t, e.d.TLSAddr())
	slow.rate = 400 << 10
	go slow.serve()
	mb = e.mailbox("slow")
	mb.Port = slow.l.Addr().(*net.TCPAddr).Port
	mb.Folders = []string{"Grandi"}
	s, err = New(context.Background(), Config{Mailboxes: []Mailbox{mb}, Archiver: e.arc, Pool: e.pool, Options: o,
		Logger: slog.New(slog.NewTextHandler(e.logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	rep = once(t, s)
	if fr := folderReport(t, rep, "slow", "Grandi"); len(rep.Failed) != 0 || fr.New != 1 || fr.Fetched != 1 {
		t.Fatalf("report %+v", rep)
	}
	if slow.n.Load() != 1 {
		t.Errorf("%d connections: the slow transfer was cut", slow.n.Load())
	}
}

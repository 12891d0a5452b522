package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"
)

// A hostile or broken IMAP server (the scripted fakeIMAP) must never crash ingest, hang it or
// make it lose a message: whatever the server does, the cursor never passes a message the
// archive has not acknowledged, and memory stays bounded.

// fakeEnv is a test's world with the scripted server: its mailbox, a fake archive, PostgreSQL.
type fakeEnv struct {
	t    *testing.T
	srv  *fakeIMAP
	arc  *fakeArchiver
	e    *env
	logs *syncBuffer
}

func newFakeEnv(t *testing.T, caps string) *fakeEnv {
	t.Helper()
	logs := &syncBuffer{}
	e := &env{t: t, pool: newEnvPool(t), arc: newFakeArchiver(), logs: logs}
	return &fakeEnv{t: t, srv: startFakeIMAP(t, caps), arc: e.arc, e: e, logs: logs}
}

func (fe *fakeEnv) service(o *Options, mbs ...Mailbox) *Service {
	fe.t.Helper()
	if len(mbs) == 0 {
		mbs = []Mailbox{fe.srv.mailbox("mb")}
	}
	s, err := New(context.Background(), Config{Mailboxes: mbs, Archiver: fe.arc, Pool: fe.e.pool, Options: o,
		LookupEnv: func(string) (string, bool) { return "pw", true },
		Logger:    slog.New(slog.NewTextHandler(fe.logs, nil))})
	if err != nil {
		fe.t.Fatal(err)
	}
	return s
}

// onceWithin runs Once and fails the test when it takes longer than d.
func onceWithin(t *testing.T, s *Service, d time.Duration) Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d+time.Minute)
	defer cancel()
	t0 := time.Now()
	rep, err := s.Once(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(t0); el > d {
		t.Errorf("Once took %v, want at most %v", el, d)
	}
	return rep
}

func small(n int, label string) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = []byte(fmt.Sprintf("From: a@pec.esempio.it\r\nSubject: %s %d\r\n\r\ntesto %d\r\n", label, i, i))
	}
	return out
}

// wantFailed checks that the one mailbox failed with an error wrapping kind and naming what.
func wantFailed(t *testing.T, rep Report, kind error, what string) {
	t.Helper()
	if len(rep.Failed) != 1 || !errors.Is(rep.Failed[0].Err, kind) || !strings.Contains(rep.Failed[0].Error(), what) {
		t.Fatalf("failed: %v; want one mailbox failing with %v naming %q", rep.Failed, kind, what)
	}
	t.Log(rep.Failed[0])
}

// allocated runs f and returns the bytes it allocated on the heap.
func allocated(f func()) uint64 {
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

// A literal announced far over the size limit (4 GB) is refused before go-imap allocates it:
// the mailbox fails with ErrTooLarge, nothing is stored and the cursor stays.
func TestHostileHugeLiteral(t *testing.T) {
	fe := newFakeEnv(t, "")
	fe.srv.put("INBOX", 7, small(3, "huge")...)
	fe.srv.setHook(func(s *fakeSession, tag, cmd, args string) bool {
		if cmd == "UID FETCH" && strings.Contains(args, "BODY.PEEK[]") {
			s.printf("* 1 FETCH (UID 1 BODY[] {4000000000}\r\nxxxxxxxx")
			return true // and nothing more
		}
		return false
	})
	var rep Report
	if n := allocated(func() { rep = onceWithin(t, fe.service(fakeOptions()), 30*time.Second) }); n > 256<<20 {
		t.Errorf("%d MB allocated", n>>20)
	}
	wantFailed(t, rep, ErrTooLarge, "4000000000")
	if fe.arc.count() != 0 || fe.e.cursorOf("mb", "INBOX").UID != 0 {
		t.Errorf("stored %d, cursor %+v", fe.arc.count(), fe.e.cursorOf("mb", "INBOX"))
	}
}

// A line that never ends (64 MB without a line feed) is cut at MaxResponseLine.
func TestHostileEndlessLine(t *testing.T) {
	fe := newFakeEnv(t, "")
	fe.srv.put("INBOX", 7, small(1, "line")...)
	chunk := bytes.Repeat([]byte("x"), 1<<20)
	fe.srv.setHook(func(s *fakeSession, tag, cmd, args string) bool {
		if cmd != "LIST" {
			return false
		}
		s.printf("* LIST () \"/\" \"")
		for range 64 {
			if _, err := s.w.Write(chunk); err != nil {
				return true
			}
		}
		s.w.Flush()
		return true
	})
	var rep Report
	if n := allocated(func() { rep = onceWithin(t, fe.service(fakeOptions()), 30*time.Second) }); n > 512<<20 {
		t.Errorf("%d MB allocated", n>>20)
	}
	wantFailed(t, rep, ErrIMAP, "line of more than")
}

// Continuation requests nobody asked for, without end: the connection is dropped after a few,
// and go-imap's goroutine for each (parked for good) stays a handful.
func TestHostileEndlessContinuation(t *testing.T) {
	fe := newFakeEnv(t, "")
	fe.srv.put("INBOX", 7, small(1, "cont")...)
	fe.srv.setHook(func(s *fakeSession, tag, cmd, args string) bool {
		if cmd != "LIST" {
			return false
		}
		for range 200_000 {
			if _, err := s.w.WriteString("+ more\r\n"); err != nil {
				return true
			}
		}
		s.w.Flush()
		return true
	})
	g0 := runtime.NumGoroutine()
	rep := onceWithin(t, fe.service(fakeOptions()), 30*time.Second)
	wantFailed(t, rep, ErrIMAP, "continuation requests")
	time.Sleep(100 * time.Millisecond)
	if g := runtime.NumGoroutine(); g > g0+5*fakeOptions().OnceAttempts+10 {
		t.Errorf("%d goroutines after, %d before", g, g0)
	}
}

// A server that stops answering (no greeting; a login, a listing or a FETCH left unanswered):
// each connection is given up after the command timeout, Once names the mailbox, and Run stops
// at once when cancelled.
func TestHostileSilent(t *testing.T) {
	for _, at := range []string{"GREETING", "LOGIN", "LIST", "UID FETCH"} {
		t.Run(strings.ReplaceAll(at, " ", "-"), func(t *testing.T) {
			fe := newFakeEnv(t, "")
			fe.srv.put("INBOX", 7, small(2, "silent")...)
			fe.srv.setHook(func(s *fakeSession, tag, cmd, args string) bool { return cmd == at })
			o := fakeOptions()
			o.CommandTimeout = 500 * time.Millisecond
			o.OnceAttempts = 2
			rep := onceWithin(t, fe.service(o), 20*time.Second)
			wantFailed(t, rep, ErrIMAP, "mailbox mb")
			if fe.arc.count() != 0 {
				t.Errorf("stored %d", fe.arc.count())
			}

			s := fe.service(o)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { s.Run(ctx); close(done) }()
			time.Sleep(300 * time.Millisecond)
			t0 := time.Now()
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not stop")
			}
			if d := time.Since(t0); d > 3*time.Second {
				t.Errorf("Run stopped %v after cancellation", d)
			}
		})
	}
}

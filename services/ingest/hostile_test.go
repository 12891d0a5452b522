package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
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

// Malformed answers on the first connection (garbage lines, a FETCH without the body, a body
// of nothing for a message of many bytes) fail that connection without storing anything wrong;
// the next connection, answered properly, archives every message.
func TestHostileMalformed(t *testing.T) {
	fe := newFakeEnv(t, "")
	msgs := small(3, "malformed")
	fe.srv.put("INBOX", 7, msgs...)
	for name, bad := range map[string]string{
		"garbage":   "* 1 FETCH (UID ((((\r\n)))garbage{{{\r\n* BAD \x00\x01\x02\r\n* 1 FETCH (UID abc)\r\n",
		"no body":   "* 1 FETCH (UID 1 INTERNALDATE \"25-Nov-2026 10:00:00 +0100\")\r\n",
		"nil body":  "* 1 FETCH (UID 1 BODY[] NIL)\r\n",
		"empty":     "* 1 FETCH (UID 1 BODY[] {0}\r\n)\r\n",
		"wrong tag": "Z999 OK done\r\n",
	} {
		t.Run(strings.ReplaceAll(name, " ", "-"), func(t *testing.T) {
			fe.arc = newFakeArchiver()
			fe.e.arc = fe.arc
			fe.e.pool = newEnvPool(t)
			first := fe.srv.n.Load() + 1
			fe.srv.setHook(func(s *fakeSession, tag, cmd, args string) bool {
				if s.conn == int(first) && cmd == "UID FETCH" && strings.Contains(args, "BODY.PEEK[]") {
					s.printf("%s%s OK done\r\n", bad, tag)
					return true
				}
				return false
			})
			rep := onceWithin(t, fe.service(fakeOptions()), 30*time.Second)
			if len(rep.Failed) != 0 {
				t.Fatalf("failed: %v", rep.Failed)
			}
			if fr := folderReport(t, rep, "mb", "INBOX"); fr.New != 3 || fr.Refused != 0 || fr.UID != 3 {
				t.Fatalf("report %v", fr)
			}
			for _, m := range msgs {
				if !fe.arc.has(m) {
					t.Errorf("%q not archived", m)
				}
			}
			if fe.srv.n.Load() < first+1 {
				t.Error("the malformed answer did not fail the first connection")
			}
		})
	}
}

// UIDs going backwards under the same UIDVALIDITY (a server rebuilt without changing it): the
// new messages carry UIDs at or below the cursor; they are fetched all the same, and the event
// is recorded like a UIDVALIDITY change. A message refused at a UID that already has a dead
// letter of the old numbering gets one of its own.
func TestHostileUIDsBackwards(t *testing.T) {
	fe := newFakeEnv(t, "")
	fe.srv.put("INBOX", 7, small(5, "before")...)
	fe.arc.refuse = func(raw []byte) bool { return bytes.HasSuffix(raw, []byte("testo 1\r\n")) } // UID 2, both times
	s := fe.service(fakeOptions())
	onceWithin(t, s, 30*time.Second)
	if c := fe.e.cursorOf("mb", "INBOX"); c.UID != 5 {
		t.Fatalf("cursor %+v", c)
	}
	fe.srv.mu.Lock()
	delete(fe.srv.folders, "INBOX")
	fe.srv.mu.Unlock()
	after := small(3, "after")
	fe.srv.put("INBOX", 7, after...)
	rep := onceWithin(t, s, 30*time.Second)
	fr := folderReport(t, rep, "mb", "INBOX")
	if fr.Resets != 1 || fr.New != 2 || fr.Refused != 1 || fr.UID != 3 {
		t.Fatalf("report %v", fr)
	}
	for i, m := range after {
		if i != 1 && !fe.arc.has(m) {
			t.Errorf("%q not archived", m)
		}
	}
	dls, err := DeadLetters(context.Background(), fe.e.pool, "mb", time.Time{}, 0)
	if err != nil || len(dls) != 2 || dls[0].UID != 2 || dls[1].UID != 2 || dls[1].SHA256 != sha256.Sum256(after[1]) {
		t.Errorf("dead letters %+v, %v", dls, err)
	}
	var n int
	if err := fe.e.pool.QueryRow(context.Background(), `SELECT count(*) FROM ingest_uidvalidity_events
	  WHERE mailbox = 'mb' AND old_uid_validity = 7 AND old_uid = 5 AND new_uid_validity = 7`).Scan(&n); err != nil || n != 1 {
		t.Errorf("events: %d, %v", n, err)
	}
}

// Answers about messages that were not asked for (a UID far beyond UIDNEXT, duplicates, bodies
// of other messages, in the listing and in the body FETCH) are dropped: each message is stored
// under its own UID with its own bytes, and the cursor stops at the folder's last UID, so that
// a message appended later is still fetched.
func TestHostileUnaskedAnswers(t *testing.T) {
	fe := newFakeEnv(t, "")
	msgs := small(5, "real")
	fe.srv.put("INBOX", 7, msgs...)
	fe.srv.setHook(func(s *fakeSession, tag, cmd, args string) bool {
		if cmd != "UID FETCH" {
			return false
		}
		if strings.Contains(args, "BODY.PEEK[]") {
			s.printf("* 9 FETCH (UID 4000000000 BODY[] {8}\r\ninjected)\r\n")
			if strings.HasPrefix(args, "3") {
				// The batch that asks for UID 3: it comes first, then again with other bytes.
				s.printf("* 3 FETCH (UID 3 BODY[] {%d}\r\n%s)\r\n", len(msgs[2]), msgs[2])
			}
			s.printf("* 3 FETCH (UID 3 BODY[] {9}\r\ninjected3)\r\n")
		} else {
			s.printf("* 9 FETCH (UID 4000000000 RFC822.SIZE 8)\r\n* 2 FETCH (UID 2 RFC822.SIZE 5)\r\n")
		}
		s.answer(tag, cmd, args)
		return true
	})
	o := fakeOptions()
	o.BatchMessages = 2
	s := fe.service(o)
	rep := onceWithin(t, s, 30*time.Second)
	if len(rep.Failed) != 0 {
		t.Fatalf("failed: %v", rep.Failed)
	}
	if fr := folderReport(t, rep, "mb", "INBOX"); fr.New != 5 || fr.UID != 5 {
		t.Fatalf("report %v", fr)
	}
	if fe.arc.count() != 5 {
		t.Errorf("archive holds %d messages", fe.arc.count())
	}
	for i, m := range msgs {
		srcs := fe.arc.sources[sha256.Sum256(m)]
		if len(srcs) == 0 || srcs[0].UID != uint32(i+1) {
			t.Errorf("message %d: sources %+v", i+1, srcs)
		}
	}
	late := small(1, "late")
	fe.srv.put("INBOX", 7, late...)
	rep = onceWithin(t, s, 30*time.Second)
	if fr := folderReport(t, rep, "mb", "INBOX"); fr.New != 1 || fr.UID != 6 || !fe.arc.has(late[0]) {
		t.Fatalf("the message appended later: %v", fr)
	}
}

// A server that leaves a message out of its answer (OK, without it) while still listing it:
// the message is not passed over as expunged; the next connection archives it.
func TestHostileOmittedMessage(t *testing.T) {
	fe := newFakeEnv(t, "")
	msgs := small(3, "omitted")
	fe.srv.put("INBOX", 7, msgs...)
	fe.srv.setHook(func(s *fakeSession, tag, cmd, args string) bool {
		if s.conn != 1 || cmd != "UID FETCH" || !strings.Contains(args, "BODY.PEEK[]") {
			return false
		}
		for i, m := range msgs {
			if i != 1 {
				s.writeFetch(i+1, fakeMsg{uid: uint32(i + 1), body: m}, "BODY.PEEK[]")
			}
		}
		s.printf("%s OK done\r\n", tag)
		return true
	})
	rep := onceWithin(t, fe.service(fakeOptions()), 30*time.Second)
	if len(rep.Failed) != 0 {
		t.Fatalf("failed: %v", rep.Failed)
	}
	if fr := folderReport(t, rep, "mb", "INBOX"); fr.New != 3 || fr.UID != 3 || !fe.arc.has(msgs[1]) {
		t.Fatalf("report %v; the omitted message archived: %v", fr, fe.arc.has(msgs[1]))
	}
	if !strings.Contains(fe.logs.String(), "did not return the body of UID 2") {
		t.Errorf("no log of the omission:\n%s", fe.logs.String())
	}
}

// A message over the size limit is hashed piece by piece and dead-lettered; a server that keeps
// sending full pieces past the size it announced is given up instead of read for ever.
func TestHostileEndlessPieces(t *testing.T) {
	fe := newFakeEnv(t, "")
	big := bytes.Repeat([]byte("0123456789abcdef\r\n"), 500_000) // 9 MB, over one piece of 8 MiB
	fe.srv.put("INBOX", 7, big)
	o := fakeOptions()
	o.MaxMessageSize = 8 << 20
	rep := onceWithin(t, fe.service(o), 30*time.Second)
	if fr := folderReport(t, rep, "mb", "INBOX"); len(rep.Failed) != 0 || fr.Refused != 1 || fr.UID != 1 {
		t.Fatalf("honest server: %+v", rep)
	}
	dls, err := DeadLetters(context.Background(), fe.e.pool, "mb", time.Time{}, 0)
	if err != nil || len(dls) != 1 || dls[0].SHA256 != sha256.Sum256(big) || dls[0].Size != int64(len(big)) {
		t.Fatalf("dead letters %+v, %v", dls, err)
	}

	fe.e.pool = newEnvPool(t)
	piece := bytes.Repeat([]byte("x"), 8<<20)
	fe.srv.setHook(func(s *fakeSession, tag, cmd, args string) bool {
		if cmd != "UID FETCH" || !strings.Contains(args, "BODY.PEEK[]<") {
			return false
		}
		var off int
		fmt.Sscanf(args[strings.Index(args, "<")+1:], "%d", &off)
		s.printf("* 1 FETCH (UID 1 BODY[]<%d> {%d}\r\n%s)\r\n%s OK done\r\n", off, len(piece), piece, tag)
		return true
	})
	rep = onceWithin(t, fe.service(o), 60*time.Second)
	wantFailed(t, rep, ErrIMAP, "more than the")
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

// The STATUS check: while IDLE watches INBOX, the other folders are asked STATUS every
// StatusInterval and only a folder with news is opened and pulled (no full pass before
// FullPassInterval); a folder created meanwhile is found and pulled too. With INBOX not wanted,
// IDLE watches the first wanted folder and INBOX is never opened.
func TestStatusCheck(t *testing.T) {
	for _, inbox := range []bool{true, false} {
		t.Run(fmt.Sprintf("inbox=%v", inbox), func(t *testing.T) {
			fe := newFakeEnv(t, " IDLE")
			fe.srv.put("INBOX", 7, small(1, "inbox")...)
			fe.srv.put("Ricevute", 8, small(1, "ricevute")...)
			fe.srv.put("Ricevute/2026", 9, small(1, "ricevute-2026")...)
			var mu sync.Mutex
			count := map[string]int{}
			fe.srv.setHook(func(s *fakeSession, tag, cmd, args string) bool {
				mu.Lock()
				defer mu.Unlock()
				if cmd == "EXAMINE" || cmd == "SELECT" || cmd == "STATUS" {
					name, _, _ := strings.Cut(args, " ")
					count[cmd+" "+strings.Trim(name, `"`)]++
				}
				return false
			})
			counted := func(k string) int {
				mu.Lock()
				defer mu.Unlock()
				return count[k]
			}
			o := fakeOptions()
			o.StatusInterval = 200 * time.Millisecond
			o.FullPassInterval = time.Hour
			mb := fe.srv.mailbox("mb")
			want := 3
			if !inbox {
				mb.Folders = []string{"Ricevute", "Ricevute/*"}
				want = 2
			}
			s := fe.service(o, mb)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { s.Run(ctx); close(done) }()
			defer func() { cancel(); <-done }()
			defer func() {
				if t.Failed() {
					t.Logf("commands %v\n%s", count, fe.logs.String())
				}
			}()
			waitFor(t, func() bool { return fe.arc.count() == want })
			// A few STATUS checks, and no folder opened again.
			waitFor(t, func() bool { return counted("STATUS Ricevute/2026") >= 3 })
			opened := counted("EXAMINE Ricevute/2026")
			if opened != 1 {
				t.Errorf("Ricevute/2026 opened %d times before it had news", opened)
			}
			late := small(1, "late")
			fe.srv.put("Ricevute/2026", 9, late...)
			waitFor(t, func() bool { return fe.arc.has(late[0]) })
			if n := counted("EXAMINE Ricevute/2026"); n != opened+1 {
				t.Errorf("Ricevute/2026 opened %d times for one message", n-opened)
			}
			if !inbox && counted("EXAMINE INBOX")+counted("STATUS INBOX") != 0 {
				t.Error("INBOX opened while it is not wanted")
			}
			mu.Lock()
			for k := range count {
				if strings.HasPrefix(k, "SELECT") {
					t.Errorf("%s: a folder opened read-write with no policy that writes", k)
				}
			}
			mu.Unlock()
			created := small(1, "created")
			fe.srv.put("Ricevute/2027", 10, created...)
			waitFor(t, func() bool { return fe.arc.has(created[0]) })
		})
	}
}

// Without MOVE, a move policy copies, flags \Deleted and removes exactly those UIDs with UID
// EXPUNGE (UIDPLUS): a message the archive does not confirm holding stays, even when another
// client flagged it \Deleted (a plain EXPUNGE would remove it). The target folder is created
// where missing. The mailbox never has more than two connections open.
func TestAfterArchiveWithoutMove(t *testing.T) {
	fe := newFakeEnv(t, " UIDPLUS")
	msgs := small(5, "nomove")
	fe.srv.put("INBOX", 7, msgs...)
	fe.srv.put("Ricevute", 8, small(3, "ricevute")...)
	fe.srv.mu.Lock()
	fe.srv.folders["INBOX"].msgs[1].deleted = true // flagged by another client, not expunged
	fe.srv.mu.Unlock()
	fe.arc.hide[sha256.Sum256(msgs[1])] = true
	mb := fe.srv.mailbox("mb")
	mb.AfterArchive = "move:Archivio/Vecchi:0"
	if err := mb.check(); err != nil {
		t.Fatal(err)
	}
	rep := onceWithin(t, fe.service(fakeOptions(), mb), 30*time.Second)
	if len(rep.Failed) != 0 {
		t.Fatalf("failed: %v", rep.Failed)
	}
	fe.srv.mu.Lock()
	defer fe.srv.mu.Unlock()
	var left []string
	for _, m := range fe.srv.folders["INBOX"].msgs {
		left = append(left, string(m.body))
	}
	if len(left) != 1 || left[0] != string(msgs[1]) {
		t.Errorf("INBOX holds %q; want the unconfirmed message alone", left)
	}
	if moved := fe.srv.folders["Archivio/Vecchi"]; moved == nil || len(moved.msgs) != 4+3 {
		t.Errorf("Archivio/Vecchi: %+v", moved)
	}
	if n := fe.srv.mostOpen.Load(); n > 2 {
		t.Errorf("%d connections open at once", n)
	}
}

// Refused credentials make the running service wait AuthBackoff before it logs in again
// (providers lock accounts that retry fast), where a broken connection is retried at once; and
// so do credentials refused on the mailbox's second connection.
func TestAuthBackoff(t *testing.T) {
	for _, second := range []bool{false, true} {
		t.Run(fmt.Sprintf("second=%v", second), func(t *testing.T) {
			fe := newFakeEnv(t, " IDLE")
			fe.srv.put("INBOX", 7, small(1, "auth")...)
			fe.srv.put("Ricevute", 8, small(1, "auth")...)
			var logins atomic.Int32
			fe.srv.setHook(func(s *fakeSession, tag, cmd, args string) bool {
				if cmd != "LOGIN" {
					return false
				}
				if n := logins.Add(1); !second || n > 1 {
					s.printf("%s NO [AUTHENTICATIONFAILED] invalid credentials\r\n", tag)
					return true
				}
				return false
			})
			o := fakeOptions()
			o.AuthBackoff = time.Hour
			o.StatusInterval, o.FullPassInterval = 50*time.Millisecond, 100*time.Millisecond // full passes reconnect the second
			s := fe.service(o)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { s.Run(ctx); close(done) }()
			waitFor(t, func() bool { return strings.Contains(fe.logs.String(), "authentication failed") })
			time.Sleep(time.Second) // BackoffMin is 10 ms: a retry would come meanwhile
			cancel()
			<-done
			want := int32(1)
			if second {
				want = 2
			}
			if n := logins.Load(); n != want {
				t.Errorf("%d logins, want %d", n, want)
			}
		})
	}
}

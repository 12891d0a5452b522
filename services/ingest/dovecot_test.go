package ingest

import (
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap"
)

// TestOnceEveryFolder pulls two folders to their end (leaving out an excluded one), then finds
// nothing new; the cursors sit at the last UID of each folder.
func TestOnceEveryFolder(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	inbox, ricevute, trash := messages(30, "inbox"), messages(20, "ricevute"), messages(5, "trash")
	e.fill(c, "INBOX", inbox)
	e.fill(c, "Ricevute", ricevute)
	e.fill(c, "Trash", trash)
	mb := e.mailbox("protocollo")
	mb.ExcludeFolders = []string{"Trash"}
	s := e.service(mb)
	rep := once(t, s)
	if len(rep.Failed) > 0 {
		t.Fatalf("failed: %v", rep.Failed)
	}
	in := folderReport(t, rep, "protocollo", "INBOX")
	ri := folderReport(t, rep, "protocollo", "Ricevute")
	if in.Fetched != 30 || in.New != 30 || in.UID != 30 || ri.Fetched != 20 || ri.New != 20 || ri.UID != 20 {
		t.Fatalf("reports: %v / %v", in, ri)
	}
	if len(rep.Folders) != 2 {
		t.Fatalf("Trash pulled: %+v", rep.Folders)
	}
	if !strings.HasPrefix(in.String(), "ingest: protocollo/INBOX fetched 30, new 30, already 0, refused 0, cursor ") {
		t.Errorf("summary line %q", in.String())
	}
	for _, m := range append(inbox, ricevute...) {
		if !e.arc.has(m) {
			t.Fatal("a message was not archived byte-exact")
		}
	}
	for _, src := range e.arc.sources[sha256.Sum256(inbox[3])] {
		if src.Mailbox != "protocollo" || src.Folder != "INBOX" || src.UID != 4 || src.UIDValidity == 0 || src.InternalDate.IsZero() {
			t.Errorf("source %+v", src)
		}
	}
	if got := e.cursorOf("protocollo", "Ricevute"); got.UID != 20 {
		t.Errorf("cursor %+v", got)
	}
	// Again: nothing new, nothing fetched.
	calls := e.arc.calls
	rep = once(t, s)
	if in := folderReport(t, rep, "protocollo", "INBOX"); in.Fetched != 0 || in.UID != 30 {
		t.Errorf("second pass: %v", in)
	}
	if e.arc.calls != calls {
		t.Errorf("second pass stored %d messages again", e.arc.calls-calls)
	}
	// One more message: only it is fetched (the server answers 31:* with it, and 32:* with it
	// again, which is dropped).
	e.fill(c, "INBOX", messages(1, "late"))
	rep = once(t, s)
	if in := folderReport(t, rep, "protocollo", "INBOX"); in.Fetched != 1 || in.New != 1 || in.UID != 31 {
		t.Errorf("third pass: %v", in)
	}
	rep = once(t, s)
	if in := folderReport(t, rep, "protocollo", "INBOX"); in.Fetched != 0 {
		t.Errorf("fourth pass fetched the last message again: %v", in)
	}
}

// TestUIDValidityReset: the folder is recreated (new UIDVALIDITY) with the old messages and a new
// one: everything is fetched again, the archive's idempotence keeps one copy of each, and the
// event is recorded and counted.
func TestUIDValidityReset(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	msgs := messages(10, "uidv")
	e.fill(c, "Ricevute", msgs)
	s := e.service(e.mailbox("mb"))
	once(t, s)
	before := e.cursorOf("mb", "Ricevute")
	if err := c.Delete("Ricevute"); err != nil {
		t.Fatal(err)
	}
	e.fill(c, "Ricevute", append(msgs, messages(1, "uidv-new")...))
	rep := once(t, s)
	fr := folderReport(t, rep, "mb", "Ricevute")
	if fr.Resets != 1 || fr.Fetched != 11 || fr.New != 1 || fr.Already != 10 || fr.UIDValidity == before.UIDValidity {
		t.Fatalf("after the reset: %+v (before %+v)", fr, before)
	}
	var n int
	var old, newUV int64
	if err := e.pool.QueryRow(context.Background(), `SELECT count(*), max(old_uid_validity), max(new_uid_validity)
	  FROM ingest_uidvalidity_events WHERE mailbox = 'mb' AND folder = 'Ricevute'`).Scan(&n, &old, &newUV); err != nil {
		t.Fatal(err)
	}
	if n != 1 || uint32(old) != before.UIDValidity || uint32(newUV) != fr.UIDValidity {
		t.Errorf("events: %d, %d -> %d", n, old, newUV)
	}
	if !strings.Contains(e.logs.String(), "UIDVALIDITY changed") {
		t.Error("no log line for the reset")
	}
	if e.arc.count() != 11 {
		t.Errorf("archive holds %d messages", e.arc.count())
	}
}

// TestWrongCredentials: one mailbox with a wrong password fails with a clear error naming it,
// while the other is pulled.
func TestWrongCredentials(t *testing.T) {
	e := newEnv(t)
	e.fill(e.client(), "INBOX", messages(3, "cred"))
	good := e.mailbox("good")
	bad := e.mailbox("bad")
	bad.PasswordFile = ""
	bad.PasswordEnv = "BAD_PASSWORD"
	s, err := New(context.Background(), Config{Mailboxes: []Mailbox{good, bad}, Archiver: e.arc, Pool: e.pool, Options: testOptions(),
		LookupEnv: func(k string) (string, bool) { return "wrong", k == "BAD_PASSWORD" }})
	if err != nil {
		t.Fatal(err)
	}
	rep := once(t, s)
	if len(rep.Failed) != 1 || rep.Failed[0].Mailbox != "bad" || !errors.Is(rep.Failed[0].Err, ErrAuth) {
		t.Fatalf("failed: %v", rep.Failed)
	}
	if msg := rep.Failed[0].Error(); !strings.Contains(msg, "mailbox bad") || !strings.Contains(msg, "authentication failed") {
		t.Errorf("error %q", msg)
	}
	if fr := folderReport(t, rep, "good", "INBOX"); fr.New != 3 {
		t.Errorf("good mailbox: %v", fr)
	}
}

// TestCertificateRefused: a server certificate that does not chain to the configured CA (or to
// the system's roots when none is configured) is refused before any credential is sent, for
// implicit TLS and STARTTLS alike.
func TestCertificateRefused(t *testing.T) {
	e := newEnv(t)
	other := writeOtherCA(t)
	cases := map[string]Mailbox{}
	m := e.mailbox("system-roots")
	m.CAFile = ""
	cases["system-roots"] = m
	m = e.mailbox("other-ca")
	m.CAFile = other
	cases["other-ca"] = m
	m = e.mailbox("starttls-other-ca")
	m.TLS, m.Port, m.CAFile = TLSStartTLS, e.d.Port, other
	cases["starttls-other-ca"] = m
	var mbs []Mailbox
	for _, m := range cases {
		mbs = append(mbs, m)
	}
	rep := once(t, e.service(mbs...))
	if len(rep.Failed) != len(cases) {
		t.Fatalf("failed: %v", rep.Failed)
	}
	for _, f := range rep.Failed {
		if !errors.Is(f.Err, ErrTLS) || !strings.Contains(f.Err.Error(), "certificate") {
			t.Errorf("%s: %v", f.Mailbox, f.Err)
		}
	}
	// STARTTLS with the right CA works.
	m = e.mailbox("starttls")
	m.TLS, m.Port = TLSStartTLS, e.d.Port
	e.fill(e.client(), "INBOX", messages(2, "starttls"))
	rep = once(t, e.service(m))
	if len(rep.Failed) != 0 || folderReport(t, rep, "starttls", "INBOX").New != 2 {
		t.Fatalf("starttls: %+v", rep)
	}
}

// TestDeadLetter: a message the archive refuses goes to the dead-letter table with its SHA-256
// and the reason; the folder goes on and the cursor passes it.
func TestDeadLetter(t *testing.T) {
	e := newEnv(t)
	msgs := messages(5, "dead")
	e.fill(e.client(), "INBOX", msgs)
	bad := sha256.Sum256(msgs[2])
	e.arc.refuse = func(raw []byte) bool { return sha256.Sum256(raw) == bad }
	rep := once(t, e.service(e.mailbox("mb")))
	fr := folderReport(t, rep, "mb", "INBOX")
	if fr.Refused != 1 || fr.New != 4 || fr.UID != 5 {
		t.Fatalf("report %v", fr)
	}
	dls, err := DeadLetters(context.Background(), e.pool, "mb", time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 1 || dls[0].SHA256 != bad || dls[0].UID != 3 || dls[0].Size != int64(len(msgs[2])) ||
		!strings.Contains(dls[0].Reason, "size limit") {
		t.Fatalf("dead letters %+v", dls)
	}
}

// TestArchiveUnavailable: while the archive cannot take messages from UID 4 on, ingest waits and
// retries, and the cursor never passes UID 3; when the archive is back everything is stored.
func TestArchiveUnavailable(t *testing.T) {
	e := newEnv(t)
	e.fill(e.client(), "INBOX", messages(10, "down"))
	var mu = &e.arc.mu
	down := true
	e.arc.down = func(src Source) bool {
		mu.Lock()
		defer mu.Unlock()
		return down && src.UID >= 4
	}
	s := e.service(e.mailbox("mb"))
	done := make(chan Report, 1)
	go func() { done <- once(t, s) }()
	deadline := time.Now().Add(time.Minute)
	for e.cursorOf("mb", "INBOX").UID < 3 {
		if time.Now().After(deadline) {
			t.Fatal("the cursor never reached UID 3")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for range 20 { // the archive stays down a while: the cursor must hold
		time.Sleep(50 * time.Millisecond)
		if c := e.cursorOf("mb", "INBOX"); c.UID != 3 {
			t.Fatalf("cursor at %d while UID 4 is unacknowledged", c.UID)
		}
	}
	mu.Lock()
	down = false
	mu.Unlock()
	rep := <-done
	if fr := folderReport(t, rep, "mb", "INBOX"); fr.New != 10 || fr.UID != 10 {
		t.Fatalf("report %v", fr)
	}
	if !strings.Contains(e.logs.String(), "archive cannot take the message") {
		t.Error("no log line while the archive was down")
	}
}

// TestAfterArchivePolicies: move:FOLDER:0 moves archived messages, expunge:0 removes them, and a
// message the archive does not confirm holding stays where it is.
func TestAfterArchivePolicies(t *testing.T) {
	for _, policy := range []string{"move:Archiviati:0", "expunge:0"} {
		t.Run(strings.Split(policy, ":")[0], func(t *testing.T) {
			e := newEnv(t)
			c := e.client()
			msgs := messages(6, policy)
			e.fill(c, "INBOX", msgs)
			kept := sha256.Sum256(msgs[1])
			e.arc.hide[kept] = true // the archive "lost" it: Lookup does not confirm it
			mb := e.mailbox("mb")
			mb.AfterArchive = policy
			if err := mb.check(); err != nil {
				t.Fatal(err)
			}
			mb.Folders = []string{"INBOX"}
			rep := once(t, e.service(mb))
			if fr := folderReport(t, rep, "mb", "INBOX"); fr.New != 6 {
				t.Fatalf("report %v", fr)
			}
			st, err := c.Status("INBOX", []imap.StatusItem{imap.StatusMessages})
			if err != nil {
				t.Fatal(err)
			}
			if st.Messages != 1 {
				t.Fatalf("INBOX holds %d messages, want only the unconfirmed one", st.Messages)
			}
			if _, err := c.Select("INBOX", true); err != nil {
				t.Fatal(err)
			}
			ch := make(chan *imap.Message, 2)
			if err := c.Fetch(seq(1), []imap.FetchItem{bodySection.FetchItem()}, ch); err != nil {
				t.Fatal(err)
			}
			left, _ := literalBytes((<-ch).GetBody(bodySection))
			if sha256.Sum256(left) != kept {
				t.Error("the message left is not the unconfirmed one")
			}
			if strings.HasPrefix(policy, "move") {
				st, err := c.Status("Archiviati", []imap.StatusItem{imap.StatusMessages})
				if err != nil || st.Messages != 5 {
					t.Fatalf("Archiviati: %v %v", st, err)
				}
			}
		})
	}
}

func seq(n uint32) *imap.SeqSet {
	s := new(imap.SeqSet)
	s.AddNum(n)
	return s
}

// TestRunIdle: the continuous service archives what is there, then a message appended later
// arrives through IDLE; cancelling the context stops it promptly and releases the lease.
func TestRunIdle(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	e.fill(c, "INBOX", messages(3, "idle"))
	o := testOptions()
	o.StatusInterval = time.Minute // only IDLE can bring the new message in time
	s, err := New(context.Background(), Config{Mailboxes: []Mailbox{e.mailbox("mb")}, Archiver: e.arc, Pool: e.pool, Options: o})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	waitFor(t, func() bool { return e.arc.count() == 3 })
	time.Sleep(300 * time.Millisecond) // let it enter IDLE
	e.fill(c, "INBOX", messages(1, "idle-late"))
	waitFor(t, func() bool { return e.arc.count() == 4 })
	waitFor(t, func() bool { return e.cursorOf("mb", "INBOX").UID == 4 })
	t0 := time.Now()
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop within 10s of cancellation")
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("shutdown took %v", d)
	}
	var expired bool
	if err := e.pool.QueryRow(context.Background(), `SELECT expires_at < now() FROM ingest_leases WHERE mailbox = 'mb'`).Scan(&expired); err != nil || !expired {
		t.Errorf("lease not released: %v %v", expired, err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within a minute")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRunStatusCheck: while the service idles on INBOX, mail delivered straight into another
// folder (as a provider's filter files receipts) is found by the STATUS check, well before a
// full pass would be due.
func TestRunStatusCheck(t *testing.T) {
	e := newEnv(t)
	c := e.client()
	e.fill(c, "INBOX", messages(2, "status-inbox"))
	e.fill(c, "Ricevute", messages(2, "status-ricevute"))
	o := testOptions()
	o.StatusInterval = 300 * time.Millisecond
	o.FullPassInterval = time.Hour
	s, err := New(context.Background(), Config{Mailboxes: []Mailbox{e.mailbox("mb")}, Archiver: e.arc, Pool: e.pool, Options: o,
		Logger: slog.New(slog.NewTextHandler(e.logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	waitFor(t, func() bool { return e.arc.count() == 4 })
	late := messages(1, "status-late")
	t0 := time.Now()
	e.fill(c, "Ricevute", late)
	waitFor(t, func() bool { return e.arc.has(late[0]) })
	if d := time.Since(t0); d > 10*time.Second {
		t.Errorf("the message filed in Ricevute took %v", d)
	}
	if !strings.Contains(e.logs.String(), "STATUS check: news in folders") {
		t.Errorf("not found by the STATUS check:\n%s", e.logs.String())
	}
}

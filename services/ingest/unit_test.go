package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap"
	"github.com/emersion/go-imap/backend/memory"
	"github.com/emersion/go-imap/server"
)

func TestParseMailboxes(t *testing.T) {
	good := `
mailboxes:
  - name: protocollo
    host: imaps.pec.example.it
    username: protocollo@pec.ordine.example.it
    password_file: /run/secrets/pec-protocollo
    exclude_folders: [Trash]
    after_archive: move:Archivio:Vecchi:30
  - name: segreteria
    host: 127.0.0.1
    tls: none
    username: "12345"
    password_env: PEC_SEGRETERIA
    folders: [INBOX, "Ricevute/*"]
`
	ms, err := ParseMailboxes([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if ms[0].Port != 993 || ms[0].TLS != TLSImplicit || len(ms[0].Folders) != 1 || ms[0].Folders[0] != "*" {
		t.Errorf("defaults: %+v", ms[0])
	}
	if p := ms[0].Policy(); p.Action != Move || p.Folder != "Archivio:Vecchi" || p.Days != 30 || !p.Writes() {
		t.Errorf("policy %+v", p)
	}
	if ms[1].Port != 143 || ms[1].Policy().Writes() {
		t.Errorf("second: %+v", ms[1])
	}
	if !ms[0].wantFolder("INBOX") || !ms[0].wantFolder("Ricevute/2026") || ms[0].wantFolder("Trash") {
		t.Error("folders of the first mailbox")
	}
	if !ms[1].wantFolder("Ricevute/2026") || ms[1].wantFolder("Sent") {
		t.Error("folders of the second mailbox")
	}
	bad := map[string]string{
		"no mailboxes":        "mailboxes: []",
		"unknown key":         "mailboxes:\n  - {name: a, host: h, username: u, password_file: f, pasword: x}",
		"password inline":     "mailboxes:\n  - {name: a, host: h, username: u, password: secret}",
		"both passwords":      "mailboxes:\n  - {name: a, host: h, username: u, password_file: f, password_env: E}",
		"plaintext remote":    "mailboxes:\n  - {name: a, host: imap.example.it, tls: none, username: u, password_file: f}",
		"bad tls":             "mailboxes:\n  - {name: a, host: h, tls: ssl, username: u, password_file: f}",
		"duplicate name":      "mailboxes:\n  - {name: a, host: h, username: u, password_file: f}\n  - {name: a, host: h, username: u, password_file: f}",
		"no username":         "mailboxes:\n  - {name: a, host: h, password_file: f}",
		"bad name":            "mailboxes:\n  - {name: 'a b', host: h, username: u, password_file: f}",
		"bad policy":          "mailboxes:\n  - {name: a, host: h, username: u, password_file: f, after_archive: delete}",
		"bad days":            "mailboxes:\n  - {name: a, host: h, username: u, password_file: f, after_archive: 'expunge:-1'}",
		"move without folder": "mailboxes:\n  - {name: a, host: h, username: u, password_file: f, after_archive: 'move:30'}",
		"bad port":            "mailboxes:\n  - {name: a, host: h, port: 70000, username: u, password_file: f}",
		"not yaml":            "mailboxes: [",
	}
	for name, doc := range bad {
		if _, err := ParseMailboxes([]byte(doc)); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v, want ErrConfig", name, err)
		}
	}
}

func TestPassword(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "p")
	os.WriteFile(f, []byte("s3cret\n"), 0o600)
	m := Mailbox{Name: "a", PasswordFile: f}
	if p, err := m.password(nil); err != nil || p != "s3cret" {
		t.Errorf("file: %q %v", p, err)
	}
	m = Mailbox{Name: "a", PasswordEnv: "X"}
	if _, err := m.password(nil); !errors.Is(err, ErrConfig) {
		t.Errorf("env without lookup: %v", err)
	}
	if _, err := m.password(func(string) (string, bool) { return "", false }); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "X is not set") {
		t.Errorf("unset env: %v", err)
	}
	if p, _ := m.password(func(k string) (string, bool) { return "v" + k, true }); p != "vX" {
		t.Errorf("env: %q", p)
	}
}

func TestLiteralScanner(t *testing.T) {
	cases := []struct {
		in      string
		lim     streamLimits
		want    error // nil, ErrTooLarge or ErrIMAP
		wantLit int64 // the literal size named in the error
		conts   int
	}{
		{in: "* 1 FETCH (UID 5 BODY[] {5}\r\nhello)\r\n", lim: streamLimits{literal: 10}},
		{in: "* 1 FETCH (UID 5 BODY[] {500}\r\n", lim: streamLimits{literal: 10}, want: ErrTooLarge, wantLit: 500},
		{in: "* 1 FETCH (UID 5 BODY[] {500+}\r\n", lim: streamLimits{literal: 10}, want: ErrTooLarge, wantLit: 500},
		// Inside a literal, text that looks like a literal header, a long line or a continuation
		// request is data.
		{in: "* 1 FETCH (BODY[] {14}\r\nxx{999999}\r\nxx)\r\n", lim: streamLimits{literal: 20}},
		{in: "* 1 FETCH (BODY[] {30}\r\n+ a\r\n+ b\r\nxxxxxxxxxxxxxxxxxx)\r\n", lim: streamLimits{literal: 40, line: 30}},
		// A brace not ending a line is not a literal.
		{in: "* LIST () \"/\" \"{99999999}\"\r\n", lim: streamLimits{literal: 10}},
		{in: "* OK {12", lim: streamLimits{literal: 10}},
		// Lines outside literals are bounded; continuation requests are counted.
		{in: "* OK 0123456789\r\n* OK 01234567\r\n", lim: streamLimits{line: 16}},
		{in: "* OK 0123456789\r\n* OK 0123456789abcdef", lim: streamLimits{line: 16}, want: ErrIMAP},
		{in: "+ idling\r\n+\r\n* OK +\r\n+ go", conts: 3},
	}
	for _, c := range cases {
		check := func(how string, err error, s *literalScanner) {
			t.Helper()
			switch {
			case c.want == nil && err != nil, c.want != nil && !errors.Is(err, c.want):
				t.Errorf("%q %s: %v, want %v", c.in, how, err, c.want)
			case c.wantLit > 0 && !strings.Contains(err.Error(), fmt.Sprintf("of %d bytes", c.wantLit)):
				t.Errorf("%q %s: %v, want a literal of %d bytes", c.in, how, err, c.wantLit)
			case err == nil && s.conts != c.conts:
				t.Errorf("%q %s: %d continuation requests, want %d", c.in, how, s.conts, c.conts)
			}
		}
		var s literalScanner
		check("whole", s.scan([]byte(c.in), c.lim), &s)
		// Byte by byte gives the same answer.
		var s1 literalScanner
		var err error
		for i := 0; i < len(c.in) && err == nil; i++ {
			err = s1.scan([]byte{c.in[i]}, c.lim)
		}
		check("byte by byte", err, &s1)
	}
}

func FuzzLiteralScanner(f *testing.F) {
	f.Add([]byte("* 1 FETCH (UID 5 BODY[] {5}\r\nhello)\r\n"), 3)
	f.Add([]byte("{999999999999999999999999}\r\n"), 1)
	f.Add([]byte("+ a\r\n* OK {3}\r\n+\r\n)\r\n+ b\r\n"), 7)
	f.Fuzz(func(t *testing.T, b []byte, split int) {
		lim := streamLimits{literal: 1000, line: 64}
		var whole, parts literalScanner
		a := whole.scan(b, lim)
		if split < 0 || split > len(b) {
			split = len(b) / 2
		}
		p := parts.scan(b[:split], lim)
		if p == nil {
			p = parts.scan(b[split:], lim)
		}
		if (a == nil) != (p == nil) || a != nil && a.Error() != p.Error() {
			t.Fatalf("whole %v, split at %d %v", a, split, p)
		}
		if a == nil && whole.conts != parts.conts {
			t.Fatalf("whole %d continuation requests, split at %d %d", whole.conts, split, parts.conts)
		}
		if a != nil && !errors.Is(a, ErrTooLarge) && !errors.Is(a, ErrIMAP) {
			t.Fatalf("error of no kind: %v", a)
		}
	})
}

func FuzzParseMailboxes(f *testing.F) {
	f.Add([]byte("mailboxes:\n  - {name: a, host: h, username: u, password_file: f, after_archive: 'move:X:3'}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, err := ParseMailboxes(b)
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("error not ErrConfig: %v", err)
			}
			return
		}
		for _, m := range ms {
			if m.Name == "" || m.Host == "" || m.Username == "" || (m.TLS == TLSNone && !isLoopback(m.Host)) {
				t.Fatalf("accepted %+v", m)
			}
		}
	})
}

func TestTracker(t *testing.T) {
	tr := newTracker(10, []msgInfo{{uid: 12}, {uid: 13}, {uid: 20}, {uid: 21}})
	now := time.Now()
	tr.fetched(12, now.Add(-time.Hour))
	tr.fetched(13, now.Add(-time.Minute))
	if lag := tr.ack(13); lag < 59*time.Minute {
		t.Errorf("lag %v while UID 12 waits", lag)
	}
	if c := tr.cursor(); c != 10 {
		t.Fatalf("cursor %d before 12 is acknowledged", c)
	}
	tr.ack(20)
	if lag := tr.ack(12); lag != 0 {
		t.Errorf("lag %v with nothing waiting", lag)
	}
	if c := tr.cursor(); c != 20 {
		t.Fatalf("cursor %d, want 20", c)
	}
	tr.ack(21)
	if tr.cursor() != 21 || tr.end() != 21 {
		t.Fatal(tr.cursor(), tr.end())
	}
}

// TestMemoryServerPolling uses go-imap's in-process server, which offers neither IDLE, MOVE nor
// UIDPLUS: the service polls, archives a message appended later, and an expunge policy removes
// nothing (a plain EXPUNGE could remove what other clients flagged).
func TestMemoryServerPolling(t *testing.T) {
	e := &env{t: t, pool: newEnvPool(t), arc: newFakeArchiver(), logs: &syncBuffer{}}
	log := slog.New(slog.NewTextHandler(e.logs, nil))
	be := memory.New()
	srv := server.New(be)
	srv.AllowInsecureAuth = true
	srv.ErrorLog = discardLogger{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	mb := Mailbox{Name: "mem", Host: "127.0.0.1", Port: l.Addr().(*net.TCPAddr).Port, TLS: TLSNone, Username: "username",
		PasswordEnv: "P", AfterArchive: "expunge:0"}
	if err := mb.check(); err != nil {
		t.Fatal(err)
	}
	s, err := New(context.Background(), Config{Mailboxes: []Mailbox{mb}, Archiver: e.arc, Pool: e.pool, Options: testOptions(),
		LookupEnv: func(string) (string, bool) { return "password", true }, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	waitFor(t, func() bool { return e.arc.count() == 1 })
	u, err := be.Login(nil, "username", "password")
	if err != nil {
		t.Fatal(err)
	}
	inbox, err := u.GetMailbox("INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if err := inbox.CreateMessage(nil, time.Now(), bytes.NewBufferString("From: a@b.it\r\nSubject: poll\r\n\r\nnew\r\n")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return e.arc.count() == 2 })
	waitFor(t, func() bool { return e.cursorOf("mem", "INBOX").UID == 7 })
	cancel()
	<-done
	st, err := inbox.Status([]imap.StatusItem{imap.StatusMessages})
	if err != nil || st.Messages != 2 {
		t.Errorf("%d messages left (%v); nothing may be removed without UIDPLUS", st.Messages, err)
	}
	if !strings.Contains(e.logs.String(), "after_archive needs MOVE or UIDPLUS") {
		t.Error("no warning about the policy")
	}
}

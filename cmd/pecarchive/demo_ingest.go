package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/emersion/go-imap/backend"
	"github.com/emersion/go-imap/backend/memory"
	"github.com/emersion/go-imap/client"
	"github.com/emersion/go-imap/server"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pecarchive/pecarchive/pec/pectest"
	"github.com/pecarchive/pecarchive/services/ingest"
)

// demoIMAP is the demo's local IMAP mailbox: a throw-away Dovecot started by scripts/dovecot.sh
// where it can be installed, else go-imap's in-process server.
type demoIMAP struct {
	what    string // said to the user
	mailbox ingest.Mailbox
	client  func() (*client.Client, error)
	stop    func()
}

const demoUser, demoPassword = "segreteria", "demo-password"

// startDemoIMAP starts the demo's mailbox, its password in dir.
func startDemoIMAP(dir string) (*demoIMAP, error) {
	passFile := filepath.Join(dir, "imap-password")
	if err := writeSecretFile(passFile, []byte(demoPassword+"\n")); err != nil {
		return nil, err
	}
	d, err := startDovecot(false)
	if err == nil {
		if err := d.addUser(demoUser, demoPassword); err != nil {
			d.stop()
			return nil, err
		}
		mb, err := d.mailbox("segreteria", demoUser, passFile)
		if err != nil {
			d.stop()
			return nil, err
		}
		return &demoIMAP{what: fmt.Sprintf("Dovecot on 127.0.0.1:%d (implicit TLS, a throw-away CA), started by scripts/dovecot.sh", d.tlsPort),
			mailbox: mb, client: func() (*client.Client, error) { return d.client(demoUser, demoPassword) }, stop: d.stop}, nil
	}
	fmt.Fprintf(os.Stderr, "demo: no Dovecot (%v); using go-imap's in-process IMAP server instead\n", err)
	mem, err := startMemoryIMAP()
	if err != nil {
		return nil, err
	}
	passFile = filepath.Join(dir, "imap-password-inprocess")
	if err := writeSecretFile(passFile, []byte(memoryIMAPPassword+"\n")); err != nil {
		mem.stop()
		return nil, err
	}
	mb, err := mem.mailbox("segreteria", passFile)
	if err != nil {
		mem.stop()
		return nil, err
	}
	return &demoIMAP{what: fmt.Sprintf("go-imap's in-process IMAP server on %s (plaintext, loopback; Dovecot could not be started)", mem.addr),
		mailbox: mb, stop: mem.stop,
		client: func() (*client.Client, error) {
			c, err := client.Dial(mem.addr)
			if err != nil {
				return nil, err
			}
			return c, c.Login(memoryIMAPUser, memoryIMAPPassword)
		}}, nil
}

// The one user of go-imap's in-process server.
const memoryIMAPUser, memoryIMAPPassword = "username", "password"

// memoryIMAP is go-imap's in-process IMAP server on a free loopback port (plaintext), with one
// user whose INBOX starts empty.
type memoryIMAP struct {
	addr  string
	inbox backend.Mailbox
	stop  func()
}

func startMemoryIMAP() (*memoryIMAP, error) {
	be := memory.New()
	u, err := be.Login(nil, memoryIMAPUser, memoryIMAPPassword)
	if err != nil {
		return nil, err
	}
	inbox, err := u.GetMailbox("INBOX")
	if err != nil {
		return nil, err
	}
	inbox.(*memory.Mailbox).Messages = nil // its built-in sample message
	srv := server.New(be)
	srv.AllowInsecureAuth = true
	srv.ErrorLog = ingestDiscardLog{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go srv.Serve(l)
	return &memoryIMAP{addr: l.Addr().String(), inbox: inbox, stop: func() { srv.Close() }}, nil
}

// mailbox returns the mailbox-file entry for the server's user, with the password file passFile.
func (m *memoryIMAP) mailbox(name, passFile string) (ingest.Mailbox, error) {
	host, port, _ := net.SplitHostPort(m.addr)
	ms, err := ingest.ParseMailboxes([]byte(fmt.Sprintf("mailboxes:\n  - {name: %s, host: %s, port: %s, tls: none, username: %s, password_file: %q}\n",
		name, host, port, memoryIMAPUser, passFile)))
	if err != nil {
		return ingest.Mailbox{}, err
	}
	return ms[0], nil
}

type ingestDiscardLog struct{}

func (ingestDiscardLog) Printf(string, ...interface{}) {}
func (ingestDiscardLog) Println(...interface{})        {}

// fill appends the messages to INBOX in the order given, as a provider delivers them.
func (d *demoIMAP) fill(msgs []*pectest.Generated) error {
	c, err := d.client()
	if err != nil {
		return err
	}
	defer c.Logout()
	for _, g := range msgs {
		if err := c.Append("INBOX", nil, g.Time.Add(time.Second), bytes.NewBuffer(g.Bytes)); err != nil {
			return err
		}
	}
	return nil
}

// recordingArchiver stores in the archive in-process and remembers each acknowledgement.
type recordingArchiver struct {
	localArchiver
	mu   sync.Mutex
	recs []ingest.Stored
	srcs []ingest.Source
}

func (r *recordingArchiver) Store(ctx context.Context, raw []byte, src ingest.Source) (ingest.Stored, error) {
	st, err := r.localArchiver.Store(ctx, raw, src)
	if err == nil {
		r.mu.Lock()
		r.recs = append(r.recs, st)
		r.srcs = append(r.srcs, src)
		r.mu.Unlock()
	}
	return st, err
}

// demoIngest puts msgs in a local IMAP mailbox and pulls it into a with `ingest --once`'s code.
// It returns each message's acknowledgement and source, in the order the archive acknowledged
// them, and the generated message each came from (by the SHA-256 of the bytes IMAP returned).
func demoIngest(ctx context.Context, pool *pgxpool.Pool, la localArchiver, msgs []*pectest.Generated, dir string, out io.Writer) (
	recs []ingest.Stored, srcs []ingest.Source, from map[[32]byte]*pectest.Generated, err error) {
	imap, err := startDemoIMAP(dir)
	if err != nil {
		return nil, nil, nil, err
	}
	defer imap.stop()
	fmt.Fprintf(out, "\ningest: the test provider delivers the %d messages of one conversation to the mailbox %q in shuffled order\n"+
		"(receipts may arrive before what they prove); the mailbox is %s\n", len(msgs), imap.mailbox.Name, imap.what)
	if err := imap.fill(msgs); err != nil {
		return nil, nil, nil, fmt.Errorf("filling the demo mailbox: %w", err)
	}
	from = map[[32]byte]*pectest.Generated{}
	for _, g := range msgs {
		from[sha256.Sum256(g.Bytes)] = g
		from[sha256.Sum256(crlf(g.Bytes))] = g // what Dovecot keeps of bare LF
	}
	rec := &recordingArchiver{localArchiver: la}
	svc, err := ingest.New(ctx, ingest.Config{Mailboxes: []ingest.Mailbox{imap.mailbox}, Archiver: rec, Pool: pool,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Options: &ingest.Options{OneConnection: true}})
	if err != nil {
		return nil, nil, nil, err
	}
	rep, err := svc.Once(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	if len(rep.Failed) > 0 {
		return nil, nil, nil, rep.Failed[0]
	}
	for _, f := range rep.Folders {
		fmt.Fprintf(out, "  %s\n", f)
	}
	return rec.recs, rec.srcs, from, nil
}

// crlf turns bare LF line ends into CRLF.
func crlf(b []byte) []byte {
	var out bytes.Buffer
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			out.WriteByte('\r')
		}
		out.WriteByte(c)
	}
	return out.Bytes()
}

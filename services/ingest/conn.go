package ingest

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap"
	"github.com/emersion/go-imap/client"
)

// Errors of a mailbox connection; use errors.Is.
var (
	// ErrAuth: the server refused the username or password. Retrying fast gets PEC accounts
	// locked, so a mailbox that fails so backs off for minutes.
	ErrAuth = errors.New("ingest: authentication failed")
	// ErrTLS: the TLS handshake failed (a certificate that does not match the host or is not
	// trusted, no STARTTLS offered, ...). The connection is refused, never downgraded.
	ErrTLS = errors.New("ingest: TLS refused")
	// ErrIMAP: the connection broke, timed out or the server answered out of protocol.
	ErrIMAP = errors.New("ingest: IMAP connection failed")
	// ErrTooLarge: the server sent a literal larger than the configured maximum.
	ErrTooLarge = errors.New("ingest: literal over the size limit")
)

// Limits on what a server may send besides the literals ingest asked for (see guardConn).
const (
	// MaxResponseLine bounds one line of a server's answer outside literals (go-imap would
	// otherwise hold an endless line in memory); a UID SEARCH answer naming a million messages
	// takes about 8 MB.
	MaxResponseLine = 16 << 20
	// maxContinuations is how many continuation requests ("+" lines) a server may send that no
	// command of ingest waits for (go-imap parks a goroutine for each one, for good).
	maxContinuations = 4
)

// guardConn is the connection go-imap reads and writes (the plaintext side of TLS). It keeps the
// deadlines to itself: go-imap's own SetDeadline calls are ignored and ingest arms read and
// write deadlines scaled to what it expects to transfer. It also guards go-imap, which trusts
// the server, against a hostile or broken one: it closes the connection before go-imap reads a
// literal announced over max bytes (which it would allocate at once), a line outside literals
// longer than MaxResponseLine, or more continuation requests than ingest's commands wait for.
type guardConn struct {
	net.Conn
	max int64

	mu      sync.Mutex
	lit     literalScanner
	allowed int   // continuation requests allowed so far (maxContinuations, plus one per IDLE)
	failed  error // why the guard closed the connection (go-imap only says it was closed)
}

func (g *guardConn) Read(p []byte) (int, error) {
	n, err := g.Conn.Read(p)
	if n > 0 {
		g.mu.Lock()
		serr := g.lit.scan(p[:n], streamLimits{literal: g.max, line: MaxResponseLine})
		if serr == nil && g.lit.conts > g.allowed+maxContinuations {
			serr = fmt.Errorf("%w: the server sent %d continuation requests no command asked for", ErrIMAP, g.lit.conts-g.allowed)
		}
		if serr != nil && g.failed == nil {
			g.failed = serr
		}
		g.mu.Unlock()
		if serr != nil {
			g.Conn.Close()
			return 0, serr
		}
	}
	return n, err
}

// failure returns why the guard closed the connection, or nil.
func (g *guardConn) failure() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.failed
}

// expectContinuation allows one more continuation request (IDLE's "+ idling").
func (g *guardConn) expectContinuation() {
	g.mu.Lock()
	g.allowed++
	g.mu.Unlock()
}

// SetDeadline and friends are go-imap's; ingest arms its own with arm.
func (g *guardConn) SetDeadline(time.Time) error      { return nil }
func (g *guardConn) SetReadDeadline(time.Time) error  { return nil }
func (g *guardConn) SetWriteDeadline(time.Time) error { return nil }

// arm sets the connection's deadline d from now (zero or less: none).
func (g *guardConn) arm(d time.Duration) {
	if d <= 0 {
		g.Conn.SetDeadline(time.Time{})
		return
	}
	g.Conn.SetDeadline(time.Now().Add(d))
}

// streamLimits are what literalScanner enforces (zero: no limit).
type streamLimits struct {
	literal int64 // the largest literal a server may announce
	line    int64 // the longest line outside literals
}

// literalScanner follows an IMAP server's byte stream and finds literal headers ({N} or {N+}
// then CRLF, which only literals end a line with: quoted strings cannot hold CR or LF), skipping
// the N bytes of each literal. Outside literals it measures each line and counts continuation
// requests (lines starting with "+").
type literalScanner struct {
	skip  int64 // bytes of the current literal still to come
	state int   // 0 text, 1 in {digits, 2 after +, 3 after }, 4 after } CR
	n     int64
	line  int64 // bytes of the current line so far, literals left out
	conts int   // continuation requests seen
}

// scan consumes b. It fails with ErrTooLarge at a literal announced over lim.literal and with
// ErrIMAP at a line over lim.line.
func (s *literalScanner) scan(b []byte, lim streamLimits) error {
	for i := 0; i < len(b); i++ {
		if s.skip > 0 {
			k := min(s.skip, int64(len(b)-i))
			s.skip -= k
			i += int(k) - 1
			continue
		}
		c := b[i]
		if s.line == 0 && c == '+' {
			s.conts++
		}
		s.line++
		if c == '\n' {
			s.line = 0
		} else if lim.line > 0 && s.line > lim.line {
			return fmt.Errorf("%w: the server sent a line of more than %d bytes", ErrIMAP, lim.line)
		}
		switch s.state {
		case 1:
			switch {
			case c >= '0' && c <= '9':
				if s.n < 1<<40 {
					s.n = s.n*10 + int64(c-'0')
				}
				continue
			case c == '+':
				s.state = 2
				continue
			case c == '}':
				s.state = 3
				continue
			}
		case 2:
			if c == '}' {
				s.state = 3
				continue
			}
		case 3:
			if c == '\r' {
				s.state = 4
				continue
			}
		case 4:
			if c == '\n' {
				s.state = 0
				if lim.literal > 0 && s.n > lim.literal {
					return fmt.Errorf("%w: the server announced a literal of %d bytes (limit %d)", ErrTooLarge, s.n, lim.literal)
				}
				s.skip = s.n
				continue
			}
		}
		s.state = 0
		if c == '{' {
			s.state, s.n = 1, 0
		}
	}
	return nil
}

// imapConn is a logged-in connection to one mailbox.
type imapConn struct {
	c       *client.Client
	g       *guardConn
	o       *Options
	stopC   func() bool // stops closing the connection on context cancellation
	upd     chan client.Update
	changed chan struct{} // signalled (without blocking) on mailbox updates
}

func (ic *imapConn) changedCh() chan struct{} { return ic.changed }

// tlsConfig returns the client TLS configuration of a mailbox: its CA file or the system's
// roots, the host name checked, TLS 1.2 at least.
func tlsConfig(m *Mailbox) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: m.Host, MinVersion: tls.VersionTLS12}
	if m.CAFile != "" {
		pem, err := os.ReadFile(m.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%w: mailbox %s: ca_file: %w", ErrConfig, m.Name, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: mailbox %s: ca_file %s holds no PEM certificate", ErrConfig, m.Name, m.CAFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// dial connects to the mailbox's server (TLS as configured), logs in and returns the
// connection. Cancelling ctx closes it at once, whatever it is doing.
func dial(ctx context.Context, m *Mailbox, password string, o *Options) (*imapConn, error) {
	var tcfg *tls.Config
	if m.TLS != TLSNone {
		var err error
		if tcfg, err = tlsConfig(m); err != nil {
			return nil, err
		}
	}
	d := net.Dialer{Timeout: o.DialTimeout}
	raw, err := d.DialContext(ctx, "tcp", m.Addr())
	if err != nil {
		return nil, fmt.Errorf("%w: mailbox %s: connect %s: %w", ErrIMAP, m.Name, m.Addr(), err)
	}
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	fail := func(err error) (*imapConn, error) {
		stop()
		raw.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	raw.SetDeadline(time.Now().Add(o.CommandTimeout))
	var conn net.Conn = raw
	switch m.TLS {
	case TLSImplicit:
		tc := tls.Client(raw, tcfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fail(fmt.Errorf("%w: mailbox %s: %s: %w", ErrTLS, m.Name, m.Addr(), err))
		}
		conn = tc
	case TLSStartTLS:
		tc, err := startTLS(ctx, raw, tcfg)
		if err != nil {
			return fail(fmt.Errorf("mailbox %s: %s: %w", m.Name, m.Addr(), err))
		}
		conn = tc
	}
	g := &guardConn{Conn: conn, max: o.MaxMessageSize + 64<<10}
	c, err := client.New(g)
	ic := &imapConn{c: c, g: g, o: o, stopC: stop, changed: make(chan struct{}, 1)}
	if err != nil {
		return fail(fmt.Errorf("mailbox %s: %w", m.Name, ic.wrap("greeting", err)))
	}
	c.ErrorLog = discardLogger{}
	upd := make(chan client.Update, 64)
	c.Updates = upd
	ic.upd = upd
	g.arm(o.CommandTimeout)
	if err := c.Login(m.Username, password); err != nil {
		if isClosed(c) {
			return fail(fmt.Errorf("mailbox %s: %w", m.Name, ic.wrap("login", err)))
		}
		c.Logout()
		return fail(fmt.Errorf("%w: mailbox %s: user %s: %v", ErrAuth, m.Name, m.Username, err))
	}
	g.arm(0)
	return ic, nil
}

// startTLS runs STARTTLS on a fresh plaintext connection before any credential is sent: it reads
// the greeting, asks for STARTTLS, requires the tagged OK and completes the handshake. The
// greeting was consumed, so go-imap is handed the TLS connection behind a greeting of our own
// (it then asks the server for its capabilities again, as RFC 3501 requires after STARTTLS).
func startTLS(ctx context.Context, raw net.Conn, cfg *tls.Config) (net.Conn, error) {
	br := bufio.NewReaderSize(raw, 4096)
	readLine := func() (string, error) {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return "", fmt.Errorf("%w: %w", ErrIMAP, err)
		}
		return string(line), nil
	}
	greet, err := readLine()
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(greet, "* OK") {
		return nil, fmt.Errorf("%w: greeting %q", ErrIMAP, strings.TrimSpace(greet))
	}
	if _, err := io.WriteString(raw, "S1 STARTTLS\r\n"); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrIMAP, err)
	}
	for {
		line, err := readLine()
		if err != nil {
			return nil, err
		}
		if strings.HasPrefix(line, "* ") {
			continue
		}
		if !strings.HasPrefix(line, "S1 OK") {
			return nil, fmt.Errorf("%w: the server does not start TLS: %q", ErrTLS, strings.TrimSpace(line))
		}
		break
	}
	if br.Buffered() > 0 {
		// Plaintext after the OK would be injected into the TLS session (CVE-2011-0411 class).
		return nil, fmt.Errorf("%w: the server sent data after its STARTTLS answer", ErrTLS)
	}
	tc := tls.Client(raw, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTLS, err)
	}
	return &greetConn{Conn: tc, r: io.MultiReader(strings.NewReader("* OK TLS started\r\n"), tc)}, nil
}

// greetConn reads r (a greeting, then the connection) instead of the connection itself.
type greetConn struct {
	net.Conn
	r io.Reader
}

func (g *greetConn) Read(p []byte) (int, error) { return g.r.Read(p) }

func isClosed(c *client.Client) bool {
	select {
	case <-c.LoggedOut():
		return true
	default:
		return false
	}
}

// close logs out (bounded by the command timeout) and closes the connection.
func (ic *imapConn) close() {
	ic.g.arm(5 * time.Second)
	if !isClosed(ic.c) {
		ic.c.Logout()
	}
	ic.g.Conn.Close()
	ic.stopC()
}

// wrap sorts an error of a command into ErrIMAP (the connection is then closed, since its state
// is unknown) unless it is already sorted. When the guard closed the connection, its reason is
// the error.
func (ic *imapConn) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrTooLarge) || errors.Is(err, ErrIMAP) || errors.Is(err, context.Canceled) {
		return err
	}
	if gerr := ic.g.failure(); gerr != nil {
		return fmt.Errorf("%s: %w", op, gerr)
	}
	return fmt.Errorf("%w: %s: %w", ErrIMAP, op, err)
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...interface{}) {}
func (discardLogger) Println(...interface{})        {}

// capable reports whether the server announced the capability.
func (ic *imapConn) capable(name string) bool {
	ok, _ := ic.c.Support(name)
	return ok
}

// listFolders returns the selectable folders of the mailbox.
func (ic *imapConn) listFolders() ([]string, error) {
	ic.g.arm(ic.o.CommandTimeout)
	defer ic.g.arm(0)
	ch := make(chan *imap.MailboxInfo, 64)
	done := make(chan error, 1)
	go func() { done <- ic.c.List("", "*", ch) }()
	var out []string
	for mi := range ch {
		if !selectable(mi) {
			continue
		}
		out = append(out, mi.Name)
	}
	if err := <-done; err != nil {
		return nil, ic.wrap("LIST", err)
	}
	return out, nil
}

func selectable(mi *imap.MailboxInfo) bool {
	for _, a := range mi.Attributes {
		switch strings.ToLower(a) {
		case `\noselect`, `\nonexistent`:
			return false
		}
	}
	return true
}

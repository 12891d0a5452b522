package ingest

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap"
)

// fakeIMAP is a scripted IMAP server on loopback for the cases a real server cannot be made to
// show: a hostile or broken server, or one without MOVE. It serves a model of folders well
// enough for ingest (CAPABILITY, LOGIN, LIST, EXAMINE/SELECT, STATUS, CREATE, UID FETCH of
// sizes, bodies and partial bodies, UID SEARCH UID, UID COPY, UID STORE \Deleted, UID EXPUNGE,
// IDLE, NOOP, LOGOUT), and a hook may answer any command in its place. It counts the
// connections open at once.
type fakeIMAP struct {
	t    *testing.T
	l    net.Listener
	caps string // besides IMAP4rev1

	mu      sync.Mutex
	folders map[string]*fakeFolder
	conns   []net.Conn
	// hook, when set, sees every command first; it returns true when it answered it (or chose
	// to leave it unanswered). conn counts the connections from 1.
	hook func(s *fakeSession, tag, cmd, args string) bool

	n              atomic.Int32 // connections accepted
	open, mostOpen atomic.Int32 // connections open now, and at most
}

type fakeFolder struct {
	uidValidity, uidNext uint32
	msgs                 []fakeMsg
}

type fakeMsg struct {
	uid     uint32
	body    []byte
	deleted bool // flagged \Deleted
}

// fakeSession is one connection of a fakeIMAP.
type fakeSession struct {
	f        *fakeIMAP
	conn     int
	w        *bufio.Writer
	r        *bufio.Reader
	selected string
}

func startFakeIMAP(t *testing.T, caps string) *fakeIMAP {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeIMAP{t: t, l: l, caps: caps, folders: map[string]*fakeFolder{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns = append(f.conns, c)
			f.mu.Unlock()
			go f.serve(c, int(f.n.Add(1)))
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		f.mu.Lock()
		for _, c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
	})
	return f
}

// mailbox returns a mailbox entry for the fake server (plaintext on loopback).
func (f *fakeIMAP) mailbox(name string) Mailbox {
	m := Mailbox{Name: name, Host: "127.0.0.1", Port: f.l.Addr().(*net.TCPAddr).Port, TLS: TLSNone,
		Username: "user", PasswordEnv: "FAKE_PASSWORD"}
	if err := m.check(); err != nil {
		f.t.Fatal(err)
	}
	return m
}

// put appends messages to folder (created with UIDVALIDITY uv when missing) and returns their
// UIDs.
func (f *fakeIMAP) put(folder string, uv uint32, bodies ...[]byte) []uint32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	fo := f.folders[folder]
	if fo == nil {
		fo = &fakeFolder{uidValidity: uv, uidNext: 1}
		f.folders[folder] = fo
	}
	var uids []uint32
	for _, b := range bodies {
		fo.msgs = append(fo.msgs, fakeMsg{uid: fo.uidNext, body: b})
		uids = append(uids, fo.uidNext)
		fo.uidNext++
	}
	return uids
}

func (f *fakeIMAP) setHook(h func(s *fakeSession, tag, cmd, args string) bool) {
	f.mu.Lock()
	f.hook = h
	f.mu.Unlock()
}

func (f *fakeIMAP) serve(c net.Conn, n int) {
	defer c.Close()
	for o := f.open.Add(1); ; {
		m := f.mostOpen.Load()
		if o <= m || f.mostOpen.CompareAndSwap(m, o) {
			break
		}
	}
	defer f.open.Add(-1)
	s := &fakeSession{f: f, conn: n, w: bufio.NewWriter(c), r: bufio.NewReader(c)}
	f.mu.Lock()
	hook := f.hook
	f.mu.Unlock()
	if hook != nil && hook(s, "", "GREETING", "") {
		s.w.Flush()
	} else {
		s.printf("* OK [CAPABILITY IMAP4rev1%s] fake ready\r\n", f.caps)
	}
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return
		}
		tag, rest, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
		cmd, args, _ := strings.Cut(rest, " ")
		cmd = strings.ToUpper(cmd)
		if cmd == "UID" {
			sub, a, _ := strings.Cut(args, " ")
			cmd, args = "UID "+strings.ToUpper(sub), a
		}
		f.mu.Lock()
		hook := f.hook
		f.mu.Unlock()
		if hook != nil && hook(s, tag, cmd, args) {
			if s.w.Flush() != nil {
				return
			}
			continue
		}
		if !s.answer(tag, cmd, args) {
			return
		}
	}
}

func (s *fakeSession) printf(format string, a ...any) {
	fmt.Fprintf(s.w, format, a...)
	s.w.Flush()
}

// answer answers a command from the model; false ends the session.
func (s *fakeSession) answer(tag, cmd, args string) bool {
	f := s.f
	f.mu.Lock()
	defer f.mu.Unlock()
	switch cmd {
	case "CAPABILITY":
		fmt.Fprintf(s.w, "* CAPABILITY IMAP4rev1%s\r\n%s OK done\r\n", f.caps, tag)
	case "LOGIN", "NOOP", "CLOSE", "UNSELECT":
		fmt.Fprintf(s.w, "%s OK done\r\n", tag)
	case "LOGOUT":
		fmt.Fprintf(s.w, "* BYE bye\r\n%s OK done\r\n", tag)
		s.w.Flush()
		return false
	case "LIST":
		for name := range f.folders {
			fmt.Fprintf(s.w, "* LIST () \"/\" %q\r\n", name)
		}
		fmt.Fprintf(s.w, "%s OK done\r\n", tag)
	case "SELECT", "EXAMINE":
		name := strings.Trim(args, `"`)
		fo := f.folders[name]
		if fo == nil {
			fmt.Fprintf(s.w, "%s NO no such folder\r\n", tag)
			break
		}
		s.selected = name
		fmt.Fprintf(s.w, "* %d EXISTS\r\n* OK [UIDVALIDITY %d] ok\r\n* OK [UIDNEXT %d] ok\r\n%s OK [READ-ONLY] done\r\n",
			len(fo.msgs), fo.uidValidity, fo.uidNext, tag)
	case "STATUS":
		name, _, _ := strings.Cut(args, " ")
		name = strings.Trim(name, `"`)
		fo := f.folders[name]
		if fo == nil {
			fmt.Fprintf(s.w, "%s NO no such folder\r\n", tag)
			break
		}
		fmt.Fprintf(s.w, "* STATUS %q (MESSAGES %d UIDNEXT %d UIDVALIDITY %d)\r\n%s OK done\r\n",
			name, len(fo.msgs), fo.uidNext, fo.uidValidity, tag)
	case "UID FETCH":
		fo := f.folders[s.selected]
		setArg, items, _ := strings.Cut(args, " ")
		set, err := imap.ParseSeqSet(setArg)
		if fo == nil || err != nil {
			fmt.Fprintf(s.w, "%s BAD bad fetch\r\n", tag)
			break
		}
		for i, m := range fo.msgs {
			if !uidIn(set, m.uid, fo) {
				continue
			}
			s.writeFetch(i+1, m, items)
		}
		fmt.Fprintf(s.w, "%s OK done\r\n", tag)
	case "IDLE":
		fmt.Fprintf(s.w, "+ idling\r\n")
		s.w.Flush()
		f.mu.Unlock()
		line, err := s.r.ReadString('\n')
		f.mu.Lock()
		if err != nil || !strings.EqualFold(strings.TrimSpace(line), "DONE") {
			return false
		}
		fmt.Fprintf(s.w, "%s OK done\r\n", tag)
	case "CREATE":
		name := strings.Trim(args, `"`)
		if f.folders[name] == nil {
			f.folders[name] = &fakeFolder{uidValidity: uint32(100 + len(f.folders)), uidNext: 1}
		}
		fmt.Fprintf(s.w, "%s OK done\r\n", tag)
	case "UID SEARCH": // UID set only
		fo := f.folders[s.selected]
		fields := strings.Fields(args)
		if len(fields) > 2 && strings.EqualFold(fields[0], "CHARSET") {
			fields = fields[2:]
		}
		if len(fields) < 2 || !strings.EqualFold(fields[0], "UID") {
			fields = []string{"", "x"}
		}
		set, err := imap.ParseSeqSet(fields[1])
		if fo == nil || err != nil {
			fmt.Fprintf(s.w, "%s BAD search\r\n", tag)
			break
		}
		fmt.Fprintf(s.w, "* SEARCH")
		for _, m := range fo.msgs {
			if uidIn(set, m.uid, fo) {
				fmt.Fprintf(s.w, " %d", m.uid)
			}
		}
		fmt.Fprintf(s.w, "\r\n%s OK done\r\n", tag)
	case "UID COPY", "UID STORE", "UID EXPUNGE":
		fo := f.folders[s.selected]
		setArg, rest, _ := strings.Cut(args, " ")
		set, err := imap.ParseSeqSet(setArg)
		if fo == nil || err != nil {
			fmt.Fprintf(s.w, "%s BAD bad set\r\n", tag)
			break
		}
		switch cmd {
		case "UID COPY":
			to := f.folders[strings.Trim(rest, `"`)]
			if to == nil {
				fmt.Fprintf(s.w, "%s NO [TRYCREATE] no such folder\r\n", tag)
				return s.w.Flush() == nil
			}
			for _, m := range fo.msgs {
				if uidIn(set, m.uid, fo) {
					to.msgs = append(to.msgs, fakeMsg{uid: to.uidNext, body: m.body})
					to.uidNext++
				}
			}
		case "UID STORE":
			if !strings.Contains(rest, `+FLAGS`) || !strings.Contains(rest, `\Deleted`) {
				fmt.Fprintf(s.w, "%s BAD only +FLAGS \\Deleted\r\n", tag)
				return s.w.Flush() == nil
			}
			for i, m := range fo.msgs {
				if uidIn(set, m.uid, fo) {
					fo.msgs[i].deleted = true
				}
			}
		case "UID EXPUNGE":
			for i := len(fo.msgs) - 1; i >= 0; i-- {
				if m := fo.msgs[i]; m.deleted && uidIn(set, m.uid, fo) {
					fo.msgs = append(fo.msgs[:i], fo.msgs[i+1:]...)
					fmt.Fprintf(s.w, "* %d EXPUNGE\r\n", i+1)
				}
			}
		}
		fmt.Fprintf(s.w, "%s OK done\r\n", tag)
	case "GETQUOTAROOT":
		fmt.Fprintf(s.w, "%s NO no quota\r\n", tag)
	default:
		fmt.Fprintf(s.w, "%s BAD unknown command\r\n", tag)
	}
	return s.w.Flush() == nil
}

// uidIn reports whether set (of UIDs; "*" is the folder's largest) holds uid.
func uidIn(set *imap.SeqSet, uid uint32, fo *fakeFolder) bool {
	last := uint32(0)
	if len(fo.msgs) > 0 {
		last = fo.msgs[len(fo.msgs)-1].uid
	}
	for _, sq := range set.Set {
		lo, hi := sq.Start, sq.Stop
		if lo == 0 {
			lo = last
		}
		if hi == 0 {
			hi = last
		}
		if lo > hi {
			lo, hi = hi, lo
		}
		if uid >= lo && uid <= hi {
			return true
		}
	}
	return false
}

// writeFetch writes the FETCH answer of message m (number seq) for the items asked.
func (s *fakeSession) writeFetch(seq int, m fakeMsg, items string) {
	const date = "25-Nov-2026 10:00:00 +0100"
	switch {
	case strings.Contains(items, "BODY.PEEK[]<"):
		var off, n int
		fmt.Sscanf(items[strings.Index(items, "BODY.PEEK[]<")+len("BODY.PEEK[]<"):], "%d.%d", &off, &n)
		part := m.body[min(off, len(m.body)):min(off+n, len(m.body))]
		fmt.Fprintf(s.w, "* %d FETCH (UID %d INTERNALDATE %q BODY[]<%d> {%d}\r\n%s)\r\n", seq, m.uid, date, off, len(part), part)
	case strings.Contains(items, "BODY.PEEK[]"):
		fmt.Fprintf(s.w, "* %d FETCH (UID %d INTERNALDATE %q BODY[] {%d}\r\n%s)\r\n", seq, m.uid, date, len(m.body), m.body)
	default:
		fmt.Fprintf(s.w, "* %d FETCH (UID %d RFC822.SIZE %d)\r\n", seq, m.uid, len(m.body))
	}
}

// fakeOptions are ingest's options for the fake server: short timeouts, few attempts.
func fakeOptions() *Options {
	o := testOptions()
	o.CommandTimeout = 2 * time.Second
	o.OnceAttempts = 3
	o.BackoffMin, o.BackoffMax = 10*time.Millisecond, 50*time.Millisecond
	return o
}

package mailfile_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/pecarchive/pecarchive/pec/pectest"
	"github.com/pecarchive/pecarchive/services/ingest/mailfile"
)

// writeMbox writes msgs as an mboxrd file: a "From " line before each message, one '>' more
// before every line that starts with '>'s and "From ", and a blank line (eol) after each
// message. Every message must end with a line feed.
func writeMbox(msgs [][]byte, eol string) []byte {
	var b bytes.Buffer
	for i, m := range msgs {
		b.WriteString("From MAILER-DAEMON Wed Nov 25 10:00:0" + string(rune('0'+i%10)) + " 2026" + eol)
		for _, line := range bytes.SplitAfter(m, []byte("\n")) {
			if bytes.HasPrefix(bytes.TrimLeft(line, ">"), []byte("From ")) {
				b.WriteByte('>')
			}
			b.Write(line)
		}
		b.WriteString(eol)
	}
	return b.Bytes()
}

// split reads every message of an mbox held in data.
func split(t testing.TB, data []byte, opts *mailfile.Options) (msgs []mailfile.Message, errs []error) {
	t.Helper()
	r := mailfile.NewMboxReader(bytes.NewReader(data), "test.mbox", opts)
	for {
		m, err := r.Next()
		if err == io.EOF {
			return msgs, errs
		}
		msgs = append(msgs, m)
		errs = append(errs, err)
		if len(msgs) > len(data)+1 {
			t.Fatalf("more messages than bytes")
		}
	}
}

func TestMboxSplit(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want []string // "" means an empty message (ErrEmpty)
	}{
		{"empty file", "", nil},
		{"one message, no blank line at the end", "From a\nA: 1\n\nbody\n", []string{"A: 1\n\nbody\n"}},
		{"two, LF", "From a\nA: 1\n\nx\n\nFrom b\nB: 2\n\ny\n\n", []string{"A: 1\n\nx\n", "B: 2\n\ny\n"}},
		{"two, CRLF", "From a\r\nA: 1\r\n\r\nx\r\n\r\nFrom b\r\nB: 2\r\n\r\ny\r\n\r\n", []string{"A: 1\r\n\r\nx\r\n", "B: 2\r\n\r\ny\r\n"}},
		{"CRLF messages, LF separators", "From a\nA: 1\r\n\r\nx\r\n\nFrom b\nB: 2\r\n\r\ny\r\n\n", []string{"A: 1\r\n\r\nx\r\n", "B: 2\r\n\r\ny\r\n"}},
		{"mixed lines within a message", "From a\nA: 1\r\nB: 2\n\r\nx\ny\r\n\r\nFrom b\n", []string{"A: 1\r\nB: 2\n\r\nx\ny\r\n", ""}},
		{"mboxrd un-escaping", "From a\nA: 1\n\n>From here\n>>From there\n>>>From x\n>Fromage\n> From\n>\n>>\nFrom\nFromage\n\n",
			[]string{"A: 1\n\nFrom here\n>From there\n>>From x\n>Fromage\n> From\n>\n>>\nFrom\nFromage\n"}},
		{"escaped header line", "From a\n>From: x\nA: 1\n\n", []string{">From: x\nA: 1\n"}},
		{"no blank line before the next From", "From a\nA: 1\nFrom b\nB: 2\n", []string{"A: 1\n", "B: 2\n"}},
		{"only one trailing blank line is the separator's", "From a\nA: 1\n\nx\n\n\n\nFrom b\nB: 2\n", []string{"A: 1\n\nx\n\n\n", "B: 2\n"}},
		{"no newline at the end", "From a\nA: 1\n\nx", []string{"A: 1\n\nx"}},
		{"two From lines in a row", "From a\nFrom b\nB: 2\n", []string{"", "B: 2\n"}},
		{"only a From line", "From a", []string{""}},
		{"a blank message", "From a\n\nFrom b\nB\n", []string{"", "B\n"}},
		{"text before the first From line", "junk\nFrom a\nA\n", []string{"junk\n", "A\n"}},
		{"a lone CR is not a line end", "From a\nA: 1\r\rFrom b\n\r\n", []string{"A: 1\r\rFrom b\n"}},
		{"binary", "From a\n\x00\xff\x00\n\n", []string{"\x00\xff\x00\n"}},
		{">From without its space at the end of the file", "From a\nA\n>From", []string{"A\n>From"}},
		{">From and its space at the end of the file", "From a\nA\n>From ", []string{"A\nFrom "}},
		{"> only at the end of the file", "From a\nA\n>>>", []string{"A\n>>>"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// One byte at a time too: the reader must not depend on how reads are cut.
			for _, r := range []io.Reader{strings.NewReader(tc.in), iotest.OneByteReader(strings.NewReader(tc.in))} {
				mr := mailfile.NewMboxReader(r, "t.mbox", nil)
				var got []string
				for {
					m, err := mr.Next()
					if err == io.EOF {
						break
					}
					switch {
					case errors.Is(err, mailfile.ErrEmpty):
						if m.Raw != nil || m.Size != 0 {
							t.Errorf("empty message with %q", m.Raw)
						}
					case err != nil:
						t.Fatalf("message %d: %v", len(got), err)
					case int64(len(m.Raw)) != m.Size || m.Index != len(got):
						t.Errorf("message %d: index %d, size %d for %d bytes", len(got), m.Index, m.Size, len(m.Raw))
					}
					got = append(got, string(m.Raw))
				}
				if strings.Join(got, "|") != strings.Join(tc.want, "|") || len(got) != len(tc.want) {
					t.Errorf("got %q\nwant %q", got, tc.want)
				}
			}
		})
	}
}

func TestMboxOffsets(t *testing.T) {
	in := "From a\nA: 1\n\nFrom bb\r\nB: 2\n"
	msgs, errs := split(t, []byte(in), nil)
	if len(msgs) != 2 || errs[0] != nil || errs[1] != nil {
		t.Fatalf("got %d messages, %v", len(msgs), errs)
	}
	for _, m := range msgs {
		if !strings.HasPrefix(in[m.Offset:], string(m.Raw)) {
			t.Errorf("message %d at offset %d: file has %q there", m.Index, m.Offset, in[m.Offset:])
		}
	}
}

// The PEC test provider's messages (CRLF, LF, binary attachments) come back byte-exact from an
// mbox, whatever its separators' line ends.
func TestMboxRoundTrip(t *testing.T) {
	var msgs [][]byte
	for _, g := range pectest.AllKinds(3) {
		if !bytes.HasSuffix(g.Bytes, []byte("\n")) {
			g.Bytes = append(g.Bytes, "\r\n"...)
		}
		msgs = append(msgs, g.Bytes)
	}
	// Lines an mbox must escape, at the start, in the middle and at the end of a message.
	msgs = append(msgs,
		[]byte("From: head@example.it\r\nSubject: x\r\n\r\nFrom the start\r\n>From one\r\n>>From two\r\n\r\nFrom \r\n"),
		[]byte("Subject: lf\n\n\n\n"),
		[]byte(">From \n"),
	)
	for _, eol := range []string{"\n", "\r\n"} {
		got, errs := split(t, writeMbox(msgs, eol), nil)
		if len(got) != len(msgs) {
			t.Fatalf("eol %q: %d messages, want %d", eol, len(got), len(msgs))
		}
		for i := range msgs {
			if errs[i] != nil || !bytes.Equal(got[i].Raw, msgs[i]) {
				t.Errorf("eol %q: message %d differs (err %v): %d bytes, want %d", eol, i, errs[i], len(got[i].Raw), len(msgs[i]))
			}
		}
	}
}

// Lines longer than the read buffer are read in pieces, and '>' runs longer than it still
// un-escape exactly.
func TestMboxLongLines(t *testing.T) {
	long := strings.Repeat("x", 200_000)
	gt := strings.Repeat(">", 150_000)
	msgs := [][]byte{
		[]byte("A: " + long + "\n\nFrom " + long + "\n"),
		[]byte(gt + "From " + long + "\n" + gt + "\n"),
		[]byte("B: 1\n\n" + long + "From x\n"),
	}
	got, errs := split(t, writeMbox(msgs, "\n"), nil)
	if len(got) != len(msgs) {
		t.Fatalf("%d messages, want %d", len(got), len(msgs))
	}
	for i := range msgs {
		if errs[i] != nil || !bytes.Equal(got[i].Raw, msgs[i]) {
			t.Errorf("message %d differs (err %v): %d bytes, want %d", i, errs[i], len(got[i].Raw), len(msgs[i]))
		}
	}
}

// A message over the limit is reported with its size and SHA-256 and not kept; the next ones are
// read.
func TestMboxTooLarge(t *testing.T) {
	big := []byte("Subject: big\n\n" + strings.Repeat("0123456789\n", 1000) + ">From the middle\n")
	msgs := [][]byte{[]byte("A: 1\n"), big, []byte("B: 2\n")}
	got, errs := split(t, writeMbox(msgs, "\n"), &mailfile.Options{MaxSize: 5000})
	if len(got) != 3 {
		t.Fatalf("%d messages", len(got))
	}
	if errs[0] != nil || errs[2] != nil || string(got[2].Raw) != "B: 2\n" {
		t.Errorf("the messages around the large one: %v %v %q", errs[0], errs[2], got[2].Raw)
	}
	var fe *mailfile.Error
	if !errors.Is(errs[1], mailfile.ErrTooLarge) || !errors.As(errs[1], &fe) || fe.Index != 1 || fe.Path != "test.mbox" {
		t.Fatalf("large message: %v", errs[1])
	}
	if got[1].Raw != nil || got[1].Size != int64(len(big)) || got[1].Sum != sha256.Sum256(big) {
		t.Errorf("large message: raw %d bytes, size %d, sum %x; want size %d, sum %x", len(got[1].Raw), got[1].Size, got[1].Sum, len(big), sha256.Sum256(big))
	}
	if want := "mailfile: test.mbox: message 1 at byte"; !strings.HasPrefix(errs[1].Error(), want) ||
		!strings.Contains(errs[1].Error(), "message over the size limit") {
		t.Errorf("error text %q", errs[1])
	}
}

// A read error ends the stream with an error naming the message; nothing is made up.
func TestMboxReadError(t *testing.T) {
	data := writeMbox([][]byte{[]byte("A: 1\n"), []byte("B: 2\n")}, "\n")
	r := mailfile.NewMboxReader(iotest.TimeoutReader(bytes.NewReader(data)), "t.mbox", nil)
	var err error
	for range 4 {
		if _, err = r.Next(); err != nil {
			break
		}
	}
	if !errors.Is(err, iotest.ErrTimeout) {
		t.Fatalf("err = %v, want the read error", err)
	}
	if _, err2 := r.Next(); !errors.Is(err2, iotest.ErrTimeout) {
		t.Errorf("after a read error Next returned %v", err2)
	}
}

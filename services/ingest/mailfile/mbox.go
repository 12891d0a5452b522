package mailfile

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
)

// mboxBufSize is the read buffer of an MboxReader: lines longer than it are read in pieces.
const mboxBufSize = 64 << 10

var (
	fromLine = []byte("From ")
	gts      = bytes.Repeat([]byte{'>'}, 256)
	crlf     = []byte("\r\n")
)

// MboxReader splits an mbox stream into its messages (see the package documentation for the
// rules). It reads the stream once, line by line, holding at most one message of at most
// Options.MaxSize bytes.
type MboxReader struct {
	r     *bufio.Reader
	name  string
	max   int64
	index int
	off   int64 // bytes of the stream consumed
	state int
	err   error // sticky read error
}

const (
	mboxStart    = iota // nothing read yet
	mboxAfterSep        // a "From " line was consumed: a message follows
	mboxEOF             // the stream has ended
)

// NewMboxReader returns a reader of the mbox stream r; name is the path used in errors.
func NewMboxReader(r io.Reader, name string, opts *Options) *MboxReader {
	o := opts.withDefaults()
	br, ok := r.(*bufio.Reader)
	if !ok || br.Size() < mboxBufSize {
		br = bufio.NewReaderSize(r, mboxBufSize)
	}
	return &MboxReader{r: br, name: name, max: o.MaxSize}
}

// Next returns the next message (Path and Format are left to the caller), or io.EOF after the
// last one. A message over the size limit comes back without Raw, with its Size and Sum and an
// [*Error] wrapping [ErrTooLarge]; an empty one with [ErrEmpty]; the next call goes on with the
// following message. A read error is returned as an [*Error] wrapping it, and ends the stream.
// Bytes before the first "From " line (absent in an mbox found by [Detect]) are returned as a
// message of their own.
func (m *MboxReader) Next() (Message, error) {
	if m.err != nil {
		return Message{}, m.err
	}
	if m.state == mboxStart {
		p, err := m.r.Peek(len(fromLine))
		switch {
		case bytes.Equal(p, fromLine):
			if err := m.skipLine(); err != nil {
				return Message{}, m.fail(Message{Index: m.index, Offset: m.off}, err)
			}
			m.state = mboxAfterSep
		case len(p) == 0 && err == io.EOF:
			m.state = mboxEOF
		case len(p) == 0:
			return Message{}, m.fail(Message{Index: m.index, Offset: m.off}, err)
		}
	}
	if m.state == mboxEOF {
		m.err = io.EOF
		return Message{}, io.EOF
	}
	msg := Message{Index: m.index, Offset: m.off}
	m.index++
	s := sink{max: m.max}
	var blank []byte // a blank line held back: it is dropped if the message ends after it
	for {
		end, err := m.line(&s, &blank)
		if err != nil {
			return Message{}, m.fail(msg, err)
		}
		if end {
			break
		}
	}
	msg.Size = s.size
	if s.h != nil {
		s.h.Sum(msg.Sum[:0])
		return msg, &Error{Path: m.name, Index: msg.Index, Offset: msg.Offset, Mbox: true,
			Err: fmt.Errorf("%w (%d bytes, limit %d)", ErrTooLarge, s.size, m.max)}
	}
	if s.size == 0 {
		return msg, &Error{Path: m.name, Index: msg.Index, Offset: msg.Offset, Mbox: true, Err: ErrEmpty}
	}
	msg.Raw = s.bytes()
	return msg, nil
}

// fail records a read error and returns it for msg.
func (m *MboxReader) fail(msg Message, err error) error {
	m.err = &Error{Path: m.name, Index: msg.Index, Offset: msg.Offset, Mbox: true, Err: err}
	m.state = mboxEOF
	return m.err
}

// line reads one line into s. It returns end = true when the message has ended: at a "From "
// line (consumed) or at the end of the stream.
func (m *MboxReader) line(s *sink, blank *[]byte) (end bool, err error) {
	p, perr := m.r.Peek(1)
	if len(p) == 0 {
		if perr == io.EOF {
			m.state = mboxEOF
			return true, nil
		}
		return false, perr
	}
	lead := 0 // the leading '>' characters, consumed and counted
	switch p[0] {
	case 'F':
		if q, _ := m.r.Peek(len(fromLine)); bytes.Equal(q, fromLine) {
			if err := m.skipLine(); err != nil {
				return false, err
			}
			m.state = mboxAfterSep
			return true, nil
		}
	case '>':
		for {
			c, err := m.r.ReadByte()
			if err == io.EOF {
				break
			}
			if err != nil {
				return false, err
			}
			if c != '>' {
				m.r.UnreadByte()
				break
			}
			lead++
			m.off++
		}
	}
	if lead > 0 {
		gt := lead
		if q, _ := m.r.Peek(len(fromLine)); bytes.Equal(q, fromLine) {
			gt-- // mboxrd: ">From " is "From ", ">>From " is ">From ", and so on
		}
		s.write(*blank)
		*blank = nil
		for gt > 0 {
			n := min(gt, len(gts))
			s.write(gts[:n])
			gt -= n
		}
	}
	for first := true; ; first = false {
		chunk, err := m.r.ReadSlice('\n')
		m.off += int64(len(chunk))
		switch {
		case first && lead == 0 && err == nil && (len(chunk) == 1 || string(chunk) == "\r\n"):
			// A blank line: held back until a line follows it.
			s.write(*blank)
			*blank = crlf[2-len(chunk):]
		case len(chunk) > 0:
			s.write(*blank)
			*blank = nil
			s.write(chunk)
		}
		switch {
		case err == nil:
			return false, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == io.EOF:
			m.state = mboxEOF
			return true, nil
		default:
			return false, err
		}
	}
}

// skipLine consumes the rest of the current line (a "From " line).
func (m *MboxReader) skipLine() error {
	for {
		chunk, err := m.r.ReadSlice('\n')
		m.off += int64(len(chunk))
		switch {
		case err == nil, err == io.EOF:
			return nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return err
		}
	}
}

// sink collects one message's bytes up to max; beyond, it drops them and only hashes and counts.
type sink struct {
	buf  []byte
	size int64
	max  int64
	h    hash.Hash
}

func (s *sink) write(p []byte) {
	if len(p) == 0 {
		return
	}
	s.size += int64(len(p))
	switch {
	case s.h != nil:
		s.h.Write(p)
	case s.size > s.max:
		s.h = sha256.New()
		s.h.Write(s.buf)
		s.h.Write(p)
		s.buf = nil
	default:
		s.buf = append(s.buf, p...)
	}
}

// bytes returns the message, in a slice of its own that wastes little capacity.
func (s *sink) bytes() []byte {
	if cap(s.buf)-len(s.buf) > len(s.buf)/8 {
		return bytes.Clone(s.buf)
	}
	return s.buf
}

package mailfile_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/pecarchive/pecarchive/services/ingest/mailfile"
)

// FuzzMbox splits arbitrary input as an mbox, with a small and a large size limit, and checks
// that nothing crashes, every message is accounted for with the same size under both limits, and
// that messages written as an mbox (the input cut at 0x1e bytes) come back byte-exact.
func FuzzMbox(f *testing.F) {
	for _, s := range []string{
		"", "From a\nA: 1\n\nx\n\nFrom b\nB: 2\n\ny\n\n", "From a\r\nA\r\n\r\n>From x\r\n>>From y\r\n\r\n",
		"junk\nFrom a\n\n", "From a\nFrom b\n", "From a\nA\n>From", ">>>From \n\x1e\n\n\x1eFrom \r\n",
		"From a\nA: 1\r\rFrom b\n\r\n", "Subject: x\r\n\r\nbody\x1eSubject: y\n\n\x00\xff\n",
	} {
		f.Add([]byte(s), uint8(3))
	}
	f.Fuzz(func(t *testing.T, data []byte, limit uint8) {
		small := &mailfile.Options{MaxSize: 1 + int64(limit)}
		all, allErrs := split(t, data, &mailfile.Options{MaxSize: int64(len(data)) + 1})
		cut, cutErrs := split(t, data, small)
		if len(all) != len(cut) {
			t.Fatalf("%d messages with no limit, %d with a limit", len(all), len(cut))
		}
		var total int64
		last := int64(-1)
		for i, m := range all {
			err := allErrs[i]
			switch {
			case errors.Is(err, mailfile.ErrEmpty):
				if m.Size != 0 || m.Raw != nil {
					t.Fatalf("message %d: empty with %d bytes", i, m.Size)
				}
			case err != nil:
				t.Fatalf("message %d: %v", i, err)
			case int64(len(m.Raw)) != m.Size || m.Size == 0:
				t.Fatalf("message %d: %d bytes, size %d", i, len(m.Raw), m.Size)
			}
			if m.Offset <= last || m.Offset > int64(len(data)) || m.Index != i {
				t.Fatalf("message %d: offset %d after %d (input %d bytes), index %d", i, m.Offset, last, len(data), m.Index)
			}
			last, total = m.Offset, total+m.Size
			c := cut[i]
			if c.Size != m.Size {
				t.Fatalf("message %d: size %d with a limit, %d without", i, c.Size, m.Size)
			}
			switch {
			case m.Size > small.MaxSize:
				if !errors.Is(cutErrs[i], mailfile.ErrTooLarge) || c.Raw != nil || c.Sum != sha256.Sum256(m.Raw) {
					t.Fatalf("message %d over the limit: %v, %d bytes kept, sum %x", i, cutErrs[i], len(c.Raw), c.Sum)
				}
			case !bytes.Equal(c.Raw, m.Raw) || (cutErrs[i] == nil) != (err == nil):
				t.Fatalf("message %d differs under the limit", i)
			}
		}
		if total > int64(len(data)) {
			t.Fatalf("messages hold %d bytes, input %d", total, len(data))
		}

		// Round trip: pieces of the input, each ending with a line feed, written as an mbox.
		var msgs [][]byte
		for _, p := range bytes.Split(data, []byte{0x1e}) {
			if len(p) == 0 {
				continue
			}
			if p[len(p)-1] != '\n' {
				p = append(p, '\n')
			}
			msgs = append(msgs, p)
		}
		for _, eol := range []string{"\n", "\r\n"} {
			got, errs := split(t, writeMbox(msgs, eol), nil)
			if len(got) != len(msgs) {
				t.Fatalf("round trip (%q): %d messages, want %d", eol, len(got), len(msgs))
			}
			for i := range msgs {
				if errs[i] != nil || !bytes.Equal(got[i].Raw, msgs[i]) {
					t.Fatalf("round trip (%q): message %d: %v, %q, want %q", eol, i, errs[i], got[i].Raw, msgs[i])
				}
			}
		}
	})
}

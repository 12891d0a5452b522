package smime

import (
	"bytes"
	"testing"

	"github.com/pecarchive/pecarchive/pec"
)

func TestWriteCanonical(t *testing.T) {
	for _, in := range []string{
		"", "\n", "\r\n", "\r", "\r\r\n", "\n\n", "a\nb\r\nc\n\n", "no line end", "x\r\n\ny\n\r", "\n\r\n\n",
	} {
		var b bytes.Buffer
		changed := writeCanonical(&b, []byte(in))
		want := pec.Canonicalize([]byte(in))
		if !bytes.Equal(b.Bytes(), want) {
			t.Errorf("%q: got %q, pec.Canonicalize %q", in, b.Bytes(), want)
		}
		if changed != (b.String() != in) {
			t.Errorf("%q: changed %v", in, changed)
		}
	}
}

func FuzzCanonical(f *testing.F) {
	f.Add([]byte("a\nb\r\nc\r\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		var b bytes.Buffer
		writeCanonical(&b, in)
		if want := pec.Canonicalize(in); !bytes.Equal(b.Bytes(), want) {
			t.Fatalf("%q: got %q, pec.Canonicalize %q", in, b.Bytes(), want)
		}
	})
}

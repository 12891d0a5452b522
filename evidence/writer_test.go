package evidence_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pecarchive/pecarchive/evidence"
)

// stream is a Content whose one message is size bytes generated on the fly, never held whole.
type stream struct {
	size int64
	seed uint64
	flip bool // corrupt one byte, as a blob store returning the wrong bytes would
}

type genReader struct {
	r       *rand.ChaCha8
	n, left int64
	flip    bool
}

func (g *genReader) Read(p []byte) (int, error) {
	if g.left == 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), g.left)]
	g.r.Read(p)
	for i := range p { // mostly text, as mail is
		p[i] = 'a' + p[i]%26
		if (g.n+int64(i))%77 == 76 {
			p[i] = '\n'
		}
	}
	if g.flip && g.n == 0 && len(p) > 0 {
		p[0] ^= 1
	}
	g.n += int64(len(p))
	g.left -= int64(len(p))
	return len(p), nil
}

func (s stream) reader(flip bool) io.Reader {
	var seed [32]byte
	seed[0] = byte(s.seed)
	return &genReader{r: rand.NewChaCha8(seed), left: s.size, flip: flip}
}

func (s stream) sum() [32]byte {
	h := sha256.New()
	io.Copy(h, s.reader(false))
	var out [32]byte
	h.Sum(out[:0])
	return out
}

func (s stream) OpenMessage(context.Context, [32]byte) (io.ReadCloser, error) {
	return io.NopCloser(s.reader(s.flip)), nil
}

func streamBundle(t *testing.T, s stream) *evidence.Bundle {
	f := getFixture(t)
	sum := s.sum()
	b, err := f.arch.Bundle(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := b.Messages[0].Record
	rec.ChainSHA256, rec.AnchorsSHA256 = "", ""
	b.Messages = []evidence.Message{{SHA256: hex.EncodeToString(sum[:]), Size: s.size, Record: rec,
		Leaf: evidence.Leaf{Index: 1, Time: time.Now().Unix(), Extra: ""}, InclusionProof: []string{}}}
	return b
}

// Writing a bundle with one 50 MB message allocates a small fraction of it: the message is
// streamed into its entry, never held.
func TestWriteStreamsLargeMessage(t *testing.T) {
	if testing.Short() {
		t.Skip("50 MB")
	}
	s := stream{size: 50 << 20, seed: 7}
	b := streamBundle(t, s)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	cw := &countWriter{}
	if _, err := evidence.Write(context.Background(), cw, b, s); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("wrote %d bytes for a %d-byte message; allocated %d bytes in all", cw.n, s.size, alloc)
	if alloc > 4<<20 {
		t.Fatalf("allocated %d bytes writing a %d-byte message: not streamed", alloc, s.size)
	}
}

// Bytes that do not hash to the message's name stop the writer with an error naming it.
func TestWriteRefusesWrongContent(t *testing.T) {
	s := stream{size: 1 << 16, seed: 8}
	b := streamBundle(t, s)
	s.flip = true
	_, err := evidence.Write(context.Background(), io.Discard, b, s)
	if !errors.Is(err, evidence.ErrInvalid) || !strings.Contains(err.Error(), b.Messages[0].SHA256) {
		t.Fatalf("Write = %v", err)
	}
}

// What does not hold together is refused before anything is written.
func TestWriteRefusesInconsistentBundles(t *testing.T) {
	f := getFixture(t)
	cases := map[string]func(b *evidence.Bundle){
		"unparsable checkpoint": func(b *evidence.Bundle) { b.Checkpoint = []byte("nonsense") },
		"bad key":               func(b *evidence.Bundle) { b.LogKey = "nonsense" },
		"message twice":         func(b *evidence.Bundle) { b.Messages = append(b.Messages, b.Messages[0]) },
		"leaf beyond the tree":  func(b *evidence.Bundle) { b.Messages[0].Leaf.Index = 1 << 40 },
		"missing chain":         func(b *evidence.Bundle) { b.Chains = nil },
		"missing anchors":       func(b *evidence.Bundle) { b.AnchorSets = nil },
		"missing receipt": func(b *evidence.Bundle) {
			b.Deliveries[0].Recipients[0].Receipts = append(b.Deliveries[0].Recipients[0].Receipts, strings.Repeat("0", 64))
		},
		"missing carrier": func(b *evidence.Bundle) {
			for i := range b.Messages {
				if b.Messages[i].ContainedIn != "" {
					b.Messages[i].ContainedIn = strings.Repeat("1", 64)
				}
			}
		},
		"earlier not smaller": func(b *evidence.Bundle) { b.Earlier = []evidence.Cited{{Checkpoint: b.Checkpoint}} },
	}
	for name, alter := range cases {
		t.Run(name, func(t *testing.T) {
			b, err := f.arch.Bundle([]evidence.Delivery{f.delivery}, nil)
			if err != nil {
				t.Fatal(err)
			}
			alter(b)
			cw := &countWriter{}
			if _, err := evidence.Write(context.Background(), cw, b, f.arch); !errors.Is(err, evidence.ErrInvalid) {
				t.Fatalf("Write = %v", err)
			}
			if cw.n != 0 {
				t.Fatalf("%d bytes written before the refusal", cw.n)
			}
		})
	}
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

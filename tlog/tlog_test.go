package tlog_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pecarchive/pecarchive/internal/samples"
	"github.com/pecarchive/pecarchive/tlog"
	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
	"golang.org/x/mod/sumdb/note"
)

var sum = sha256.Sum256([]byte("hello"))

func TestLeafGolden(t *testing.T) {
	l := tlog.Leaf{Kind: tlog.KindMessage, SHA256: sum, Time: time.Date(2024, 5, 6, 9, 8, 9, 500, time.FixedZone("CEST", 2*3600))}
	want := "pecarchive-leaf/v1\nmessage\n" + hex.EncodeToString(sum[:]) + "\n1714979289\n"
	if got := string(l.Marshal()); got != want {
		t.Fatalf("Marshal = %q, want %q", got, want)
	}
	if len(want) != 103 {
		t.Fatalf("doc comment example says 103 bytes, got %d", len(want))
	}
	h := sha256.Sum256(append([]byte{0}, want...))
	if got := tlog.LeafHash([]byte(want)); got != h {
		t.Fatalf("LeafHash = %x, want %x", got, h)
	}
	if got, want := tlog.LeafHash([]byte(want)), rfc6962.DefaultHasher.HashLeaf([]byte(want)); !bytes.Equal(got[:], want) {
		t.Fatalf("LeafHash differs from rfc6962")
	}
	if got, want := tlog.NodeHash(h[:], sum[:]), rfc6962.DefaultHasher.HashChildren(h[:], sum[:]); !bytes.Equal(got[:], want) {
		t.Fatalf("NodeHash differs from rfc6962")
	}
	if got, want := tlog.EmptyRoot(), rfc6962.DefaultHasher.EmptyRoot(); !bytes.Equal(got[:], want) {
		t.Fatalf("EmptyRoot differs from rfc6962")
	}
	p, err := tlog.ParseLeaf([]byte(want))
	if err != nil {
		t.Fatal(err)
	}
	if p.Kind != "message" || p.SHA256 != sum || !p.Time.Equal(time.Unix(1714979289, 0)) || p.Time.Location() != time.UTC || p.Extra != "" {
		t.Fatalf("ParseLeaf = %+v", p)
	}
}

func TestLeafRoundTrip(t *testing.T) {
	for _, l := range []tlog.Leaf{
		{Kind: "message", SHA256: sum, Time: time.Unix(0, 0).UTC()},
		{Kind: "access", SHA256: sum, Time: time.Unix(tlog.MaxUnixTime, 0).UTC(), Extra: "user=alice\nexport=bundle 7\n"},
		{Kind: "a", Time: time.Unix(1, 0).UTC(), Extra: strings.Repeat("è", tlog.MaxExtraLen/2)},
		{Kind: "x-" + strings.Repeat("9", tlog.MaxKindLen-2), Time: time.Unix(10, 0).UTC(), Extra: "\n"},
	} {
		b := l.Marshal()
		if b == nil {
			t.Fatalf("Marshal(%+v) = nil: %v", l, l.Validate())
		}
		p, err := tlog.ParseLeaf(b)
		if err != nil {
			t.Fatalf("ParseLeaf(%q): %v", b, err)
		}
		if p != l {
			t.Fatalf("round trip: got %+v, want %+v", p, l)
		}
	}
}

func TestLeafInvalid(t *testing.T) {
	ok := tlog.Leaf{Kind: "message", SHA256: sum, Time: time.Unix(5, 0)}
	for name, l := range map[string]tlog.Leaf{
		"empty kind":    {SHA256: sum, Time: ok.Time},
		"kind newline":  {Kind: "message\n", Time: ok.Time},
		"kind upper":    {Kind: "Message", Time: ok.Time},
		"kind digit":    {Kind: "1message", Time: ok.Time},
		"kind long":     {Kind: strings.Repeat("a", tlog.MaxKindLen+1), Time: ok.Time},
		"zero time":     {Kind: "message"},
		"negative time": {Kind: "message", Time: time.Unix(-1, 0)},
		"far time":      {Kind: "message", Time: time.Unix(tlog.MaxUnixTime+1, 0)},
		"extra utf8":    {Kind: "message", Time: ok.Time, Extra: "\xff"},
		"extra long":    {Kind: "message", Time: ok.Time, Extra: strings.Repeat("a", tlog.MaxExtraLen+1)},
	} {
		if err := l.Validate(); !errors.Is(err, tlog.ErrInvalidLeaf) {
			t.Errorf("%s: Validate = %v", name, err)
		}
		if b := l.Marshal(); b != nil {
			t.Errorf("%s: Marshal = %q, want nil", name, b)
		}
	}
	good := string(ok.Marshal())
	hx := hex.EncodeToString(sum[:])
	for name, s := range map[string]string{
		"empty":          "",
		"version":        strings.Replace(good, "v1", "v2", 1),
		"no final lf":    strings.TrimSuffix(good, "\n"),
		"upper hex":      strings.Replace(good, hx, strings.ToUpper(hx), 1),
		"short hex":      strings.Replace(good, hx, hx[2:], 1),
		"leading zero":   strings.Replace(good, "\n5\n", "\n05\n", 1),
		"plus":           strings.Replace(good, "\n5\n", "\n+5\n", 1),
		"empty seconds":  strings.Replace(good, "\n5\n", "\n\n", 1),
		"huge seconds":   strings.Replace(good, "\n5\n", "\n999999999999\n", 1),
		"crlf":           strings.ReplaceAll(good, "\n", "\r\n"),
		"bad extra":      good + "\xc3",
		"too large":      good + strings.Repeat("a", tlog.MaxLeafSize),
		"kind with dash": strings.Replace(good, "message", "-message", 1),
	} {
		if _, err := tlog.ParseLeaf([]byte(s)); !errors.Is(err, tlog.ErrInvalidLeaf) {
			t.Errorf("%s: ParseLeaf(%q) = %v, want ErrInvalidLeaf", name, s, err)
		}
	}
}

func FuzzParseLeaf(f *testing.F) {
	f.Add(tlog.Leaf{Kind: "message", SHA256: sum, Time: time.Unix(1714979289, 0)}.Marshal())
	f.Add(tlog.Leaf{Kind: "access", Time: time.Unix(0, 0), Extra: "who=x\nwhat=y"}.Marshal())
	f.Add([]byte("pecarchive-leaf/v1\n\n\n\n"))
	if d := samples.Dir(); d != "" {
		files, _ := filepath.Glob(filepath.Join(d, "real", "*"))
		for i, p := range files {
			if i == 8 {
				break
			}
			if b, err := os.ReadFile(p); err == nil {
				f.Add(tlog.Leaf{Kind: "message", SHA256: sha256.Sum256(b), Time: time.Unix(int64(len(b)), 0), Extra: filepath.Base(p)}.Marshal())
			}
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := tlog.ParseLeaf(b)
		if err != nil {
			if !errors.Is(err, tlog.ErrInvalidLeaf) {
				t.Fatalf("error does not wrap ErrInvalidLeaf: %v", err)
			}
			return
		}
		if err := l.Validate(); err != nil {
			t.Fatalf("parsed leaf does not validate: %v", err)
		}
		if m := l.Marshal(); !bytes.Equal(m, b) {
			t.Fatalf("not canonical: parsed %q, marshals to %q", b, m)
		}
	})
}

func newKey(t testing.TB, origin string) (note.Signer, string) {
	t.Helper()
	skey, vkey, err := tlog.GenerateKey(origin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := tlog.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := tlog.VerifierKey(skey + "\n"); err != nil || got != vkey {
		t.Fatalf("VerifierKey = %q, %v; want %q", got, err, vkey)
	}
	return s, vkey
}

func TestCheckpoint(t *testing.T) {
	const origin = "pecarchive.example.it/log"
	s, vkey := newKey(t, origin)
	root := sha256.Sum256([]byte("root"))
	cp := log.Checkpoint{Origin: origin, Size: 42, Hash: root[:]}
	signed, err := tlog.SignCheckpoint(s, cp)
	if err != nil {
		t.Fatal(err)
	}
	wantText := origin + "\n42\n" + "" // first lines checked below
	if !strings.HasPrefix(string(signed), wantText) || !strings.Contains(string(signed), "\n\n— "+origin+" ") {
		t.Fatalf("unexpected note:\n%s", signed)
	}
	got, err := tlog.VerifyCheckpoint(signed, vkey)
	if err != nil {
		t.Fatal(err)
	}
	if got.Origin != origin || got.Size != 42 || !bytes.Equal(got.Hash, root[:]) {
		t.Fatalf("VerifyCheckpoint = %+v", got)
	}
	if p, err := tlog.ParseCheckpoint(signed); err != nil || p.Size != 42 {
		t.Fatalf("ParseCheckpoint = %+v, %v", p, err)
	}

	// Wrong key, same name.
	_, other := newKey(t, origin)
	if _, err := tlog.VerifyCheckpoint(signed, other); !errors.Is(err, tlog.ErrInvalidCheckpoint) {
		t.Errorf("other key: %v", err)
	}
	// Tampered size.
	bad := bytes.Replace(signed, []byte("\n42\n"), []byte("\n43\n"), 1)
	if _, err := tlog.VerifyCheckpoint(bad, vkey); !errors.Is(err, tlog.ErrInvalidCheckpoint) {
		t.Errorf("tampered: %v", err)
	}
	// Signer name differs from origin.
	if _, err := tlog.SignCheckpoint(s, log.Checkpoint{Origin: "other", Size: 1, Hash: root[:]}); !errors.Is(err, tlog.ErrInvalidKey) {
		t.Errorf("origin mismatch: %v", err)
	}
	// Non-canonical size, correctly signed: rejected.
	n, _ := note.Sign(&note.Note{Text: origin + "\n042\n" + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"}, s)
	if _, err := tlog.VerifyCheckpoint(n, vkey); !errors.Is(err, tlog.ErrInvalidCheckpoint) {
		t.Errorf("leading zero: %v", err)
	}
	// Short hash, correctly signed: rejected.
	n, _ = note.Sign(&note.Note{Text: origin + "\n42\nAAAA\n"}, s)
	if _, err := tlog.VerifyCheckpoint(n, vkey); !errors.Is(err, tlog.ErrInvalidCheckpoint) {
		t.Errorf("short hash: %v", err)
	}
	// Extension lines are allowed.
	n, _ = note.Sign(&note.Note{Text: string(cp.Marshal()) + "ext line\n"}, s)
	if got, err := tlog.VerifyCheckpoint(n, vkey); err != nil || got.Size != 42 {
		t.Errorf("extension: %+v, %v", got, err)
	}
	// Bad keys and origins.
	if _, err := tlog.NewSigner("nope"); !errors.Is(err, tlog.ErrInvalidKey) {
		t.Errorf("NewSigner: %v", err)
	}
	if _, err := tlog.VerifyCheckpoint(signed, "nope"); !errors.Is(err, tlog.ErrInvalidKey) {
		t.Errorf("VerifyCheckpoint bad key: %v", err)
	}
	for _, o := range []string{"", "a b", "a+b", "a\nb"} {
		if _, _, err := tlog.GenerateKey(o); !errors.Is(err, tlog.ErrInvalidKey) {
			t.Errorf("GenerateKey(%q): %v", o, err)
		}
	}
}

func FuzzCheckpoint(f *testing.F) {
	const origin = "fuzz.example/log"
	// A fixed key so that the corpus stays meaningful across runs.
	const skey = "PRIVATE+KEY+fuzz.example/log+8cb906ce+ASfjudwgDkiNYeezCB0VlRX2b8txi7qOSyRi6z/m8x8X"
	s, err := tlog.NewSigner(skey)
	if err != nil {
		f.Fatal(err)
	}
	vkey, err := tlog.VerifierKey(skey)
	if err != nil {
		f.Fatal(err)
	}
	for _, size := range []uint64{0, 1, 7, 1 << 40} {
		root := sha256.Sum256([]byte(fmt.Sprint(size)))
		b, err := tlog.SignCheckpoint(s, log.Checkpoint{Origin: origin, Size: size, Hash: root[:]})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(origin + "\n1\nAAAA\n\n— fuzz.example/log AAAAAAAA\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cp, err := tlog.VerifyCheckpoint(b, vkey)
		if err == nil {
			if cp.Origin != origin || len(cp.Hash) != 32 {
				t.Fatalf("accepted %+v", cp)
			}
			// Re-signing the parsed checkpoint gives a note with the same first three lines.
			again, err := tlog.SignCheckpoint(s, cp)
			if err != nil || !bytes.HasPrefix(b, again[:bytes.Index(again, []byte("\n\n"))+1]) {
				t.Fatalf("not canonical: %q vs %q (%v)", b, again, err)
			}
		} else if !errors.Is(err, tlog.ErrInvalidCheckpoint) {
			t.Fatalf("error does not wrap ErrInvalidCheckpoint: %v", err)
		}
		if p, err := tlog.ParseCheckpoint(b); err == nil {
			if len(p.Hash) != 32 || p.Origin == "" {
				t.Fatalf("ParseCheckpoint accepted %+v", p)
			}
		} else if !errors.Is(err, tlog.ErrInvalidCheckpoint) {
			t.Fatalf("ParseCheckpoint error does not wrap ErrInvalidCheckpoint: %v", err)
		}
	})
}

func TestProofs(t *testing.T) {
	ref := testonly.New(rfc6962.DefaultHasher)
	const max = 70
	for i := 0; i < max; i++ {
		ref.AppendData([]byte(fmt.Sprint("leaf ", i)))
	}
	for size := uint64(1); size <= max; size++ {
		root := ref.HashAt(size)
		for index := uint64(0); index < size; index++ {
			p, err := ref.InclusionProof(index, size)
			if err != nil {
				t.Fatal(err)
			}
			lh := [32]byte(ref.LeafHash(index))
			if err := tlog.VerifyInclusion(lh, index, size, p, root); err != nil {
				t.Fatalf("inclusion %d/%d: %v", index, size, err)
			}
			if len(p) > 0 {
				bad := append([][]byte(nil), p...)
				bad[len(bad)/2] = make([]byte, 32)
				if err := tlog.VerifyInclusion(lh, index, size, bad, root); !errors.Is(err, tlog.ErrInvalidProof) {
					t.Fatalf("tampered inclusion %d/%d: %v", index, size, err)
				}
			}
			if err := tlog.VerifyInclusion(lh, index, size, p, ref.HashAt(size-1)); err == nil && size > 1 {
				t.Fatalf("inclusion %d/%d verifies against another root", index, size)
			}
		}
		for from := uint64(0); from <= size; from++ {
			p, err := ref.ConsistencyProof(from, size)
			if err != nil {
				t.Fatal(err)
			}
			if err := tlog.VerifyConsistency(from, size, p, ref.HashAt(from), root); err != nil {
				t.Fatalf("consistency %d->%d: %v", from, size, err)
			}
			if from > 0 && from < size {
				if err := tlog.VerifyConsistency(from, size, p, ref.HashAt(from-1), root); !errors.Is(err, tlog.ErrInvalidProof) {
					t.Fatalf("consistency %d->%d with wrong old root: %v", from, size, err)
				}
			}
		}
	}
	if err := tlog.VerifyConsistency(0, 3, nil, make([]byte, 32), ref.HashAt(3)); !errors.Is(err, tlog.ErrInvalidProof) {
		t.Errorf("wrong empty root accepted: %v", err)
	}
	if err := tlog.VerifyInclusion([32]byte{}, 0, 1, make([][]byte, tlog.MaxProofLen+1), nil); !errors.Is(err, tlog.ErrInvalidProof) {
		t.Errorf("long proof: %v", err)
	}
}

func TestCheckConsistency(t *testing.T) {
	const origin = "example.org/log"
	s, vkey := newKey(t, origin)
	ref := testonly.New(rfc6962.DefaultHasher)
	sign := func(size uint64) []byte {
		b, err := tlog.SignCheckpoint(s, log.Checkpoint{Origin: origin, Size: size, Hash: ref.HashAt(size)})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for i := 0; i < 20; i++ {
		ref.AppendData([]byte{byte(i)})
	}
	c7, c13, c20 := sign(7), sign(13), sign(20)
	p, _ := ref.ConsistencyProof(7, 13)
	got, err := tlog.CheckConsistency(c7, c13, p, vkey)
	if err != nil || got.Size != 13 {
		t.Fatalf("CheckConsistency = %+v, %v", got, err)
	}
	if _, err := tlog.CheckConsistency(c7, c20, p, vkey); !errors.Is(err, tlog.ErrInvalidProof) {
		t.Errorf("wrong proof: %v", err)
	}
	if _, err := tlog.CheckConsistency(c13, c7, p, vkey); !errors.Is(err, tlog.ErrInvalidProof) {
		t.Errorf("shrinking log: %v", err)
	}
	if _, err := tlog.CheckConsistency(c13, c13, nil, vkey); err != nil {
		t.Errorf("same checkpoint: %v", err)
	}
	// A forked log: same size 13, different content.
	fork := testonly.New(rfc6962.DefaultHasher)
	for i := 0; i < 13; i++ {
		fork.AppendData([]byte{byte(i + 1)})
	}
	f13, _ := tlog.SignCheckpoint(s, log.Checkpoint{Origin: origin, Size: 13, Hash: fork.HashAt(13)})
	if _, err := tlog.CheckConsistency(c13, f13, nil, vkey); !errors.Is(err, tlog.ErrInvalidProof) {
		t.Errorf("fork: %v", err)
	}
	if _, err := tlog.CheckConsistency(c7, f13, p, vkey); !errors.Is(err, tlog.ErrInvalidProof) {
		t.Errorf("fork with proof: %v", err)
	}
	_, other := newKey(t, origin)
	if _, err := tlog.CheckConsistency(c7, c13, p, other); !errors.Is(err, tlog.ErrInvalidCheckpoint) {
		t.Errorf("other key: %v", err)
	}
}

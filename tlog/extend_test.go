package tlog_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/pecarchive/pecarchive/tlog"
	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
	"golang.org/x/mod/sumdb/note"
)

// treeOf returns ref at its current size as a tlog.Tree.
func treeOf(ref *testonly.Tree) tlog.Tree {
	n := ref.Size()
	return tlog.Tree{Size: n, Root: ref.HashAt(n), Consistency: func(from uint64) ([][]byte, error) {
		return ref.ConsistencyProof(from, n)
	}}
}

func TestCheckAgainst(t *testing.T) {
	const origin = "example.org/log"
	s, vkey := newKey(t, origin)
	v, _ := tlog.NewVerifier(vkey)
	vs := []note.Verifier{v}
	ref := testonly.New(rfc6962.DefaultHasher)
	sign := func(s note.Signer, size uint64, root []byte) []byte {
		t.Helper()
		b, err := tlog.SignCheckpoint(s, log.Checkpoint{Origin: origin, Size: size, Hash: root})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	c0 := sign(s, 0, ref.HashAt(0))
	for i := range 20 {
		ref.AppendData([]byte{byte(i)})
	}
	c7, c20 := sign(s, 7, ref.HashAt(7)), sign(s, 20, ref.HashAt(20))

	// The log extends every checkpoint of it, its own size included.
	for _, c := range [][]byte{c0, c7, c20} {
		if _, err := tlog.CheckAgainst(c, vs, treeOf(ref)); err != nil {
			t.Fatalf("CheckAgainst: %v", err)
		}
	}
	for range 5 {
		ref.AppendData([]byte("more"))
	}
	if cp, err := tlog.CheckAgainst(c7, vs, treeOf(ref)); err != nil || cp.Size != 7 {
		t.Fatalf("grown log: %+v, %v", cp, err)
	}

	// A log rolled back to 15 leaves: smaller than the checkpoint of 20.
	short := testonly.New(rfc6962.DefaultHasher)
	for i := range 15 {
		short.AppendData([]byte{byte(i)})
	}
	if _, err := tlog.CheckAgainst(c20, vs, treeOf(short)); !errors.Is(err, tlog.ErrRollback) {
		t.Errorf("rolled back: %v, want ErrRollback", err)
	}
	if _, err := tlog.CheckAgainst(c7, vs, treeOf(short)); err != nil {
		t.Errorf("rolled back, but past 7: %v", err)
	}

	// A forked log: leaf 3 rewritten. Forked at the checkpoint's size, and beyond it.
	fork := testonly.New(rfc6962.DefaultHasher)
	for i := range 25 {
		d := []byte{byte(i)}
		if i == 3 {
			d = []byte("forged")
		}
		fork.AppendData(d)
	}
	forkAt := func(n uint64) tlog.Tree {
		return tlog.Tree{Size: n, Root: fork.HashAt(n), Consistency: func(from uint64) ([][]byte, error) {
			return fork.ConsistencyProof(from, n)
		}}
	}
	for _, n := range []uint64{7, 20, 25} {
		if _, err := tlog.CheckAgainst(c7, vs, forkAt(n)); !errors.Is(err, tlog.ErrFork) {
			t.Errorf("fork of size %d: %v, want ErrFork", n, err)
		}
	}
	// A fork after the checkpoint's leaves is not visible from it.
	late := testonly.New(rfc6962.DefaultHasher)
	for i := range 25 {
		d := []byte{byte(i)}
		if i == 10 {
			d = []byte("forged")
		}
		late.AppendData(d)
	}
	if _, err := tlog.CheckAgainst(c7, vs, treeOf(late)); err != nil {
		t.Errorf("fork after the checkpoint: %v", err)
	}
	// A proof served by a lying log does not help it.
	lying := treeOf(fork)
	lying.Consistency = func(from uint64) ([][]byte, error) { return ref.ConsistencyProof(from, 25) }
	if _, err := tlog.CheckAgainst(c7, vs, lying); !errors.Is(err, tlog.ErrFork) {
		t.Errorf("fork with an honest log's proof: %v", err)
	}
	// A proof that cannot be read is the reader's error, not a fork.
	broken := treeOf(ref)
	unavailable := errors.New("unavailable")
	broken.Consistency = func(uint64) ([][]byte, error) { return nil, unavailable }
	if _, err := tlog.CheckAgainst(c7, vs, broken); !errors.Is(err, unavailable) || errors.Is(err, tlog.ErrFork) {
		t.Errorf("unreadable proof: %v", err)
	}
	// An empty checkpoint with a made-up root.
	bad0 := sign(s, 0, make([]byte, 32))
	if _, err := tlog.CheckAgainst(bad0, vs, treeOf(ref)); !errors.Is(err, tlog.ErrFork) {
		t.Errorf("size 0, wrong root: %v", err)
	}

	// Not the log's key: a checkpoint signed by another key of the same name is refused before
	// any comparison with the tree.
	other, otherV := newKey(t, origin)
	forged := sign(other, 20, fork.HashAt(20))
	if _, err := tlog.CheckAgainst(forged, vs, treeOf(fork)); !errors.Is(err, tlog.ErrInvalidCheckpoint) {
		t.Errorf("other key: %v", err)
	}
	if _, err := tlog.CheckAgainst(c7, nil, treeOf(ref)); !errors.Is(err, tlog.ErrInvalidKey) {
		t.Errorf("no keys: %v", err)
	}

	// Rotation: after the key changed, checkpoints of both keys verify with both keys listed.
	ov, _ := tlog.NewVerifier(otherV)
	both := []note.Verifier{ov, v, v}
	c25 := sign(other, 25, ref.HashAt(25))
	for _, c := range [][]byte{c7, c25} {
		if _, err := tlog.CheckAgainst(c, both, treeOf(ref)); err != nil {
			t.Errorf("rotated keys: %v", err)
		}
	}
	if _, err := tlog.CheckAgainst(c25, vs, treeOf(ref)); !errors.Is(err, tlog.ErrInvalidCheckpoint) {
		t.Errorf("new key's checkpoint with the old key only: %v", err)
	}
	// The origin must be the name of a key that signed: a key of another name does not vouch for
	// a checkpoint of this origin.
	_, elsewhere := newKey(t, "elsewhere.example/log")
	ev, _ := tlog.NewVerifier(elsewhere)
	if _, err := tlog.VerifyCheckpointAny(c7, []note.Verifier{ev}); !errors.Is(err, tlog.ErrInvalidCheckpoint) {
		t.Errorf("key of another name: %v", err)
	}
}

func TestParseVerifierKeys(t *testing.T) {
	_, k1 := newKey(t, "example.org/log")
	_, k2 := newKey(t, "example.org/log")
	vs, err := tlog.ParseVerifierKeys("# the log's keys, newest first\n" + k2 + "\n\n  " + k1 + "  \n" + k2 + "\n")
	if err != nil || len(vs) != 2 {
		t.Fatalf("ParseVerifierKeys = %d keys, %v", len(vs), err)
	}
	if _, err := tlog.ParseVerifierKeys(k1 + "\nnot a key\n"); !errors.Is(err, tlog.ErrInvalidKey) || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("bad line: %v", err)
	}
	if vs, err := tlog.ParseVerifierKeys("\n# nothing\n"); err != nil || len(vs) != 0 {
		t.Errorf("empty: %d, %v", len(vs), err)
	}
}

// FuzzCheckAgainst feeds arbitrary bytes as an outside checkpoint (what an auditor passes to
// pecarchive audit --checkpoint) and as a key file: nothing panics, and every refusal is one of
// tlog's errors.
func FuzzCheckAgainst(f *testing.F) {
	const origin = "fuzz.example/log"
	const skey = "PRIVATE+KEY+fuzz.example/log+8cb906ce+ASfjudwgDkiNYeezCB0VlRX2b8txi7qOSyRi6z/m8x8X"
	s, err := tlog.NewSigner(skey)
	if err != nil {
		f.Fatal(err)
	}
	vkey, _ := tlog.VerifierKey(skey)
	vs, err := tlog.ParseVerifierKeys(vkey)
	if err != nil {
		f.Fatal(err)
	}
	ref := testonly.New(rfc6962.DefaultHasher)
	for i := range 9 {
		ref.AppendData([]byte{byte(i)})
	}
	for _, size := range []uint64{0, 3, 9} {
		b, _ := tlog.SignCheckpoint(s, log.Checkpoint{Origin: origin, Size: size, Hash: ref.HashAt(size)})
		f.Add(b, vkey)
	}
	f.Add([]byte(origin+"\n12\nAAAA\n\n— fuzz.example/log AAAAAAAA\n"), "# keys\n"+vkey+"\nnot a key\n")
	f.Fuzz(func(t *testing.T, signed []byte, keys string) {
		_, err := tlog.CheckAgainst(signed, vs, treeOf(ref))
		if err != nil && !errors.Is(err, tlog.ErrInvalidCheckpoint) && !errors.Is(err, tlog.ErrRollback) &&
			!errors.Is(err, tlog.ErrFork) && !errors.Is(err, tlog.ErrInvalidProof) {
			t.Fatalf("CheckAgainst: unexpected error %v", err)
		}
		if parsed, err := tlog.ParseVerifierKeys(keys); err != nil && !errors.Is(err, tlog.ErrInvalidKey) {
			t.Fatalf("ParseVerifierKeys: unexpected error %v", err)
		} else if err == nil && len(parsed) > 0 {
			_, _ = tlog.VerifyCheckpointAny(signed, parsed)
		}
	})
}

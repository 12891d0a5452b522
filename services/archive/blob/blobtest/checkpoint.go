package blobtest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/pecarchive/pecarchive/services/archive/blob"
)

// CheckpointOptions are the optional hooks of an implementation's checkpoint test; a nil hook
// skips its tests. Each acts behind the store's back on one key, as an insider with the store's
// own credentials (or the files' owner) would.
type CheckpointOptions struct {
	// PutRaw stores data under key, bypassing the store (an object planted under a checkpoint
	// key of a size the log has not reached).
	PutRaw func(t *testing.T, s blob.CheckpointStore, key string, data []byte)
	// Overwrite writes data over the stored checkpoint key as a newer version (S3: a PUT
	// without condition, with the same retention as the original).
	Overwrite func(t *testing.T, s blob.CheckpointStore, key string, data []byte)
	// DeleteMarker deletes key without naming a version (S3: a delete marker goes on top; the
	// retained version stays).
	DeleteMarker func(t *testing.T, s blob.CheckpointStore, key string)
	// Symlink replaces key by a symbolic link to a file holding data.
	Symlink func(t *testing.T, s blob.CheckpointStore, key string, data []byte)
}

// RunCheckpoints runs the conformance suite of blob.CheckpointStore as subtests of t.
// newStore must return a new, empty store for each call.
func RunCheckpoints(t *testing.T, newStore func(t *testing.T) blob.CheckpointStore, opts *CheckpointOptions) {
	if opts == nil {
		opts = &CheckpointOptions{}
	}
	s := &cpSuite{newStore: newStore, o: *opts}
	t.Run("PutAndList", s.testPutAndList)
	t.Run("WriteOnce", s.testWriteOnce)
	t.Run("Limits", s.testLimits)
	t.Run("Concurrent", s.testConcurrent)
	t.Run("WalkStops", s.testWalkStops)
	t.Run("Planted", s.testPlanted)
	t.Run("Overwritten", s.testOverwritten)
	t.Run("DeleteMarker", s.testDeleteMarker)
	t.Run("Symlink", s.testSymlink)
}

type cpSuite struct {
	newStore func(t *testing.T) blob.CheckpointStore
	o        CheckpointOptions
}

// CheckpointText returns a distinct made-up checkpoint for size (the store does not parse them).
func CheckpointText(size uint64, variant string) []byte {
	return fmt.Appendf(nil, "pecarchive.test/log\n%d\nroot-of-%s\n\n— pecarchive.test/log signature\n", size, variant)
}

// ListCheckpoints returns every stored checkpoint of size >= from.
func ListCheckpoints(t *testing.T, s blob.CheckpointStore, from uint64) []blob.Checkpoint {
	t.Helper()
	var out []blob.Checkpoint
	if err := s.Checkpoints(ctx(t), from, func(c blob.Checkpoint) error {
		out = append(out, c)
		return nil
	}); err != nil {
		t.Fatalf("Checkpoints(from %d): %v", from, err)
	}
	return out
}

func mustPutCheckpoint(t *testing.T, s blob.CheckpointStore, size uint64, data []byte, wantCreated bool) {
	t.Helper()
	created, err := s.PutCheckpoint(ctx(t), size, data)
	if err != nil {
		t.Fatalf("PutCheckpoint(%d): %v", size, err)
	}
	if created != wantCreated {
		t.Fatalf("PutCheckpoint(%d) created = %v, want %v", size, created, wantCreated)
	}
}

// only returns the one stored checkpoint of size, failing the test when there is not exactly one
// key of that size.
func only(t *testing.T, s blob.CheckpointStore, size uint64) blob.Checkpoint {
	t.Helper()
	cs := ofSize(t, s, size)
	if len(cs) != 1 {
		t.Fatalf("%d keys of checkpoint size %d listed, want 1", len(cs), size)
	}
	return cs[0]
}

// ofSize returns the stored checkpoints of size, in key order.
func ofSize(t *testing.T, s blob.CheckpointStore, size uint64) []blob.Checkpoint {
	t.Helper()
	var out []blob.Checkpoint
	for _, c := range ListCheckpoints(t, s, size) {
		if c.Size == size {
			out = append(out, c)
		}
	}
	return out
}

func genuine(t *testing.T, c blob.Checkpoint) blob.CheckpointVersion {
	t.Helper()
	g, ok := c.Genuine()
	if !ok {
		t.Fatalf("checkpoint %d: no genuine version among %v", c.Size, c.Versions)
	}
	return g
}

func (s *cpSuite) testPutAndList(t *testing.T) {
	st := s.newStore(t)
	if cs := ListCheckpoints(t, st, 0); len(cs) != 0 {
		t.Fatalf("empty store lists %d checkpoints", len(cs))
	}
	sizes := []uint64{1000, 0, 7, 1 << 40, 1, math.MaxUint64, 8}
	for _, n := range sizes {
		mustPutCheckpoint(t, st, n, CheckpointText(n, "a"), true)
	}
	want := []uint64{0, 1, 7, 8, 1000, 1 << 40, math.MaxUint64}
	for _, from := range []uint64{0, 1, 7, 9, 1 << 40, math.MaxUint64} {
		var exp []uint64
		for _, n := range want {
			if n >= from {
				exp = append(exp, n)
			}
		}
		cs := ListCheckpoints(t, st, from)
		var got []uint64
		for _, c := range cs {
			got = append(got, c.Size)
			if len(c.Versions) != 1 || len(c.Shadows()) != 0 {
				t.Fatalf("checkpoint %d: %d versions, %d shadows; want one version", c.Size, len(c.Versions), len(c.Shadows()))
			}
			g := genuine(t, c)
			if !bytes.Equal(g.Signed, CheckpointText(c.Size, "a")) || g.Problem != "" || g.Modified.IsZero() {
				t.Fatalf("checkpoint %d read back as %q (problem %q, modified %v)", c.Size, g.Signed, g.Problem, g.Modified)
			}
			if want := blob.CheckpointKey(c.Size, g.Signed); c.Key != want || c.SHA256 != sha256.Sum256(g.Signed) {
				t.Fatalf("checkpoint %d listed under %q (SHA-256 %x), want %q", c.Size, c.Key, c.SHA256, want)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(exp) {
			t.Fatalf("Checkpoints(from %d) listed %v, want %v", from, got, exp)
		}
	}
	// Checkpoints are not evidence objects.
	if bs, ok := st.(blob.Store); ok {
		if got := walkAll(t, bs); len(got) != 0 {
			t.Fatalf("Walk lists %d objects, want none (checkpoints are not objects)", len(got))
		}
	}
}

// testWriteOnce: a checkpoint is stored once; another checkpoint of the same size (which only a
// fork makes) is a key of its own, beside it, never written over it.
func (s *cpSuite) testWriteOnce(t *testing.T) {
	st := s.newStore(t)
	a, b := CheckpointText(5, "a"), CheckpointText(5, "b")
	mustPutCheckpoint(t, st, 5, a, true)
	mustPutCheckpoint(t, st, 5, bytes.Clone(a), false)
	mustPutCheckpoint(t, st, 5, b, true)
	cs := ofSize(t, st, 5)
	if len(cs) != 2 {
		t.Fatalf("%d keys of size 5, want a's and b's", len(cs))
	}
	for _, c := range cs {
		g := genuine(t, c)
		if c.Key != blob.CheckpointKey(5, g.Signed) || (!bytes.Equal(g.Signed, a) && !bytes.Equal(g.Signed, b)) || len(c.Versions) != 1 {
			t.Fatalf("key %s holds %q in %d versions", c.Key, g.Signed, len(c.Versions))
		}
	}
}

func (s *cpSuite) testLimits(t *testing.T) {
	st := s.newStore(t)
	for _, data := range [][]byte{nil, {}, bytes.Repeat([]byte("x"), blob.MaxCheckpointSize+1)} {
		if _, err := st.PutCheckpoint(ctx(t), 3, data); !errors.Is(err, blob.ErrIntegrity) {
			t.Fatalf("PutCheckpoint of %d bytes = %v, want ErrIntegrity", len(data), err)
		}
	}
	mustPutCheckpoint(t, st, 3, bytes.Repeat([]byte("x"), blob.MaxCheckpointSize), true)
	if cs := ListCheckpoints(t, st, 0); len(cs) != 1 {
		t.Fatalf("refused puts left %d checkpoints, want the 1 accepted", len(cs))
	}
}

func (s *cpSuite) testConcurrent(t *testing.T) {
	st := s.newStore(t)
	data := CheckpointText(42, "a")
	var wg sync.WaitGroup
	var mu sync.Mutex
	created := 0
	var errs []error
	for range 8 {
		wg.Go(func() {
			c, err := st.PutCheckpoint(ctx(t), 42, data)
			mu.Lock()
			defer mu.Unlock()
			if c {
				created++
			}
			if err != nil {
				errs = append(errs, err)
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d concurrent puts failed, first: %v", len(errs), errs[0])
	}
	if created != 1 {
		t.Fatalf("%d of 8 concurrent puts of one checkpoint reported created, want 1", created)
	}
	if c := only(t, st, 42); len(c.Versions) != 1 {
		t.Fatalf("concurrent puts left %d versions", len(c.Versions))
	}
}

func (s *cpSuite) testWalkStops(t *testing.T) {
	st := s.newStore(t)
	for n := range uint64(4) {
		mustPutCheckpoint(t, st, n, CheckpointText(n, "a"), true)
	}
	stop := errors.New("stop here")
	calls := 0
	err := st.Checkpoints(ctx(t), 0, func(blob.Checkpoint) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("Checkpoints with failing fn = %v after %d calls, want the fn's error after 1", err, calls)
	}
}

// testPlanted: objects put under checkpoint keys of a size the log has not reached are listed
// (one whose bytes are not those its key names, with a problem) and do not stop the log from
// writing its own checkpoint of that size, whose key nobody could know before; an object under
// that very key (planted by someone who knew the checkpoint) is its key's genuine content, and
// the log's put is then refused, not written over it.
func (s *cpSuite) testPlanted(t *testing.T) {
	if s.o.PutRaw == nil {
		t.Skip("no PutRaw hook for this store")
	}
	st := s.newStore(t)
	planted, garbage := CheckpointText(9, "planted"), []byte("not what the key names")
	s.o.PutRaw(t, st, blob.CheckpointKey(9, planted), planted)
	s.o.PutRaw(t, st, blob.CheckpointKey(9, CheckpointText(9, "other")), garbage)
	mine := CheckpointText(9, "a")
	mustPutCheckpoint(t, st, 9, mine, true)
	cs := ofSize(t, st, 9)
	if len(cs) != 3 {
		t.Fatalf("%d keys of size 9, want the two planted and the log's", len(cs))
	}
	for _, c := range cs {
		g := genuine(t, c)
		switch c.Key {
		case blob.CheckpointKey(9, mine), blob.CheckpointKey(9, planted):
			if g.Problem != "" || c.Key != blob.CheckpointKey(9, g.Signed) {
				t.Fatalf("%s holds %q (problem %q)", c.Key, g.Signed, g.Problem)
			}
		default:
			if g.Signed != nil || !strings.Contains(g.Problem, "do not hash") {
				t.Fatalf("%s holding other bytes than its key names: read %q, problem %q", c.Key, g.Signed, g.Problem)
			}
		}
	}
	known := CheckpointText(10, "known")
	s.o.PutRaw(t, st, blob.CheckpointKey(10, known), garbage)
	if _, err := st.PutCheckpoint(ctx(t), 10, known); !errors.Is(err, blob.ErrIntegrity) {
		t.Fatalf("PutCheckpoint under a key holding other bytes = %v, want ErrIntegrity", err)
	}
}

// testOverwritten: a newer version written over a checkpoint does not replace it.
func (s *cpSuite) testOverwritten(t *testing.T) {
	if s.o.Overwrite == nil {
		t.Skip("no Overwrite hook for this store")
	}
	st := s.newStore(t)
	orig, forged := CheckpointText(11, "a"), CheckpointText(11, "forged")
	mustPutCheckpoint(t, st, 11, orig, true)
	s.o.Overwrite(t, st, blob.CheckpointKey(11, orig), forged)
	c := only(t, st, 11)
	if g := genuine(t, c); !bytes.Equal(g.Signed, orig) {
		t.Fatalf("genuine version %q after an overwrite, want the original", g.Signed)
	}
	sh := c.Shadows()
	if len(sh) != 1 || sh[0].DeleteMarker || sh[0].ID == "" {
		t.Fatalf("shadows after an overwrite: %v, want the one newer version", sh)
	}
	// The log publishing that checkpoint again finds it, and writes no version.
	mustPutCheckpoint(t, st, 11, orig, false)
	if c := only(t, st, 11); len(c.Versions) != 2 {
		t.Fatalf("a put of the stored checkpoint wrote a version: %v", c.Versions)
	}
}

// testDeleteMarker: a delete marker hides neither a checkpoint nor its key from the listing.
func (s *cpSuite) testDeleteMarker(t *testing.T) {
	if s.o.DeleteMarker == nil {
		t.Skip("no DeleteMarker hook for this store")
	}
	st := s.newStore(t)
	orig := CheckpointText(12, "a")
	mustPutCheckpoint(t, st, 12, orig, true)
	mustPutCheckpoint(t, st, 13, CheckpointText(13, "a"), true)
	s.o.DeleteMarker(t, st, blob.CheckpointKey(12, orig))
	cs := ListCheckpoints(t, st, 12)
	if len(cs) != 2 || cs[0].Size != 12 {
		t.Fatalf("after a delete marker, %d checkpoints listed from 12", len(cs))
	}
	if g := genuine(t, cs[0]); !bytes.Equal(g.Signed, orig) {
		t.Fatalf("genuine version %q behind a delete marker, want the original", g.Signed)
	}
	if sh := cs[0].Shadows(); len(sh) != 1 || !sh[0].DeleteMarker {
		t.Fatalf("shadows: %v, want the delete marker", sh)
	}
	mustPutCheckpoint(t, st, 12, orig, false)
	if c := only(t, st, 12); len(c.Versions) != 2 {
		t.Fatalf("a put of the stored checkpoint behind a delete marker wrote a version: %v", c.Versions)
	}
	// A delete marker on a key that is not the first of a listing page: each key's versions are
	// still listed together (a server may list a page's delete markers first).
	s.o.DeleteMarker(t, st, blob.CheckpointKey(13, CheckpointText(13, "a")))
	cs = ListCheckpoints(t, st, 0)
	if len(cs) != 2 || cs[0].Size != 12 || cs[1].Size != 13 {
		t.Fatalf("after a second delete marker, %d checkpoints listed: %v", len(cs), cs)
	}
	for _, c := range cs {
		if g := genuine(t, c); !bytes.Equal(g.Signed, CheckpointText(c.Size, "a")) || len(c.Shadows()) != 1 || !c.Shadows()[0].DeleteMarker {
			t.Fatalf("checkpoint %d behind its delete marker: %q, shadows %v", c.Size, g.Signed, c.Shadows())
		}
	}

	// A delete marker planted under a checkpoint's key before the log writes it (where the
	// server keeps one): the log's checkpoint is written and is the genuine version.
	mine := CheckpointText(20, "a")
	s.o.DeleteMarker(t, st, blob.CheckpointKey(20, mine))
	planted := len(ListCheckpoints(t, st, 20))
	mustPutCheckpoint(t, st, 20, mine, true)
	c := only(t, st, 20)
	if g := genuine(t, c); !bytes.Equal(g.Signed, mine) {
		t.Fatalf("genuine version %q, want the log's checkpoint", g.Signed)
	}
	if sh := c.Shadows(); len(sh) != planted || planted == 1 && !sh[0].DeleteMarker {
		t.Fatalf("shadows: %v, want the %d planted delete markers", sh, planted)
	}
}

// testSymlink: a checkpoint key that is a symbolic link is reported, never followed.
func (s *cpSuite) testSymlink(t *testing.T) {
	if s.o.Symlink == nil {
		t.Skip("no Symlink hook for this store")
	}
	st := s.newStore(t)
	s.o.Symlink(t, st, blob.CheckpointKey(14, CheckpointText(14, "elsewhere")), CheckpointText(14, "elsewhere"))
	c := only(t, st, 14)
	g := genuine(t, c)
	if g.Signed != nil || !strings.Contains(g.Problem, "not a regular file") {
		t.Fatalf("symlinked checkpoint read as %q, problem %q; want it reported and not read", g.Signed, g.Problem)
	}
	if _, err := st.PutCheckpoint(ctx(t), 14, CheckpointText(14, "elsewhere")); !errors.Is(err, blob.ErrIntegrity) {
		t.Fatalf("PutCheckpoint over a symbolic link = %v, want ErrIntegrity", err)
	}
}

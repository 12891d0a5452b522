// Package blobtest owns the conformance suite that every blob.Store implementation must pass.
//
//	func TestConformance(t *testing.T) {
//		blobtest.Run(t, func(t *testing.T) blob.Store { return newEmptyStore(t) }, &blobtest.Options{
//			Corrupt: func(t *testing.T, s blob.Store, sum [32]byte) { ... },
//		})
//	}
//
// newStore must return a new, empty store for each call (each subtest calls it once).
package blobtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/pecarchive/pecarchive/services/archive/blob"
)

// Options are the optional hooks of an implementation's test. A nil hook skips its tests.
type Options struct {
	// Corrupt changes the bytes of the stored object sum in place, keeping its length and any
	// metadata (simulating media corruption). Get must then fail with blob.ErrIntegrity.
	Corrupt func(t *testing.T, s blob.Store, sum [32]byte)
	// PutRaw stores data under sum's key bypassing every check of the store (a foreign writer,
	// or an object left by an older bug), with whatever metadata the backend gives raw writes.
	// Put(sum, the right bytes) must then fail with blob.ErrIntegrity and Get must detect it.
	PutRaw func(t *testing.T, s blob.Store, sum [32]byte, data []byte)
	// Modes lists the acceptable Info.Mode values of new objects (default: any non-empty).
	Modes []string
	// Retention, when non-zero, is the retention new objects must get: Stat's RetainUntil must be
	// about now+Retention. Zero means RetainUntil must be zero.
	Retention time.Duration
	// Concurrency of the concurrent-put test (default 16).
	Concurrency int
}

// Run runs the conformance suite as subtests of t.
func Run(t *testing.T, newStore func(t *testing.T) blob.Store, opts *Options) {
	if opts == nil {
		opts = &Options{}
	}
	s := &suite{newStore: newStore, o: *opts}
	if s.o.Concurrency <= 0 {
		s.o.Concurrency = 16
	}
	t.Run("Check", s.testCheck)
	t.Run("PutGet", s.testPutGet)
	t.Run("Sizes", s.testSizes)
	t.Run("PutIdempotent", s.testPutIdempotent)
	t.Run("PutWrongSum", s.testPutWrongSum)
	t.Run("GetMissing", s.testMissing)
	t.Run("Stat", s.testStat)
	t.Run("LegalHold", s.testLegalHold)
	t.Run("Walk", s.testWalk)
	t.Run("WalkStops", s.testWalkStops)
	t.Run("ConcurrentPut", s.testConcurrentPut)
	t.Run("ConcurrentDistinct", s.testConcurrentDistinct)
	t.Run("CorruptOnRead", s.testCorrupt)
	t.Run("RefuseDifferent", s.testRefuseDifferent)
	t.Run("AuditWalk", s.testAuditWalk)
	t.Run("Versions", s.testVersions)
}

type suite struct {
	newStore func(t *testing.T) blob.Store
	o        Options
}

// Data returns n pseudo-random bytes determined by seed, and their sum.
func Data(seed uint64, n int) ([]byte, [32]byte) {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b, sha256.Sum256(b)
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

// ReadAll reads the object sum fully through the store's verifying reader.
func ReadAll(t *testing.T, s blob.Store, sum [32]byte) ([]byte, error) {
	t.Helper()
	rc, err := s.Get(ctx(t), sum)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func mustPut(t *testing.T, s blob.Store, sum [32]byte, data []byte, wantCreated bool) {
	t.Helper()
	created, err := s.Put(ctx(t), sum, data)
	if err != nil {
		t.Fatalf("Put(%x): %v", sum[:4], err)
	}
	if created != wantCreated {
		t.Fatalf("Put(%x) created = %v, want %v", sum[:4], created, wantCreated)
	}
}

func mustGet(t *testing.T, s blob.Store, sum [32]byte, want []byte) {
	t.Helper()
	got, err := ReadAll(t, s, sum)
	if err != nil {
		t.Fatalf("Get(%x): %v", sum[:4], err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Get(%x) returned %d bytes, differing from the %d put", sum[:4], len(got), len(want))
	}
}

func (s *suite) testCheck(t *testing.T) {
	st := s.newStore(t)
	if err := st.Check(ctx(t)); err != nil {
		t.Fatalf("Check: %v", err)
	}
}

func (s *suite) testPutGet(t *testing.T) {
	st := s.newStore(t)
	data, sum := Data(1, 8<<10)
	mustPut(t, st, sum, data, true)
	mustGet(t, st, sum, data)
	// A second reader sees the same bytes; data passed to Put may be reused by the caller.
	clear(data)
	want, _ := Data(1, 8<<10)
	mustGet(t, st, sum, want)
}

func (s *suite) testSizes(t *testing.T) {
	st := s.newStore(t)
	for i, n := range []int{0, 1, 4095, 4096, 1 << 20, 3<<20 + 17} {
		data, sum := Data(uint64(100+i), n)
		mustPut(t, st, sum, data, true)
		mustGet(t, st, sum, data)
		info, err := st.Stat(ctx(t), sum)
		if err != nil {
			t.Fatalf("Stat(%d bytes): %v", n, err)
		}
		if info.Size != int64(n) {
			t.Fatalf("Stat size = %d, want %d", info.Size, n)
		}
	}
}

func (s *suite) testPutIdempotent(t *testing.T) {
	st := s.newStore(t)
	data, sum := Data(2, 1000)
	mustPut(t, st, sum, data, true)
	mustPut(t, st, sum, data, false)
	mustPut(t, st, sum, bytes.Clone(data), false)
	mustGet(t, st, sum, data)
}

func (s *suite) testPutWrongSum(t *testing.T) {
	st := s.newStore(t)
	data, sum := Data(3, 1000)
	other, otherSum := Data(4, 1000)
	if _, err := st.Put(ctx(t), sum, other); !errors.Is(err, blob.ErrIntegrity) {
		t.Fatalf("Put(sum of A, B) = %v, want ErrIntegrity", err)
	}
	if _, err := st.Stat(ctx(t), sum); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("after refused Put, Stat = %v, want ErrNotFound", err)
	}
	// Nothing was stored under either sum; the right Puts still work.
	mustPut(t, st, sum, data, true)
	mustPut(t, st, otherSum, other, true)
	// And a wrong sum for an existing object is refused too, leaving it intact.
	if _, err := st.Put(ctx(t), sum, other); !errors.Is(err, blob.ErrIntegrity) {
		t.Fatalf("Put(existing sum of A, B) = %v, want ErrIntegrity", err)
	}
	mustGet(t, st, sum, data)
	var zero [32]byte
	if _, err := st.Put(ctx(t), zero, nil); !errors.Is(err, blob.ErrIntegrity) {
		t.Fatalf("Put(zero sum, nil) = %v, want ErrIntegrity", err)
	}
}

func (s *suite) testMissing(t *testing.T) {
	st := s.newStore(t)
	_, sum := Data(5, 10)
	if rc, err := st.Get(ctx(t), sum); !errors.Is(err, blob.ErrNotFound) {
		if err == nil {
			rc.Close()
		}
		t.Fatalf("Get(missing) = %v, want ErrNotFound", err)
	}
	if _, err := st.Stat(ctx(t), sum); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Stat(missing) = %v, want ErrNotFound", err)
	}
	if err := st.SetLegalHold(ctx(t), sum, true); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("SetLegalHold(missing) = %v, want ErrNotFound", err)
	}
}

func (s *suite) testStat(t *testing.T) {
	st := s.newStore(t)
	data, sum := Data(6, 12345)
	before := time.Now()
	mustPut(t, st, sum, data, true)
	after := time.Now()
	info, err := st.Stat(ctx(t), sum)
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	if info.Size != int64(len(data)) {
		t.Errorf("Size = %d, want %d", info.Size, len(data))
	}
	if info.LegalHold {
		t.Errorf("LegalHold = true on a new object")
	}
	if len(s.o.Modes) == 0 {
		if info.Mode == "" {
			t.Errorf("Mode is empty")
		}
	} else if !contains(s.o.Modes, info.Mode) {
		t.Errorf("Mode = %q, want one of %q", info.Mode, s.o.Modes)
	}
	if s.o.Retention == 0 {
		if !info.RetainUntil.IsZero() {
			t.Errorf("RetainUntil = %v, want zero", info.RetainUntil)
		}
	} else {
		lo := before.Add(s.o.Retention).Add(-time.Second)
		hi := after.Add(s.o.Retention).Add(3 * time.Second)
		if info.RetainUntil.Before(lo) || info.RetainUntil.After(hi) {
			t.Errorf("RetainUntil = %v, want in [%v, %v]", info.RetainUntil, lo, hi)
		}
	}
}

func (s *suite) testLegalHold(t *testing.T) {
	st := s.newStore(t)
	data, sum := Data(7, 100)
	mustPut(t, st, sum, data, true)
	hold := func(want bool) {
		t.Helper()
		info, err := st.Stat(ctx(t), sum)
		if err != nil {
			t.Fatalf("Stat: %v", err)
		}
		if info.LegalHold != want {
			t.Fatalf("LegalHold = %v, want %v", info.LegalHold, want)
		}
	}
	for _, on := range []bool{true, true, false, false, true} {
		if err := st.SetLegalHold(ctx(t), sum, on); err != nil {
			t.Fatalf("SetLegalHold(%v): %v", on, err)
		}
		hold(on)
	}
	mustPut(t, st, sum, data, false) // a held object is still an identical existing object
	mustGet(t, st, sum, data)
	hold(true)
	// The hold is on one object only, and Walk does not list holds as objects.
	data2, sum2 := Data(8, 100)
	mustPut(t, st, sum2, data2, true)
	info, err := st.Stat(ctx(t), sum2)
	if err != nil || info.LegalHold {
		t.Fatalf("Stat(other) = %+v, %v; want no legal hold", info, err)
	}
	if got := walkAll(t, st); len(got) != 2 {
		t.Fatalf("Walk listed %d objects, want 2", len(got))
	}
}

func walkAll(t *testing.T, st blob.Store) map[[32]byte]int {
	t.Helper()
	got := map[[32]byte]int{}
	err := st.Walk(ctx(t), func(sum [32]byte) error {
		got[sum]++
		return nil
	})
	if err != nil {
		t.Fatalf("Walk: %v", err)
	}
	return got
}

func (s *suite) testWalk(t *testing.T) {
	st := s.newStore(t)
	if got := walkAll(t, st); len(got) != 0 {
		t.Fatalf("Walk on an empty store listed %d objects", len(got))
	}
	want := map[[32]byte]bool{}
	for i := range 40 {
		data, sum := Data(uint64(1000+i), 64+i)
		mustPut(t, st, sum, data, true)
		want[sum] = true
	}
	// A refused Put leaves nothing behind.
	_, bad := Data(999, 10)
	good, _ := Data(998, 10)
	st.Put(ctx(t), bad, good)
	got := walkAll(t, st)
	if len(got) != len(want) {
		t.Fatalf("Walk listed %d objects, want %d", len(got), len(want))
	}
	for sum, n := range got {
		if !want[sum] {
			t.Fatalf("Walk listed %x, never put", sum)
		}
		if n != 1 {
			t.Fatalf("Walk listed %x %d times", sum, n)
		}
	}
}

func (s *suite) testWalkStops(t *testing.T) {
	st := s.newStore(t)
	for i := range 5 {
		data, sum := Data(uint64(2000+i), 10)
		mustPut(t, st, sum, data, true)
	}
	stop := errors.New("stop here")
	calls := 0
	err := st.Walk(ctx(t), func([32]byte) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("Walk with failing fn = %v after %d calls, want the fn's error after 1", err, calls)
	}
}

func (s *suite) testConcurrentPut(t *testing.T) {
	st := s.newStore(t)
	data, sum := Data(9, 64<<10)
	var wg sync.WaitGroup
	var mu sync.Mutex
	created := 0
	var errs []error
	for range s.o.Concurrency {
		wg.Go(func() {
			c, err := st.Put(ctx(t), sum, data)
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
		t.Fatalf("%d concurrent Puts failed, first: %v", len(errs), errs[0])
	}
	if created != 1 {
		t.Fatalf("%d of %d concurrent Puts of one object reported created, want exactly 1", created, s.o.Concurrency)
	}
	mustGet(t, st, sum, data)
	if got := walkAll(t, st); len(got) != 1 {
		t.Fatalf("Walk listed %d objects, want 1", len(got))
	}
}

func (s *suite) testConcurrentDistinct(t *testing.T) {
	st := s.newStore(t)
	const n = 64
	var wg sync.WaitGroup
	errc := make(chan error, n)
	sem := make(chan struct{}, s.o.Concurrency)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			data, sum := Data(uint64(3000+i), 2000)
			created, err := st.Put(ctx(t), sum, data)
			if err == nil && !created {
				err = fmt.Errorf("new object %d reported existing", i)
			}
			errc <- err
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := walkAll(t, st); len(got) != n {
		t.Fatalf("Walk listed %d objects, want %d", len(got), n)
	}
}

func (s *suite) testCorrupt(t *testing.T) {
	if s.o.Corrupt == nil {
		t.Skip("no Corrupt hook for this store")
	}
	st := s.newStore(t)
	data, sum := Data(10, 5000)
	mustPut(t, st, sum, data, true)
	s.o.Corrupt(t, st, sum)
	got, err := ReadAll(t, st, sum)
	if !errors.Is(err, blob.ErrIntegrity) {
		t.Fatalf("reading a corrupted object: %d bytes, %v; want ErrIntegrity", len(got), err)
	}
	// The verifying reader keeps failing; a new reader fails too.
	if _, err := ReadAll(t, st, sum); !errors.Is(err, blob.ErrIntegrity) {
		t.Fatalf("second read: %v, want ErrIntegrity", err)
	}
}

func (s *suite) testRefuseDifferent(t *testing.T) {
	if s.o.PutRaw == nil {
		t.Skip("no PutRaw hook for this store")
	}
	st := s.newStore(t)
	for i, n := range []int{3000, 3001} { // same length, and another length
		data, sum := Data(uint64(20+i), 3000)
		other, _ := Data(uint64(40+i), n)
		s.o.PutRaw(t, st, sum, other)
		if created, err := st.Put(ctx(t), sum, data); !errors.Is(err, blob.ErrIntegrity) {
			t.Fatalf("Put over different content (%d bytes) = %v, %v; want ErrIntegrity", n, created, err)
		}
		if _, err := ReadAll(t, st, sum); !errors.Is(err, blob.ErrIntegrity) {
			t.Fatalf("Get of different content stored under the sum: %v, want ErrIntegrity", err)
		}
	}
	// Identical bytes written raw are accepted as existing.
	data, sum := Data(60, 700)
	s.o.PutRaw(t, st, sum, data)
	mustPut(t, st, sum, data, false)
	mustGet(t, st, sum, data)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// testAuditWalk: on a store whose objects are as Put left them, AuditWalk lists what Walk lists
// and finds nothing else.
func (s *suite) testAuditWalk(t *testing.T) {
	st := s.newStore(t)
	w, ok := st.(blob.AuditWalker)
	if !ok {
		t.Skip("the store has no audit walk")
	}
	for i := range 10 {
		data, sum := Data(uint64(4000+i), 100)
		mustPut(t, st, sum, data, true)
		mustPut(t, st, sum, data, false)
	}
	got := map[[32]byte]int{}
	err := w.AuditWalk(ctx(t), func(sum [32]byte) error {
		got[sum]++
		return nil
	}, func(a blob.Anomaly) error {
		t.Errorf("anomaly on an untouched store: %v", a)
		return nil
	})
	if err != nil {
		t.Fatalf("AuditWalk: %v", err)
	}
	want := walkAll(t, st)
	if len(got) != len(want) {
		t.Fatalf("AuditWalk listed %d objects, Walk %d", len(got), len(want))
	}
	for sum, n := range got {
		if n != 1 || want[sum] != 1 {
			t.Fatalf("AuditWalk listed %x %d times, Walk %d", sum[:4], n, want[sum])
		}
	}
}

// testVersions: a store that keeps versions reports the version holding the bytes, the same one
// again for an identical Put, and reads it back by its ID.
func (s *suite) testVersions(t *testing.T) {
	st := s.newStore(t)
	v, ok := st.(blob.Versioner)
	if !ok {
		// blob.PutVersion and GetVersion still work, with no version.
		data, sum := Data(5000, 100)
		created, version, err := blob.PutVersion(ctx(t), st, sum, data)
		if err != nil || !created || version != "" {
			t.Fatalf("PutVersion on a store without versions = %v, %q, %v", created, version, err)
		}
		rc, err := blob.GetVersion(ctx(t), st, sum, "")
		if err != nil {
			t.Fatal(err)
		}
		rc.Close()
		return
	}
	data, sum := Data(5001, 100)
	created, version, err := v.PutVersion(ctx(t), sum, data)
	if err != nil || !created {
		t.Fatalf("PutVersion = %v, %q, %v", created, version, err)
	}
	again, version2, err := v.PutVersion(ctx(t), sum, data)
	if err != nil || again || version2 != version {
		t.Fatalf("PutVersion again = %v, %q, %v; want existing, version %q", again, version2, err, version)
	}
	rc, err := blob.GetVersion(ctx(t), st, sum, version)
	if err != nil {
		t.Fatalf("GetVersion(%q): %v", version, err)
	}
	defer rc.Close()
	if got, err := io.ReadAll(rc); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("GetVersion read %d bytes, %v", len(got), err)
	}
}

package merklelog_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pecarchive/pecarchive/services/archive/merklelog"
	"github.com/pecarchive/pecarchive/tlog"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
	"golang.org/x/mod/sumdb/note"
)

func equalProofs(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// checkTree compares the log's roots and proofs with the reference tree for every size up to
// the reference size (or a random sample of sizes when the tree is big).
func checkTree(t *testing.T, e *env, ref *testonly.Tree, samples int) {
	t.Helper()
	ctx := context.Background()
	n := ref.Size()
	if got, err := e.log.Size(ctx); err != nil || got != n {
		t.Fatalf("Size = %d, %v; want %d", got, err, n)
	}
	rnd := rand.New(rand.NewPCG(uint64(n), 7))
	sizes := []uint64{}
	if samples == 0 {
		for s := uint64(0); s <= n; s++ {
			sizes = append(sizes, s)
		}
	} else {
		sizes = append(sizes, 0, 1, n)
		for range samples {
			sizes = append(sizes, rnd.Uint64N(n+1))
		}
	}
	for _, size := range sizes {
		root, err := e.log.Root(ctx, size)
		if err != nil {
			t.Fatalf("Root(%d): %v", size, err)
		}
		if want := ref.HashAt(size); !bytes.Equal(root, want) {
			t.Fatalf("Root(%d) = %x, want %x", size, root, want)
		}
		if size > 0 {
			for _, index := range []uint64{0, size - 1, size / 2, rnd.Uint64N(size)} {
				p, err := e.log.InclusionProof(ctx, index, size)
				if err != nil {
					t.Fatalf("InclusionProof(%d, %d): %v", index, size, err)
				}
				want, _ := ref.InclusionProof(index, size)
				if !equalProofs(p, want) {
					t.Fatalf("InclusionProof(%d, %d) differs from the reference", index, size)
				}
				if err := tlog.VerifyInclusion([32]byte(ref.LeafHash(index)), index, size, p, root); err != nil {
					t.Fatalf("VerifyInclusion(%d, %d): %v", index, size, err)
				}
			}
		}
		for _, from := range []uint64{0, 1, size / 2, size - min(size, 1), size, rnd.Uint64N(size + 1)} {
			if from > size {
				continue
			}
			p, err := e.log.ConsistencyProof(ctx, from, size)
			if err != nil {
				t.Fatalf("ConsistencyProof(%d, %d): %v", from, size, err)
			}
			want, _ := ref.ConsistencyProof(from, size)
			if !equalProofs(p, want) {
				t.Fatalf("ConsistencyProof(%d, %d) differs from the reference", from, size)
			}
			if err := tlog.VerifyConsistency(from, size, p, ref.HashAt(from), root); err != nil {
				t.Fatalf("VerifyConsistency(%d, %d): %v", from, size, err)
			}
		}
	}
}

func TestTreeAgainstReference(t *testing.T) {
	e := newEnv(t, merklelog.Config{})
	ctx := context.Background()
	ref := testonly.New(rfc6962.DefaultHasher)
	checkTree(t, e, ref, 0) // empty
	var all [][]byte
	rnd := rand.New(rand.NewPCG(1, 2))
	for len(all) < 300 {
		batch := make([][]byte, 1+rnd.IntN(40))
		for i := range batch {
			batch[i] = leaf(len(all) + i)
		}
		first := e.appendTx(t, batch)
		if first != uint64(len(all)) {
			t.Fatalf("Append returned first %d, want %d", first, len(all))
		}
		all = append(all, batch...)
		ref.AppendData(batch...)
	}
	checkTree(t, e, ref, 0)

	// Leaf data.
	for _, i := range []int{0, 1, 150, len(all) - 1} {
		d, err := e.log.LeafData(ctx, uint64(i))
		if err != nil || !bytes.Equal(d, all[i]) {
			t.Fatalf("LeafData(%d) = %q, %v", i, d, err)
		}
	}
	n := 0
	err := e.log.Leaves(ctx, func(index uint64, data []byte) error {
		if index != uint64(n) || !bytes.Equal(data, all[n]) {
			return fmt.Errorf("leaf %d: got index %d", n, index)
		}
		n++
		return nil
	})
	if err != nil || n != len(all) {
		t.Fatalf("Leaves: %d leaves, %v", n, err)
	}
	stop := errors.New("stop")
	if err := e.log.LeavesFrom(ctx, 299, func(index uint64, data []byte) error { return stop }); err != stop {
		t.Fatalf("Leaves did not return fn's error: %v", err)
	}

	// Out of range and invalid arguments.
	size := uint64(len(all))
	for name, err := range map[string]error{
		"Root(size+1)":                     second(e.log.Root(ctx, size+1)),
		"InclusionProof(size, size+1)":     second(e.log.InclusionProof(ctx, size, size+1)),
		"InclusionProof(0, size+5)":        second(e.log.InclusionProof(ctx, 0, size+5)),
		"ConsistencyProof(3, size+1)":      second(e.log.ConsistencyProof(ctx, 3, size+1)),
		"ConsistencyProof(0, size+1)":      second(e.log.ConsistencyProof(ctx, 0, size+1)),
		"ConsistencyProof(size+1, size+1)": second(e.log.ConsistencyProof(ctx, size+1, size+1)),
	} {
		if !errors.Is(err, merklelog.ErrOutOfRange) {
			t.Errorf("%s: %v, want ErrOutOfRange", name, err)
		}
	}
	for name, err := range map[string]error{
		"InclusionProof(5, 5)":   second(e.log.InclusionProof(ctx, 5, 5)),
		"ConsistencyProof(5, 3)": second(e.log.ConsistencyProof(ctx, 5, 3)),
		"Root(huge)":             second(e.log.Root(ctx, 1<<63)),
	} {
		if !errors.Is(err, merklelog.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	if _, err := e.log.LeafData(ctx, size); !errors.Is(err, merklelog.ErrNotFound) {
		t.Errorf("LeafData(size): %v", err)
	}
}

func second[T any](_ T, err error) error { return err }

// TestReads checks that a root or proof costs one query whatever the tree size.
func TestReads(t *testing.T) {
	e := newEnv(t, merklelog.Config{})
	ctx := context.Background()
	ref := testonly.New(rfc6962.DefaultHasher)
	batch := make([][]byte, 5000)
	for i := range batch {
		batch[i] = leaf(i)
	}
	for range 2 {
		e.appendTx(t, batch)
		ref.AppendData(batch...)
	}
	checkTree(t, e, ref, 150)
	n := ref.Size()
	for _, c := range []struct {
		name string
		f    func() error
	}{
		{"Root", func() error { return second(e.log.Root(ctx, n-3)) }},
		{"InclusionProof", func() error { return second(e.log.InclusionProof(ctx, 4321, n-7)) }},
		{"ConsistencyProof", func() error { return second(e.log.ConsistencyProof(ctx, 4321, n-7)) }},
		{"LeafData", func() error { return second(e.log.LeafData(ctx, 77)) }},
	} {
		before := e.queries.n.Load()
		if err := c.f(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if q := e.queries.n.Load() - before; q != 1 {
			t.Errorf("%s took %d queries, want 1", c.name, q)
		}
	}
}

func TestRollback(t *testing.T) {
	e := newEnv(t, merklelog.Config{})
	ctx := context.Background()
	ref := testonly.New(rfc6962.DefaultHasher)
	data := [][]byte{leaf(1), leaf(2), leaf(3)}
	e.appendTx(t, data)
	ref.AppendData(data...)

	tx, err := e.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if first, err := appendIn(ctx, e.log, tx, [][]byte{leaf(4), leaf(5)}); err != nil || first != 3 {
		t.Fatalf("append = %d, %v", first, err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	d := leaf(6)
	if first := e.appendTx(t, [][]byte{d}); first != 3 {
		t.Fatalf("after rollback, first = %d, want 3", first)
	}
	ref.AppendData(d)
	checkTree(t, e, ref, 0)
	if p, err := e.log.Verify(ctx); err != nil || len(p) != 0 {
		t.Fatalf("Verify = %v, %v", p, err)
	}

	// Bad batches.
	tx, _ = e.pool.Begin(ctx)
	defer tx.Rollback(ctx) //nolint:errcheck
	for name, b := range map[string][][]byte{
		"empty batch": {},
		"empty leaf":  {leaf(7), {}},
		"huge leaf":   {make([]byte, tlog.MaxLeafSize+1)},
	} {
		if _, err := appendIn(ctx, e.log, tx, b); !errors.Is(err, merklelog.ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestLeafFormatEnforced(t *testing.T) {
	e := newEnv(t, merklelog.Config{})
	ctx := context.Background()
	tx, err := e.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	if _, err := appendIn(ctx, e.log, tx, [][]byte{leaf(1), []byte("not a leaf")}); !errors.Is(err, merklelog.ErrInvalid) || !errors.Is(err, tlog.ErrInvalidLeaf) {
		t.Fatalf("append(not a leaf) = %v", err)
	}
}

// TestConcurrentAppend runs several "replicas" (Log values on their own pools) appending in
// transactions that also write a catalog-like row; indices must be dense and each transaction's
// leaves contiguous.
func TestConcurrentAppend(t *testing.T) {
	e := newEnv(t, merklelog.Config{})
	ctx := context.Background()
	if _, err := e.pool.Exec(ctx, `CREATE TABLE catalog (leaf bigint PRIMARY KEY, data bytea NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	replicas := make([]*merklelog.Log, 3)
	for i := range replicas {
		l, err := merklelog.New(ctx, merklelog.Config{Pool: e.pool, Origin: origin})
		if err != nil {
			t.Fatal(err)
		}
		replicas[i] = l
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	errs := make(chan error, 16)
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(w), 3))
			l := replicas[w%len(replicas)]
			for range 15 {
				batch := make([][]byte, 1+rnd.IntN(12))
				for i := range batch {
					batch[i] = leaf(i)
				}
				err := func() error {
					tx, err := e.pool.Begin(ctx)
					if err != nil {
						return err
					}
					defer tx.Rollback(ctx) //nolint:errcheck
					first, err := appendIn(ctx, l, tx, batch)
					if err != nil {
						return err
					}
					for i, d := range batch {
						if _, err := tx.Exec(ctx, `INSERT INTO catalog VALUES ($1, $2)`, int64(first)+int64(i), d); err != nil {
							return err
						}
					}
					if rnd.IntN(5) == 0 {
						return nil // roll back
					}
					if err := tx.Commit(ctx); err != nil {
						return err
					}
					mu.Lock()
					total += len(batch)
					mu.Unlock()
					return nil
				}()
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	size, err := e.log.Size(ctx)
	if err != nil || size != uint64(total) {
		t.Fatalf("Size = %d, %v; want %d", size, err, total)
	}
	// The catalog rows name exactly the leaves.
	var mismatched int
	if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM catalog c FULL JOIN merklelog_leaf l ON c.leaf = l.idx
		WHERE c.data IS DISTINCT FROM l.data`).Scan(&mismatched); err != nil || mismatched != 0 {
		t.Fatalf("catalog and log differ in %d rows (%v)", mismatched, err)
	}
	if p, err := e.log.Verify(ctx); err != nil || len(p) != 0 {
		t.Fatalf("Verify = %v, %v", p, err)
	}
}

func TestPublish(t *testing.T) {
	e := newEnv(t, merklelog.Config{})
	ctx := context.Background()
	if _, err := e.log.Checkpoint(ctx); !errors.Is(err, merklelog.ErrNotFound) {
		t.Fatalf("Checkpoint before Publish: %v", err)
	}
	c0, err := e.log.Publish(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := tlog.VerifyCheckpoint(c0, e.vkey)
	if err != nil || cp.Size != 0 || cp.Origin != origin {
		t.Fatalf("empty checkpoint %+v, %v", cp, err)
	}
	if er := tlog.EmptyRoot(); !bytes.Equal(cp.Hash, er[:]) {
		t.Fatalf("empty root %x", cp.Hash)
	}
	if again, err := e.log.Publish(ctx); err != nil || !bytes.Equal(again, c0) {
		t.Fatalf("Publish without new leaves changed the checkpoint: %v", err)
	}

	batch := [][]byte{leaf(1), leaf(2), leaf(3), leaf(4), leaf(5)}
	e.appendTx(t, batch)
	c5, err := e.log.Publish(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e.appendTx(t, batch[:2])
	c7, err := e.log.Publish(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if latest, err := e.log.Checkpoint(ctx); err != nil || !bytes.Equal(latest, c7) {
		t.Fatalf("Checkpoint = %s, %v", latest, err)
	}
	var sizes []uint64
	var notes [][]byte
	if err := e.log.Checkpoints(ctx, func(size uint64, signed []byte) error {
		sizes = append(sizes, size)
		notes = append(notes, signed)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(sizes) != "[0 5 7]" || !bytes.Equal(notes[1], c5) {
		t.Fatalf("Checkpoints sizes %v", sizes)
	}
	// An auditor holding c5 checks c7.
	p, err := e.log.ConsistencyProof(ctx, 5, 7)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := tlog.CheckConsistency(c5, c7, p, e.vkey); err != nil || got.Size != 7 {
		t.Fatalf("CheckConsistency = %+v, %v", got, err)
	}
	// And a leaf against c7.
	cp7, _ := tlog.VerifyCheckpoint(c7, e.vkey)
	ip, err := e.log.InclusionProof(ctx, 5, 7)
	if err != nil {
		t.Fatal(err)
	}
	if err := tlog.VerifyInclusion(tlog.LeafHash(batch[0]), 5, 7, ip, cp7.Hash); err != nil {
		t.Fatal(err)
	}
	if at, err := e.log.CheckpointAt(ctx, 5); err != nil || !bytes.Equal(at, c5) {
		t.Fatalf("CheckpointAt(5): %v", err)
	}
	if _, err := e.log.CheckpointAt(ctx, 6); !errors.Is(err, merklelog.ErrNotFound) {
		t.Fatalf("CheckpointAt(6): %v", err)
	}

	// Concurrent publishers agree on one note per size.
	e.appendTx(t, batch)
	var wg sync.WaitGroup
	got := make([][]byte, 4)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], _ = e.log.Publish(ctx)
		}()
	}
	wg.Wait()
	for i := range got {
		if got[i] == nil || !bytes.Equal(got[i], got[0]) {
			t.Fatalf("concurrent Publish returned different notes")
		}
	}

	// A read-only log cannot publish.
	ro, err := merklelog.New(ctx, merklelog.Config{Pool: e.pool})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ro.Publish(ctx); !errors.Is(err, merklelog.ErrNoSigner) {
		t.Fatalf("Publish without signer: %v", err)
	}
}

func TestNew(t *testing.T) {
	ctx := context.Background()
	bare := newBareSchema(t)
	if _, err := merklelog.New(ctx, merklelog.Config{Pool: bare.pool}); !errors.Is(err, merklelog.ErrSchema) {
		t.Fatalf("New on unmigrated schema: %v", err)
	}
	e := newSchema(t)
	e.tamper(t, `DELETE FROM merklelog_state`)
	if _, err := merklelog.New(ctx, merklelog.Config{Pool: e.pool}); !errors.Is(err, merklelog.ErrSchema) {
		t.Fatalf("New without state row: %v", err)
	}
	if _, err := e.pool.Exec(ctx, `INSERT INTO merklelog_state (size, compact) VALUES (0, '')`); err != nil {
		t.Fatal(err)
	}
	skey, vkey, _ := tlog.GenerateKey(origin)
	s, _ := tlog.NewSigner(skey)
	v, _ := tlog.NewVerifier(vkey)
	_, otherKey, _ := tlog.GenerateKey(origin)
	ov, _ := tlog.NewVerifier(otherKey)
	_, elsewhereKey, _ := tlog.GenerateKey("elsewhere.example/log")
	ev, _ := tlog.NewVerifier(elsewhereKey)
	cps := newCheckpointStore(t)
	for name, cfg := range map[string]merklelog.Config{
		"origin mismatch":          {Signer: s, Verifier: v, Checkpoints: cps, Origin: "other"},
		"signer without verifier":  {Signer: s, Checkpoints: cps},
		"signer without storage":   {Signer: s, Verifier: v},
		"verifier of another key":  {Signer: s, Verifier: ov, Checkpoints: cps},
		"old key of another name":  {Signer: s, Verifier: v, OldVerifiers: []note.Verifier{ev}, Checkpoints: cps},
		"old key without current":  {OldVerifiers: []note.Verifier{ov}},
		"verifier of another name": {Signer: s, Verifier: ev, Checkpoints: cps},
	} {
		cfg.Pool = e.pool
		if _, err := merklelog.New(ctx, cfg); !errors.Is(err, merklelog.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	l, err := merklelog.New(ctx, merklelog.Config{Pool: e.pool, Signer: s, Verifier: v, OldVerifiers: []note.Verifier{ov}, Checkpoints: cps})
	if err != nil || l.Origin() != origin || !l.CanSign() || len(l.Verifiers()) != 2 {
		t.Fatalf("New: %v", err)
	}
	if _, err := merklelog.New(ctx, merklelog.Config{}); !errors.Is(err, merklelog.ErrInvalid) {
		t.Fatalf("nil pool: %v", err)
	}
}

// A database that cannot be reached, or goes away, fails every call with ErrUnavailable, so that
// callers sort errors by kind without knowing pgx's.
func TestUnavailable(t *testing.T) {
	ctx := context.Background()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	closed, err := pgxpool.New(ctx, "postgres://postgres@"+addr+"/test?sslmode=disable&connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	defer closed.Close()
	if _, err := merklelog.New(ctx, merklelog.Config{Pool: closed}); !errors.Is(err, merklelog.ErrUnavailable) {
		t.Errorf("New on a closed port: %v, want ErrUnavailable", err)
	}

	e := newEnv(t, merklelog.Config{})
	e.appendTx(t, [][]byte{leaf(1), leaf(2)})
	if _, err := e.log.Publish(ctx); err != nil {
		t.Fatal(err)
	}
	e.pool.Close()
	for name, call := range map[string]func() error{
		"Size":             func() error { _, err := e.log.Size(ctx); return err },
		"Checkpoint":       func() error { _, err := e.log.Checkpoint(ctx); return err },
		"InclusionProof":   func() error { _, err := e.log.InclusionProof(ctx, 0, 2); return err },
		"ConsistencyProof": func() error { _, err := e.log.ConsistencyProof(ctx, 1, 2); return err },
		"LeafData":         func() error { _, err := e.log.LeafData(ctx, 0); return err },
		"Publish":          func() error { _, err := e.log.Publish(ctx); return err },
	} {
		if err := call(); !errors.Is(err, merklelog.ErrUnavailable) {
			t.Errorf("%s on a closed pool: %v, want ErrUnavailable", name, err)
		}
	}
}

// InclusionProofs takes the upper nodes it read once from its cache: proofs against the same
// tree size and against later ones stay equal to InclusionProof's (which reads every node) and
// verify against the root, and the query reads fewer nodes the second time.
func TestInclusionProofsCachedNodes(t *testing.T) {
	e := newEnv(t, merklelog.Config{})
	ctx := context.Background()
	var data [][]byte
	for i := range 1300 {
		data = append(data, leaf(i))
	}
	e.appendTx(t, data[:1000])
	check := func(size uint64, idx []uint64) {
		t.Helper()
		root, err := e.log.Root(ctx, size)
		if err != nil {
			t.Fatal(err)
		}
		before := e.queries.n.Load()
		got, err := e.log.InclusionProofs(ctx, idx, size)
		if err != nil {
			t.Fatal(err)
		}
		if q := e.queries.n.Load() - before; q > 1 {
			t.Errorf("size %d: %d queries, want at most 1", size, q)
		}
		for k, i := range idx {
			want, err := e.log.InclusionProof(ctx, i, size)
			if err != nil || !equalProofs(got[k], want) {
				t.Errorf("size %d, leaf %d: proof differs from InclusionProof's (%v)", size, i, err)
			}
			if err := tlog.VerifyInclusion(tlog.LeafHash(data[i]), i, size, got[k], root); err != nil {
				t.Errorf("size %d, leaf %d: %v", size, i, err)
			}
		}
	}
	check(1000, []uint64{3, 700, 999})
	check(1000, []uint64{3, 700, 999, 260, 511, 512})
	e.appendTx(t, data[1000:])
	check(1000, []uint64{4, 701})
	check(1300, []uint64{3, 700, 999, 1299, 1024, 5})
	check(1100, []uint64{1, 1099, 600})
}

// InclusionProofs answers many proofs with one query, each equal to InclusionProof's.
func TestInclusionProofs(t *testing.T) {
	e := newEnv(t, merklelog.Config{})
	ctx := context.Background()
	var batch [][]byte
	for i := range 37 {
		batch = append(batch, leaf(i))
	}
	e.appendTx(t, batch)
	indices := []uint64{0, 36, 5, 5, 17, 31}
	for _, size := range []uint64{37, 32, 18} {
		var idx []uint64
		for _, i := range indices {
			if i < size {
				idx = append(idx, i)
			}
		}
		before := e.queries.n.Load()
		got, err := e.log.InclusionProofs(ctx, idx, size)
		if err != nil {
			t.Fatal(err)
		}
		if q := e.queries.n.Load() - before; q != 1 {
			t.Errorf("size %d: %d queries, want 1", size, q)
		}
		for k, i := range idx {
			want, err := e.log.InclusionProof(ctx, i, size)
			if err != nil || !equalProofs(got[k], want) {
				t.Errorf("size %d, leaf %d: proof differs (%v)", size, i, err)
			}
		}
	}
	if got, err := e.log.InclusionProofs(ctx, nil, 37); err != nil || len(got) != 0 {
		t.Errorf("no indices: %v, %v", got, err)
	}
	if _, err := e.log.InclusionProofs(ctx, []uint64{3}, 40); !errors.Is(err, merklelog.ErrOutOfRange) {
		t.Errorf("beyond the log: %v, want ErrOutOfRange", err)
	}
	if _, err := e.log.InclusionProofs(ctx, []uint64{37}, 37); !errors.Is(err, merklelog.ErrInvalid) {
		t.Errorf("index at size: %v, want ErrInvalid", err)
	}
}

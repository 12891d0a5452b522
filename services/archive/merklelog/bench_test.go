package merklelog_test

import (
	"context"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/pecarchive/pecarchive/services/archive/merklelog"
	"github.com/pecarchive/pecarchive/tlog"
)

// benchTreeSize is the tree size for the read benchmarks: PECARCHIVE_BENCH_LOG_SIZE or 100,000.
func benchTreeSize() int {
	if n, err := strconv.Atoi(os.Getenv("PECARCHIVE_BENCH_LOG_SIZE")); err == nil && n > 0 {
		return n
	}
	return 100_000
}

func makeLeaves(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = leaf(i)
	}
	return out
}

// BenchmarkAppend appends 500 leaves per transaction (one op = one transaction).
func BenchmarkAppend(b *testing.B) {
	e := newEnv(b, merklelog.Config{})
	batch := makeLeaves(500)
	// Start from a non-trivial tree.
	e.appendTx(b, makeLeaves(5000))
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		e.appendTx(b, batch)
	}
	b.ReportMetric(float64(500*b.N)/time.Since(start).Seconds(), "leaves/s")
}

// BenchmarkAppendSingle appends one leaf per transaction, the worst case for callers that do not
// batch.
func BenchmarkAppendSingle(b *testing.B) {
	e := newEnv(b, merklelog.Config{})
	batch := makeLeaves(1)
	b.ResetTimer()
	for b.Loop() {
		e.appendTx(b, batch)
	}
}

// buildTree returns a log of benchTreeSize leaves.
func buildTree(b *testing.B) (*env, uint64) {
	b.Helper()
	e := newEnv(b, merklelog.Config{})
	n := benchTreeSize()
	batch := makeLeaves(5000)
	for done := 0; done < n; done += len(batch) {
		e.appendTx(b, batch[:min(len(batch), n-done)])
	}
	size, err := e.log.Size(context.Background())
	if err != nil || size != uint64(n) {
		b.Fatalf("size %d, %v", size, err)
	}
	return e, size
}

func reportLatency(b *testing.B, d []time.Duration) {
	slices.Sort(d)
	b.ReportMetric(float64(d[len(d)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(d[len(d)*99/100].Nanoseconds()), "p99-ns")
}

// BenchmarkInclusionProof serves inclusion proofs for random leaves against the full tree.
func BenchmarkInclusionProof(b *testing.B) {
	e, size := buildTree(b)
	ctx := context.Background()
	root, err := e.log.Root(ctx, size)
	if err != nil {
		b.Fatal(err)
	}
	rnd := rand.New(rand.NewPCG(1, 1))
	var lat []time.Duration
	b.ResetTimer()
	for b.Loop() {
		i := rnd.Uint64N(size)
		t0 := time.Now()
		p, err := e.log.InclusionProof(ctx, i, size)
		lat = append(lat, time.Since(t0))
		if err != nil {
			b.Fatal(err)
		}
		if i%64 == 0 { // spot-check outside the measured call
			d, _ := e.log.LeafData(ctx, i)
			if err := tlog.VerifyInclusion(tlog.LeafHash(d), i, size, p, root); err != nil {
				b.Fatal(err)
			}
		}
	}
	reportLatency(b, lat)
}

// BenchmarkConsistencyProof serves consistency proofs between random sizes.
func BenchmarkConsistencyProof(b *testing.B) {
	e, size := buildTree(b)
	ctx := context.Background()
	rnd := rand.New(rand.NewPCG(2, 2))
	var lat []time.Duration
	b.ResetTimer()
	for b.Loop() {
		from := 1 + rnd.Uint64N(size-1)
		t0 := time.Now()
		_, err := e.log.ConsistencyProof(ctx, from, size)
		lat = append(lat, time.Since(t0))
		if err != nil {
			b.Fatal(err)
		}
	}
	reportLatency(b, lat)
}

// BenchmarkVerify audits the whole tree (one op = one full Verify).
func BenchmarkVerify(b *testing.B) {
	e, size := buildTree(b)
	ctx := context.Background()
	if _, err := e.log.Publish(ctx); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		ps, err := e.log.Verify(ctx)
		if err != nil || len(ps) != 0 {
			b.Fatalf("Verify: %v, %v", ps, err)
		}
	}
	b.ReportMetric(float64(size)*float64(b.N)/b.Elapsed().Seconds(), "leaves/s")
}

// BenchmarkPublish signs a checkpoint after every append of 500 leaves on a tree of
// benchTreeSize leaves: the append-only check (the latest checkpoint verified, a consistency
// proof from the stored nodes), the signature, the write-once copy (filesystem store) and the
// database copy. One op is one checkpoint; it is paid per checkpoint, never per message.
func BenchmarkPublish(b *testing.B) {
	e, _ := buildTree(b)
	ctx := context.Background()
	if _, err := e.log.Publish(ctx); err != nil {
		b.Fatal(err)
	}
	batch := makeLeaves(500)
	var spent time.Duration
	for b.Loop() {
		b.StopTimer()
		e.appendTx(b, batch)
		b.StartTimer()
		start := time.Now()
		if _, err := e.log.Publish(ctx); err != nil {
			b.Fatal(err)
		}
		spent += time.Since(start)
	}
	b.ReportMetric(float64(spent.Microseconds())/float64(b.N), "µs/checkpoint")
}

package main

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"flag"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/pecarchive/pecarchive/pec"
	"github.com/pecarchive/pecarchive/pec/pectest"
	"github.com/pecarchive/pecarchive/pec/smime"
)

func init() {
	benchmarks["verify"] = benchVerify
}

// benchVerify measures parse + full verification of a typical delivery receipt on one core, and in
// the same run the floor: SHA-256 over the same bytes plus one RSA-2048 PKCS#1 v1.5 verification.
func benchVerify(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	seed := fs.Int64("seed", 1, "test provider seed")
	benchtime := fs.Duration("benchtime", time.Second, "minimum time for each measurement")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	res, err := measureVerify(*seed, *benchtime)
	if err != nil {
		fmt.Fprintf(stderr, "pecarchive bench verify: %v\n", err)
		return exitUsage
	}
	fmt.Fprintln(stdout, res)
	return exitOK
}

type verifyBench struct {
	size                int
	pipeline, floor     testing.BenchmarkResult
	perSec, floorPerSec float64
}

func (r verifyBench) ratio() float64 { return r.floorPerSec / r.perSec }

func (r verifyBench) String() string {
	return fmt.Sprintf("verify: %.0f receipts/s per core (%.1f µs/op, %d B/op, %d allocs/op, %d-byte delivery receipt); floor %.0f/s (%.1f µs/op: SHA-256 of the same bytes + one RSA-2048 PKCS#1 v1.5 verify); ratio %.2fx of floor (targets: ≥5000/s, ≤4.00x)",
		r.perSec, float64(r.pipeline.NsPerOp())/1e3, r.pipeline.AllocedBytesPerOp(), r.pipeline.AllocsPerOp(), r.size,
		r.floorPerSec, float64(r.floor.NsPerOp())/1e3, r.ratio())
}

func measureVerify(seed int64, benchtime time.Duration) (verifyBench, error) {
	raw := pectest.TypicalDeliveryReceipt(seed)
	ca, err := pectest.NewCA(seed, nil)
	if err != nil {
		return verifyBench{}, err
	}
	v, err := smime.New(smime.Config{Anchors: smime.NewTrustStore(ca.Root)})
	if err != nil {
		return verifyBench{}, err
	}
	ctx := context.Background()
	check := func() error {
		m, err := pec.Parse(raw, nil)
		if err != nil {
			return err
		}
		if m.Kind != pec.KindAvvenutaConsegna {
			return fmt.Errorf("benchmark receipt parsed as %q", m.Kind)
		}
		vd := v.VerifyMessage(ctx, m, nil)
		if !vd.Valid || !vd.Trusted {
			return fmt.Errorf("benchmark receipt does not verify: %v", vd.Reasons)
		}
		return nil
	}
	if err := check(); err != nil {
		return verifyBench{}, err
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return verifyBench{}, err
	}
	d := sha256.Sum256(raw)
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, d[:])
	if err != nil {
		return verifyBench{}, err
	}
	setBenchtime(benchtime)
	var failed error
	pipeline := testing.Benchmark(func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m, _ := pec.Parse(raw, nil)
			if vd := v.VerifyMessage(ctx, m, nil); !vd.Trusted {
				failed = fmt.Errorf("verification failed during the benchmark: %v", vd.Reasons)
			}
		}
	})
	floor := testing.Benchmark(func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			h := sha256.Sum256(raw)
			if err := rsa.VerifyPKCS1v15(&key.PublicKey, crypto.SHA256, h[:], sig); err != nil {
				failed = err
			}
		}
	})
	if failed != nil {
		return verifyBench{}, failed
	}
	r := verifyBench{size: len(raw), pipeline: pipeline, floor: floor}
	r.perSec = 1e9 / float64(pipeline.NsPerOp())
	r.floorPerSec = 1e9 / float64(floor.NsPerOp())
	return r, nil
}

// setBenchtime sets the -test.benchtime that testing.Benchmark uses outside `go test`.
func setBenchtime(d time.Duration) {
	testing.Init()
	_ = flag.CommandLine.Set("test.benchtime", d.String())
}

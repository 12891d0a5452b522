package archive_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pecarchive/pecarchive/internal/procstat"
	"github.com/pecarchive/pecarchive/internal/testenv"
	"github.com/pecarchive/pecarchive/pec"
	"github.com/pecarchive/pecarchive/pec/pectest"
	"github.com/pecarchive/pecarchive/services/archive"
	"github.com/pecarchive/pecarchive/services/archive/blob/fsstore"
	"github.com/pecarchive/pecarchive/services/archive/blob/s3store"
	"github.com/pecarchive/pecarchive/services/archive/catalog"
)

var (
	benchMu   sync.Mutex
	benchMsgs [][]byte
)

// receipts returns n distinct signed receipts (acceptance, delivery sintetica, non-delivery,
// warning, in turn), generated once per process and reused.
func receipts(b *testing.B, n int) [][]byte {
	benchMu.Lock()
	defer benchMu.Unlock()
	prov, peer, _ := providers(b)
	for i := len(benchMsgs) / 4; len(benchMsgs) < n; i++ {
		o, err := prov.Original(&pectest.Original{
			To: []string{"a@pec.esempio.it"}, Subject: fmt.Sprintf("Pratica %d", i),
			MessageID: fmt.Sprintf("bench-%d@pec.ordine.example.it", i), Date: pectest.DefaultTime.Add(time.Duration(i) * time.Second),
		})
		if err != nil {
			b.Fatal(err)
		}
		for _, gen := range []func() (*pectest.Generated, error){
			func() (*pectest.Generated, error) { return prov.Acceptance(pectest.Params{Original: o}) },
			func() (*pectest.Generated, error) {
				return peer.Delivery(pectest.Params{Original: o, ReceiptType: pec.ReceiptSintetica})
			},
			func() (*pectest.Generated, error) { return peer.NonDelivery(pectest.Params{Original: o}) },
			func() (*pectest.Generated, error) { return prov.NonDeliveryWarning(pectest.Params{Original: o}) },
		} {
			g, err := gen()
			if err != nil {
				b.Fatal(err)
			}
			benchMsgs = append(benchMsgs, g.Bytes)
		}
	}
	return benchMsgs[:n]
}

// benchStore stores b.N distinct receipts from concurrent callers and reports messages/s, the
// receipts per transaction and the PostgreSQL CPU per receipt.
func benchStore(b *testing.B, f *fixture, callers int) {
	msgs := receipts(b, b.N)
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	before := f.a.Stats()
	b.ResetTimer()
	start := time.Now()
	pg0, _ := procstat.CPUByName("postgres")
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(len(msgs)) {
					return
				}
				rec, err := f.a.Store(ctx, msgs[i], archive.Source{Mailbox: "bench", Folder: "INBOX", UIDValidity: 1, UID: uint32(i + 1)})
				if err != nil {
					b.Error(err)
					return
				}
				if !rec.New {
					b.Errorf("message %d not new", i)
				}
			}
		}()
	}
	wg.Wait()
	d := time.Since(start)
	b.StopTimer()
	st := f.a.Stats()
	b.ReportMetric(float64(b.N)/d.Seconds(), "msg/s")
	if n := st.Batches - before.Batches; n > 0 {
		b.ReportMetric(float64(b.N)/float64(n), "msg/tx")
	}
	if pg1, _ := procstat.CPUByName("postgres"); pg1 > pg0 {
		b.ReportMetric(float64((pg1-pg0).Microseconds())/float64(b.N), "pg-µs/msg")
	}
}

// go test -run '^$' -bench BenchmarkStore -benchtime 4000x ./services/archive
func BenchmarkStore(b *testing.B) {
	b.Run("fsstore", func(b *testing.B) {
		benchStore(b, newFixture(b, nil), 256)
	})
	// The same on a RAM file system: what the archive does when the blob store is not the limit
	// (a diagnostic figure, not a durable configuration).
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		// 256 callers fill transactions of about 140 receipts; 32 (the default concurrency of
		// bench archive) about 20. The two give PostgreSQL's fixed cost per transaction and
		// its cost per receipt.
		for _, callers := range []int{256, 32} {
			name := "fsstore-shm"
			if callers != 256 {
				name = fmt.Sprintf("fsstore-shm-callers=%d", callers)
			}
			b.Run(name, func(b *testing.B) {
				dir, err := os.MkdirTemp("/dev/shm", "pecarchive-bench-")
				if err != nil {
					b.Skip(err)
				}
				b.Cleanup(func() { os.RemoveAll(dir) })
				fs, err := fsstore.New(context.Background(), fsstore.Config{Root: dir})
				if err != nil {
					b.Fatal(err)
				}
				benchStore(b, newFixture(b, func(c *archive.Config) { c.Blobs = fs }), callers)
			})
		}
	}
	b.Run("versitygw", func(b *testing.B) {
		srv := testenv.SharedS3(b, testenv.VersityGW)
		s3, err := s3store.New(context.Background(), s3store.Config{Endpoint: srv.Endpoint, AccessKey: srv.AccessKey,
			SecretKey: srv.SecretKey, Region: srv.Region, Bucket: testenv.Bucket("bench"), Retention: time.Hour, CreateBucket: true})
		if err != nil {
			b.Fatal(err)
		}
		benchStore(b, newFixture(b, func(c *archive.Config) { c.Blobs = s3 }), 256)
	})
}

// go test -run '^$' -bench BenchmarkRecordAccess -benchtime 5000x ./services/archive
//
// BenchmarkRecordAccess records b.N accesses (three SHA-256s each, as a ProveDelivery of a
// notice with two receipts) from 16 callers, as the query service's 16 clients in bench query
// do: each call returns once its access row and leaf are committed. It reports accesses/s, the
// accesses per transaction, and the CPU per access of this process and of PostgreSQL.
func BenchmarkRecordAccess(b *testing.B) {
	f := newFixture(b, nil)
	ctx := context.Background()
	const callers = 16
	var next atomic.Int64
	var wg sync.WaitGroup
	before := f.a.Stats()
	b.ResetTimer()
	start := time.Now()
	pg0, _ := procstat.CPUByName("postgres")
	self0, _ := procstat.Read(os.Getpid())
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				acc := catalog.Access{Principal: "bench", Auth: "token", Method: "/pecarchive.query.v1.EvidenceService/ProveDelivery",
					Selector: fmt.Sprintf("msgid=avviso-%d@ordine.example.it", i)}
				for k := range 3 {
					acc.Returned = append(acc.Returned, sha256.Sum256(fmt.Appendf(nil, "%d %d", i, k)))
				}
				if _, err := f.a.RecordAccess(ctx, acc); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	d := time.Since(start)
	b.StopTimer()
	st := f.a.Stats()
	b.ReportMetric(float64(b.N)/d.Seconds(), "acc/s")
	if n := st.Batches - before.Batches; n > 0 {
		b.ReportMetric(float64(b.N)/float64(n), "acc/tx")
	}
	if self1, err := procstat.Read(os.Getpid()); err == nil {
		b.ReportMetric(float64((self1.CPU-self0.CPU).Microseconds())/float64(b.N), "self-µs/acc")
	}
	if pg1, _ := procstat.CPUByName("postgres"); pg1 > pg0 {
		b.ReportMetric(float64((pg1-pg0).Microseconds())/float64(b.N), "pg-µs/acc")
	}
}

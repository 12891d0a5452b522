package s3store_test

import (
	"crypto/sha256"
	"encoding/binary"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/pecarchive/pecarchive/internal/testenv"
	"github.com/pecarchive/pecarchive/services/archive/blob/blobtest"
	"github.com/pecarchive/pecarchive/services/archive/blob/s3store"
)

// BenchmarkPut stores new 8 KiB objects from 16 goroutines through one Store, as the archive
// does: conditional PUT (default) versus HEAD + PUT (StatBeforePut), and existing objects.
//
//	go test -run '^$' -bench Put -benchtime 3000x ./services/archive/blob/s3store
func BenchmarkPut(b *testing.B) {
	for _, kind := range kinds {
		for _, mode := range []string{"conditional", "statfirst", "existing"} {
			if kind == testenv.MinIO && mode == "statfirst" {
				continue
			}
			b.Run(kind+"/"+mode, func(b *testing.B) {
				s, _ := newStore(b, kind, func(c *s3store.Config) { c.StatBeforePut = mode == "statfirst" })
				base, _ := blobtest.Data(uint64(len(mode)), 8<<10)
				var n atomic.Uint64
				if mode == "existing" {
					s.Put(ctx(b), sha256.Sum256(base), base)
				}
				b.SetBytes(int64(len(base)))
				b.SetParallelism(max(1, 16/runtime.GOMAXPROCS(0)))
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					data := append([]byte(nil), base...)
					for pb.Next() {
						if mode != "existing" {
							binary.LittleEndian.PutUint64(data, n.Add(1))
						}
						created, err := s.Put(ctx(b), sha256.Sum256(data), data)
						if err != nil {
							b.Error(err)
							return
						}
						if created == (mode == "existing") {
							b.Errorf("created = %v", created)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "puts/s")
			})
		}
	}
}

package s3store_test

import (
	"crypto/sha256"
	"encoding/binary"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pecarchive/pecarchive/internal/testenv"
	"github.com/pecarchive/pecarchive/services/archive/blob/blobtest"
	"github.com/pecarchive/pecarchive/services/archive/blob/s3store"
)

// BenchmarkPut stores new 8 KiB objects from 16 goroutines through one Store, as the archive
// does: conditional PUT (default), HEAD + conditional PUT (StatBeforePut), a plain PUT without
// If-None-Match (to measure what the condition costs; not idempotent), and existing objects.
//
//	go test -run '^$' -bench Put -benchtime 3000x ./services/archive/blob/s3store
func BenchmarkPut(b *testing.B) {
	for _, kind := range kinds {
		for _, mode := range []string{"conditional", "statfirst", "plain", "existing"} {
			if kind == testenv.MinIO && mode == "statfirst" {
				continue
			}
			b.Run(kind+"/"+mode, func(b *testing.B) {
				s, srv := newStore(b, kind, func(c *s3store.Config) { c.StatBeforePut = mode == "statfirst" })
				s.SetUnconditional(mode == "plain")
				base, _ := blobtest.Data(uint64(len(mode)), 8<<10)
				var n atomic.Uint64
				if mode == "existing" {
					s.Put(ctx(b), sha256.Sum256(base), base)
				}
				b.SetBytes(int64(len(base)))
				b.SetParallelism(max(1, 16/runtime.GOMAXPROCS(0)))
				b.ResetTimer()
				srvCPU, _ := srv.CPUTime()
				ownCPU := processCPU()
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
				// CPU per Put is steadier than the rate on a shared machine.
				if after, err := srv.CPUTime(); err == nil && after > srvCPU {
					b.ReportMetric(float64((after-srvCPU).Microseconds())/float64(b.N), "server-cpu-us/op")
				}
				b.ReportMetric(float64((processCPU()-ownCPU).Microseconds())/float64(b.N), "client-cpu-us/op")
			})
		}
	}
}

// processCPU is the user+system CPU time of this process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

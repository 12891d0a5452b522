package fsstore_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/pecarchive/pecarchive/services/archive/blob/blobtest"
	"github.com/pecarchive/pecarchive/services/archive/blob/fsstore"
)

// BenchmarkPut stores new 8 KiB objects from 16 goroutines (each Put fsyncs a file and a directory).
func BenchmarkPut(b *testing.B) {
	s, err := fsstore.New(context.Background(), fsstore.Config{Root: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	base, _ := blobtest.Data(1, 8<<10)
	var n atomic.Uint64
	b.SetBytes(int64(len(base)))
	b.SetParallelism(max(1, 16/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		data := append([]byte(nil), base...)
		for pb.Next() {
			binary.LittleEndian.PutUint64(data, n.Add(1))
			if _, err := s.Put(context.Background(), sha256.Sum256(data), data); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "puts/s")
}

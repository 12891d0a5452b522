package grpcserver_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"testing"

	"github.com/pecarchive/pecarchive/services/archive"
	"github.com/pecarchive/pecarchive/services/archive/archiveclient"
	"github.com/pecarchive/pecarchive/services/archive/catalog"
	"github.com/pecarchive/pecarchive/services/archive/grpcserver"
)

// nopArchive acknowledges every message at once: the benchmark measures the RPC layer only
// (auth, streaming, hashing, buffering).
type nopArchive struct{}

func (nopArchive) Store(_ context.Context, raw []byte, _ archive.Source) (archive.Record, error) {
	return archive.Record{Message: catalog.Message{SHA256: sha256.Sum256(raw), Size: int64(len(raw))}}, nil
}

func (nopArchive) RecordAccess(_ context.Context, acc catalog.Access) (catalog.Access, error) {
	return acc, nil
}

// BenchmarkStoreBytes stores messages through archiveclient.StoreBytes over loopback with token
// authentication and 4 callers per CPU.
func BenchmarkStoreBytes(b *testing.B) {
	for _, size := range []int{5 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			e := newEnv(b, envOptions{cfg: grpcserver.Config{Archive: nopArchive{}}})
			c := e.client(b, ingestToken)
			raw := bytes.Repeat([]byte("x"), size)
			b.SetBytes(int64(size))
			b.SetParallelism(4)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := archiveclient.StoreBytes(context.Background(), c, raw, src, once); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

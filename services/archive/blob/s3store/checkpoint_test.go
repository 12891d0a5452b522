package s3store_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/pecarchive/pecarchive/internal/testenv"
	"github.com/pecarchive/pecarchive/services/archive/blob"
	"github.com/pecarchive/pecarchive/services/archive/blob/blobtest"
	"github.com/pecarchive/pecarchive/services/archive/blob/s3store"
)

// rawPutKey writes data under key with the service's credentials and no condition, with a
// COMPLIANCE retention when retain is set: what an insider holding those credentials can do.
func rawPutKey(t *testing.T, srv *testenv.S3Server, bucket, key string, data []byte, retain bool) {
	t.Helper()
	sum := sha256.Sum256(data)
	opts := minio.PutObjectOptions{
		DisableContentSha256: true,
		UserMetadata:         map[string]string{"x-amz-checksum-sha256": base64.StdEncoding.EncodeToString(sum[:])},
	}
	if retain {
		opts.Mode = minio.Compliance
		opts.RetainUntilDate = time.Now().Add(testRetention).UTC().Truncate(time.Second).Add(time.Second)
	}
	core := minio.Core{Client: rawClient(t, srv)}
	if _, err := core.PutObject(ctx(t), bucket, key, bytes.NewReader(data), int64(len(data)), "", hex.EncodeToString(sum[:]), opts); err != nil {
		t.Fatalf("raw put %s: %v", key, err)
	}
}

func TestCheckpointConformance(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			srv := testenv.SharedS3(t, kind)
			bucket := func(s blob.CheckpointStore) string { return s.(*s3store.Store).Bucket() }
			blobtest.RunCheckpoints(t, func(t *testing.T) blob.CheckpointStore {
				s, _ := newStore(t, kind, nil)
				s.SetListPageSize(3) // listing across pages is tested too
				return s
			}, &blobtest.CheckpointOptions{
				PutRaw: func(t *testing.T, s blob.CheckpointStore, key string, data []byte) {
					rawPutKey(t, srv, bucket(s), key, data, false)
				},
				Overwrite: func(t *testing.T, s blob.CheckpointStore, key string, data []byte) {
					rawPutKey(t, srv, bucket(s), key, data, true)
				},
				DeleteMarker: func(t *testing.T, s blob.CheckpointStore, key string) {
					err := rawClient(t, srv).RemoveObject(ctx(t), bucket(s), key, minio.RemoveObjectOptions{})
					if err != nil {
						t.Fatalf("delete marker: %v", err)
					}
				},
			})
		})
	}
}

// A stored checkpoint gets the evidence's retention, and the server keeps it: deleting its
// version is refused.
func TestCheckpointRetention(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			s, srv := newStore(t, kind, nil)
			data := blobtest.CheckpointText(5, "a")
			if _, err := s.PutCheckpoint(ctx(t), 5, data); err != nil {
				t.Fatal(err)
			}
			c := rawClient(t, srv)
			key := blob.CheckpointKey(5, data)
			oi, err := c.StatObject(ctx(t), s.Bucket(), key, minio.StatObjectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if mode := oi.Metadata.Get("X-Amz-Object-Lock-Mode"); mode != blob.ModeCompliance {
				t.Fatalf("checkpoint retention mode %q, want COMPLIANCE", mode)
			}
			until, err := time.Parse(time.RFC3339Nano, oi.Metadata.Get("X-Amz-Object-Lock-Retain-Until-Date"))
			if err != nil || until.Before(time.Now().Add(testRetention-time.Minute)) {
				t.Fatalf("retain until %v (%v), want about now+%v", until, err, testRetention)
			}
			if err := c.RemoveObject(ctx(t), s.Bucket(), key, minio.RemoveObjectOptions{VersionID: oi.VersionID}); err == nil {
				t.Fatal("DELETE of the checkpoint's locked version succeeded")
			}
			if cs := blobtest.ListCheckpoints(t, s, 0); len(cs) != 1 || !bytes.Equal(cs[0].Versions[0].Signed, data) {
				t.Fatalf("after the refused delete: %v", cs)
			}
		})
	}
}

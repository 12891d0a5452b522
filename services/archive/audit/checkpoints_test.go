package audit_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/transparency-dev/formats/log"

	"github.com/pecarchive/pecarchive/internal/testenv"
	"github.com/pecarchive/pecarchive/pec/pectest"
	"github.com/pecarchive/pecarchive/services/archive"
	"github.com/pecarchive/pecarchive/services/archive/audit"
	"github.com/pecarchive/pecarchive/services/archive/blob"
	"github.com/pecarchive/pecarchive/services/archive/blob/fsstore"
	"github.com/pecarchive/pecarchive/services/archive/blob/s3store"
	"github.com/pecarchive/pecarchive/services/archive/merklelog/merklelogtest"
	"github.com/pecarchive/pecarchive/tlog"
)

var (
	wProvOnce sync.Once
	wProv     *pectest.Provider
	wProvErr  error
)

// world is a fixture whose tests store acceptances of one shared provider.
type world struct {
	*fixture
	n int
}

func newWorld(t *testing.T, blobs blob.Store) *world {
	t.Helper()
	wProvOnce.Do(func() { wProv, wProvErr = pectest.NewProvider(3, nil) })
	if wProvErr != nil {
		t.Fatal(wProvErr)
	}
	return &world{fixture: newFixture(t, blobs, wProv, nil)}
}

// store stores n new acceptances.
func (w *world) store(t *testing.T, n int) {
	t.Helper()
	for range n {
		w.n++
		o, err := wProv.Original(&pectest.Original{Subject: fmt.Sprintf("Checkpoint %d", w.n), MessageID: fmt.Sprintf("cp-%d@pec.ordine.example.it", w.n)})
		if err != nil {
			t.Fatal(err)
		}
		acc, err := wProv.Acceptance(pectest.Params{Original: o})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.a.Store(context.Background(), acc.Bytes, archive.Source{Path: acc.Name}); err != nil {
			t.Fatal(err)
		}
	}
}

func (w *world) publish(t *testing.T) []byte {
	t.Helper()
	signed, err := w.a.Publish(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

func (w *world) audit(t *testing.T, mod func(*audit.Config)) audit.Report {
	t.Helper()
	cfg := audit.Config{Pool: w.pool, Blobs: w.blobs, Log: w.log, LogKey: w.vkey}
	if mod != nil {
		mod(&cfg)
	}
	rep, err := audit.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range rep.Findings {
		t.Log(f)
	}
	return rep
}

// namesCheckpoint reports whether rep names kind for a checkpoint of size with a detail containing detail.
func namesCheckpoint(rep audit.Report, kind string, size uint64, detail string) bool {
	for _, f := range rep.Findings {
		if f.Kind == kind && f.Size == size && strings.Contains(f.Detail, detail) {
			return true
		}
	}
	return false
}

// plainBlobs hides a store's checkpoints from the audit.
type plainBlobs struct{ blob.Store }

// blobStores makes a new empty blob store of each kind: the filesystem, versitygw and MinIO (a
// server of each started on first use for the rest of the test parent).
func blobStores(parent *testing.T) map[string]func(t *testing.T) blob.Store {
	out := map[string]func(t *testing.T) blob.Store{
		"fsstore": func(t *testing.T) blob.Store {
			s, err := fsstore.New(context.Background(), fsstore.Config{Root: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
	}
	for _, kind := range []string{testenv.VersityGW, testenv.MinIO} {
		var once sync.Once
		var srv *testenv.S3Server
		out[kind] = func(t *testing.T) blob.Store {
			once.Do(func() { srv = s3Server(parent, kind) })
			s, err := s3store.New(context.Background(), s3store.Config{Endpoint: srv.Endpoint, AccessKey: srv.AccessKey,
				SecretKey: srv.SecretKey, Region: srv.Region, Bucket: testenv.Bucket("audit"), Retention: time.Hour, CreateBucket: true})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
	}
	return out
}

// s3Server starts a server of kind for the calling test and its subtests.
func s3Server(t *testing.T, kind string) *testenv.S3Server {
	if kind == testenv.MinIO {
		return testenv.StartMinIO(t)
	}
	return testenv.StartVersityGW(t)
}

// TestAuditCheckpointsDeleted is attack 2 (checkpoints deleted from the database): the audit
// names every write-once checkpoint whose database copy is gone.
func TestAuditCheckpointsDeleted(t *testing.T) {
	w := newWorld(t, blobStores(t)["fsstore"](t))
	w.store(t, 2)
	w.publish(t)
	w.store(t, 2)
	w.publish(t)
	if rep := w.audit(t, nil); !rep.OK() || len(rep.Findings) != 0 || rep.WriteOnceCheckpoints != 2 {
		t.Fatalf("clean archive: OK %v, %d write-once checkpoints", rep.OK(), rep.WriteOnceCheckpoints)
	}
	asOwner(t, w.pool, `DELETE FROM merklelog_checkpoint`)
	rep := w.audit(t, nil)
	if rep.OK() {
		t.Error("an archive whose checkpoints were deleted audits OK")
	}
	for _, size := range []uint64{2, 4} {
		if !namesCheckpoint(rep, audit.CheckpointMissing, size, "no copy in the database") {
			t.Errorf("checkpoint %d deleted from the database not named", size)
		}
	}
}

// TestAuditRollback is attack 2 (a database restored from a dump taken before the last stores),
// on the filesystem store, versitygw and MinIO: the audit fails from the write-once checkpoints
// alone, and from a checkpoint held outside alone.
func TestAuditRollback(t *testing.T) {
	for name, newStore := range blobStores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			w := newWorld(t, newStore(t))
			w.store(t, 3)
			w.publish(t)
			dump, err := merklelogtest.TakeDump(ctx, w.pool)
			if err != nil {
				t.Fatal(err)
			}
			w.store(t, 3)
			kept := w.publish(t) // the auditor's copy
			if rep := w.audit(t, func(c *audit.Config) {
				c.Outside = []audit.OutsideCheckpoint{{Name: "auditor.txt", Signed: kept}}
			}); !rep.OK() || len(rep.Findings) != 0 || rep.OutsideCheckpoints != 1 || rep.WriteOnceCheckpoints != 2 {
				t.Fatalf("clean archive: OK %v, %d findings", rep.OK(), len(rep.Findings))
			}

			if err := dump.Restore(ctx); err != nil {
				t.Fatal(err)
			}
			if size, _ := w.log.Size(ctx); size != 3 {
				t.Fatalf("restored log of %d leaves, want 3", size)
			}
			rep := w.audit(t, nil)
			if rep.OK() {
				t.Error("rolled-back archive audits OK from the write-once checkpoints")
			}
			if !namesCheckpoint(rep, audit.LogRollback, 6, "write-once checkpoint") || !namesCheckpoint(rep, audit.CheckpointMissing, 6, "") {
				t.Error("rollback not named from the write-once checkpoints")
			}
			if rep.Count(audit.BlobOrphan) != 3 {
				t.Errorf("%d orphan blobs, want the 3 rolled back", rep.Count(audit.BlobOrphan))
			}
			rep = w.audit(t, func(c *audit.Config) {
				c.Blobs = plainBlobs{w.blobs}
				c.Outside = []audit.OutsideCheckpoint{{Name: "auditor.txt", Signed: kept}}
			})
			if rep.OK() || !namesCheckpoint(rep, audit.LogRollback, 6, "outside checkpoint auditor.txt") || rep.WriteOnceCheckpoints != 0 {
				t.Error("rollback not named from the outside checkpoint alone")
			}
		})
	}
}

// TestAuditShadowedCheckpoint is attack 4 on the checkpoints: with the service's credentials, a
// newer version under COMPLIANCE retention and a delete marker are written over a checkpoint.
// The audit names both, and still checks the genuine checkpoint (no fork, the database copy
// matches it).
func TestAuditShadowedCheckpoint(t *testing.T) {
	for _, kind := range []string{testenv.VersityGW, testenv.MinIO} {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			srv := s3Server(t, kind)
			s3, err := s3store.New(ctx, s3store.Config{Endpoint: srv.Endpoint, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey,
				Region: srv.Region, Bucket: testenv.Bucket("audit"), Retention: time.Hour, CreateBucket: true})
			if err != nil {
				t.Fatal(err)
			}
			w := newWorld(t, s3)
			w.store(t, 2)
			c2 := w.publish(t)
			w.store(t, 2)
			c4 := w.publish(t)
			raw, err := minio.New(srv.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(srv.AccessKey, srv.SecretKey, ""), Region: srv.Region})
			if err != nil {
				t.Fatal(err)
			}
			forged := append(bytes.Clone(c4[:len(c4)-2]), 'X', '\n') // its signature spoilt
			sum := sha256.Sum256(forged)
			until := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
			if _, err := (minio.Core{Client: raw}).PutObject(ctx, s3.Bucket(), blob.CheckpointKey(4, c4), bytes.NewReader(forged), int64(len(forged)), "",
				hex.EncodeToString(sum[:]), minio.PutObjectOptions{DisableContentSha256: true, Mode: minio.Compliance, RetainUntilDate: until,
					UserMetadata: map[string]string{"x-amz-checksum-sha256": base64.StdEncoding.EncodeToString(sum[:])}}); err != nil {
				t.Fatal(err)
			}
			if err := raw.RemoveObject(ctx, s3.Bucket(), blob.CheckpointKey(2, c2), minio.RemoveObjectOptions{}); err != nil {
				t.Fatal(err)
			}
			rep := w.audit(t, nil)
			if rep.OK() {
				t.Error("shadowed checkpoints audit OK")
			}
			if !namesCheckpoint(rep, audit.CheckpointShadowed, 4, "version") || !namesCheckpoint(rep, audit.CheckpointShadowed, 2, "delete marker") {
				t.Error("the newer version or the delete marker is not named")
			}
			if rep.Count(audit.CheckpointShadowed) != 2 || rep.Count(audit.CheckpointFork) != 0 || rep.Count(audit.CheckpointInvalid) != 0 ||
				rep.Count(audit.CheckpointMissing) != 0 || rep.WriteOnceCheckpoints != 2 {
				t.Errorf("the genuine checkpoints are not what was checked: %+v", rep.Findings)
			}
			// The archive itself goes on signing from the genuine checkpoints.
			w.store(t, 1)
			w.publish(t)
		})
	}
}

// TestAuditSymlinkedCheckpoints: a filesystem store's checkpoints directory replaced by a link
// to a copy of it (which its owner could then rewrite) is named, and the audit goes on.
func TestAuditSymlinkedCheckpoints(t *testing.T) {
	fs := blobStores(t)["fsstore"](t).(*fsstore.Store)
	w := newWorld(t, fs)
	w.store(t, 2)
	dir := filepath.Dir(fs.CheckpointPath(2, w.publish(t)))
	elsewhere := filepath.Join(t.TempDir(), "checkpoints")
	if err := os.Rename(dir, elsewhere); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, dir); err != nil {
		t.Fatal(err)
	}
	rep := w.audit(t, nil)
	if rep.OK() || !namesCheckpoint(rep, audit.CheckpointInvalid, 0, "symbolic link") || rep.Rows != 2 {
		t.Fatalf("symlinked checkpoints directory: OK %v, %d rows audited, findings %v", rep.OK(), rep.Rows, rep.Findings)
	}
}

// TestAuditPlantedCheckpoints is attack 8: with the storage's credentials an insider plants
// objects under checkpoint keys, at the size the log reaches next and beyond it: one that is no
// checkpoint and one signed by another key at each size. The archive
// publishes past them, and the audit names each (checkpoint-invalid) and nothing else: the log's
// own checkpoint of that size and its database copy are found beside them.
func TestAuditPlantedCheckpoints(t *testing.T) {
	for name, newStore := range blobStores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			w := newWorld(t, newStore(t))
			w.store(t, 2)
			w.publish(t)
			cs := w.blobs.(blob.CheckpointStore)
			skey, _, _ := tlog.GenerateKey(origin)
			other, _ := tlog.NewSigner(skey)
			var planted int
			for _, size := range []uint64{3, 4, 1000} {
				byOther, err := tlog.SignCheckpoint(other, log.Checkpoint{Origin: origin, Size: size, Hash: bytes.Repeat([]byte{7}, 32)})
				if err != nil {
					t.Fatal(err)
				}
				for _, b := range [][]byte{[]byte("no checkpoint"), byOther} {
					if _, err := cs.PutCheckpoint(ctx, size, b); err != nil {
						t.Fatal(err)
					}
					planted++
				}
			}
			w.store(t, 1)
			w.publish(t) // at 3
			w.store(t, 1)
			w.publish(t) // at 4
			rep := w.audit(t, nil)
			if rep.OK() || rep.Count(audit.CheckpointInvalid) != planted || len(rep.Findings) != planted {
				t.Fatalf("%d planted objects: %d findings, %d checkpoint-invalid", planted, len(rep.Findings), rep.Count(audit.CheckpointInvalid))
			}
			if rep.WriteOnceCheckpoints != uint64(planted)+3 {
				t.Errorf("%d write-once checkpoints checked, want the %d planted and the log's 3", rep.WriteOnceCheckpoints, planted)
			}
		})
	}
}

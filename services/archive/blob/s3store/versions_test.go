package s3store_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/lifecycle"

	"github.com/pecarchive/pecarchive/internal/testenv"
	"github.com/pecarchive/pecarchive/services/archive/blob"
	"github.com/pecarchive/pecarchive/services/archive/blob/blobtest"
	"github.com/pecarchive/pecarchive/services/archive/blob/s3store"
)

// auditWalk walks s, returning the objects listed and the anomalies found.
func auditWalk(t *testing.T, s *s3store.Store) (map[[32]byte]bool, []blob.Anomaly) {
	t.Helper()
	objs := map[[32]byte]bool{}
	var found []blob.Anomaly
	err := s.AuditWalk(ctx(t), func(sum [32]byte) error {
		objs[sum] = true
		return nil
	}, func(a blob.Anomaly) error {
		found = append(found, a)
		return nil
	})
	if err != nil {
		t.Fatalf("AuditWalk: %v", err)
	}
	return objs, found
}

// forgeVersion writes data as a new version of sum's key with the service's own credentials, as
// an insider would: with COMPLIANCE retention (so nobody can remove it either) and, when
// withChecksum, the SHA-256 of data as its stored checksum.
func forgeVersion(t *testing.T, srv *testenv.S3Server, bucket string, sum [32]byte, data []byte, withChecksum bool) string {
	t.Helper()
	ds := sha256.Sum256(data)
	opts := minio.PutObjectOptions{DisableContentSha256: true, Mode: minio.Compliance,
		RetainUntilDate: time.Now().Add(time.Hour).UTC().Truncate(time.Second)}
	if withChecksum {
		opts.UserMetadata = map[string]string{"x-amz-checksum-sha256": base64.StdEncoding.EncodeToString(ds[:])}
	}
	info, err := minio.Core{Client: rawClient(t, srv)}.PutObject(ctx(t), bucket, blob.Key(sum), bytes.NewReader(data),
		int64(len(data)), "", hex.EncodeToString(ds[:]), opts)
	if err != nil {
		t.Fatalf("forged version: %v", err)
	}
	return info.VersionID
}

// An insider with the service's credentials puts a newer version over a stored object (even with
// COMPLIANCE retention), or a delete marker: the genuine bytes stay readable (Get, GetVersion by
// the recorded ID, Stat), storing them again succeeds with the retained version (it used to fail
// with ErrIntegrity, DataLoss to the client), and AuditWalk names the shadowed key.
func TestShadowedVersions(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			s, srv := newStore(t, kind, nil)
			data, sum := blobtest.Data(30, 2000)
			created, v1, err := s.PutVersion(ctx(t), sum, data)
			if err != nil || !created || v1 == "" {
				t.Fatalf("PutVersion = %v, %q, %v; want created with a version ID", created, v1, err)
			}
			other, otherSum := blobtest.Data(31, 100)
			if _, err := s.Put(ctx(t), otherSum, other); err != nil {
				t.Fatal(err)
			}
			if _, found := auditWalk(t, s); len(found) != 0 {
				t.Fatalf("AuditWalk of an untouched bucket found %v", found)
			}
			check := func(what string) {
				t.Helper()
				if got, err := blobtest.ReadAll(t, s, sum); err != nil || !bytes.Equal(got, data) {
					t.Fatalf("%s: Get = %d bytes, %v; want the genuine bytes", what, len(got), err)
				}
				rc, err := s.GetVersion(ctx(t), sum, v1)
				if err != nil {
					t.Fatalf("%s: GetVersion(%s): %v", what, v1, err)
				}
				got, err := readAllClose(rc)
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("%s: GetVersion = %d bytes, %v", what, len(got), err)
				}
				// versitygw sends no retention headers for a version that is not the current one
				// (see the package documentation).
				if info, err := s.Stat(ctx(t), sum); err != nil || info.Size != int64(len(data)) ||
					(info.Mode != blob.ModeCompliance && kind != testenv.VersityGW) {
					t.Fatalf("%s: Stat = %+v, %v; want the retained version", what, info, err)
				}
				objs, found := auditWalk(t, s)
				if !objs[sum] || !objs[otherSum] || len(objs) != 2 {
					t.Fatalf("%s: AuditWalk listed %d objects", what, len(objs))
				}
				if len(found) != 1 || found[0].Kind != blob.AnomalyShadowed || found[0].SHA256 != sum {
					t.Fatalf("%s: AuditWalk found %v, want the shadowed key", what, found)
				}
				t.Logf("%s: %s", what, found[0])
				created, v, err := s.PutVersion(ctx(t), sum, data)
				switch {
				case err != nil:
					t.Fatalf("%s: PutVersion again: %v", what, err)
				case !created && v == v1:
				case created && what == "delete marker" && v != "":
					// MinIO takes the conditional PUT over a delete marker: a new copy, the
					// current version again.
					v1 = v
				default:
					t.Fatalf("%s: PutVersion again = %v, %q; want existing, version %s", what, created, v, v1)
				}
			}
			forged := []byte("Subject: forged\r\n\r\nnot what was archived\r\n")
			forgeVersion(t, srv, s.Bucket(), sum, forged, true)
			check("newer version with its own checksum")
			forgeVersion(t, srv, s.Bucket(), sum, bytes.Repeat([]byte{'x'}, len(data)), false)
			check("newer version of the same size without checksum")
			if err := rawClient(t, srv).RemoveObject(ctx(t), s.Bucket(), blob.Key(sum), minio.RemoveObjectOptions{}); err != nil {
				t.Fatal(err)
			}
			check("delete marker")
			// A missing version is not found; so is a delete marker's and a malformed version id
			// (a row's blob_version pointed there), never a store that cannot be read.
			if _, err := s.GetVersion(ctx(t), otherSum, v1); !errors.Is(err, blob.ErrNotFound) {
				t.Fatalf("GetVersion of another key's version = %v, want ErrNotFound", err)
			}
			for o := range rawClient(t, srv).ListObjects(ctx(t), s.Bucket(), minio.ListObjectsOptions{Prefix: blob.Key(sum), WithVersions: true}) {
				if o.Err == nil && o.IsDeleteMarker {
					if _, err := s.GetVersion(ctx(t), sum, o.VersionID); !errors.Is(err, blob.ErrNotFound) {
						t.Fatalf("GetVersion of a delete marker = %v, want ErrNotFound", err)
					}
				}
			}
			if _, err := s.GetVersion(ctx(t), sum, "no-such-version"); !errors.Is(err, blob.ErrNotFound) {
				t.Fatalf("GetVersion of a malformed version id = %v, want ErrNotFound", err)
			}
		})
	}
}

func readAllClose(rc interface {
	Read([]byte) (int, error)
	Close() error
}) ([]byte, error) {
	defer rc.Close()
	var b bytes.Buffer
	_, err := b.ReadFrom(rc)
	return b.Bytes(), err
}

// The service refuses a bucket whose configuration does not protect the evidence: a default
// retention other than configured, a lifecycle rule that expires objects or versions.
func TestCheckBucketConfig(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			srv := testenv.SharedS3(t, kind)
			c := rawClient(t, srv)
			newBucket := func(name string) string {
				b := testenv.Bucket(name)
				if err := c.MakeBucket(ctx(t), b, minio.MakeBucketOptions{ObjectLocking: true}); err != nil {
					t.Fatal(err)
				}
				return b
			}
			open := func(bucket string, edit func(*s3store.Config)) error {
				cfg := config(srv, bucket)
				cfg.CreateBucket = false
				if edit != nil {
					edit(&cfg)
				}
				_, err := s3store.New(ctx(t), cfg)
				return err
			}
			day := func(c *s3store.Config) { c.Retention = 24 * time.Hour }

			// Default retention: none is fine; another mode or period is refused.
			b := newBucket("default")
			if err := open(b, nil); err != nil {
				t.Fatalf("bucket without default retention: %v", err)
			}
			gov, one, days := minio.Governance, uint(1), minio.Days
			if err := c.SetObjectLockConfig(ctx(t), b, &gov, &one, &days); err != nil {
				t.Fatal(err)
			}
			err := open(b, day)
			if !errors.Is(err, s3store.ErrBucketConfig) || !strings.Contains(err.Error(), "GOVERNANCE") {
				t.Fatalf("default retention GOVERNANCE 1 day, configured COMPLIANCE: %v", err)
			}
			comp := minio.Compliance
			if err := c.SetObjectLockConfig(ctx(t), b, &comp, &one, &days); err != nil {
				t.Fatal(err)
			}
			if err := open(b, nil); !errors.Is(err, s3store.ErrBucketConfig) {
				t.Fatalf("default retention 1 day, configured %v: %v", testRetention, err)
			}
			if err := open(b, day); err != nil {
				t.Fatalf("default retention as configured: %v", err)
			}

			// Lifecycle: a rule that expires is refused; versitygw implements none.
			b = newBucket("lifecycle")
			for _, r := range []lifecycle.Rule{
				{ID: "current", Status: "Enabled", Expiration: lifecycle.Expiration{Days: 30}, RuleFilter: lifecycle.Filter{Prefix: "sha256/"}},
				{ID: "noncurrent", Status: "Enabled", NoncurrentVersionExpiration: lifecycle.NoncurrentVersionExpiration{NoncurrentDays: 1}},
			} {
				lc := lifecycle.NewConfiguration()
				lc.Rules = []lifecycle.Rule{r}
				if err := c.SetBucketLifecycle(ctx(t), b, lc); err != nil {
					if minio.ToErrorResponse(err).Code == "NotImplemented" {
						t.Logf("%s implements no lifecycle: nothing can expire", kind)
						if err := open(b, nil); err != nil {
							t.Fatal(err)
						}
						break
					}
					t.Fatal(err)
				}
				err := open(b, nil)
				if !errors.Is(err, s3store.ErrBucketConfig) || !strings.Contains(err.Error(), r.ID) {
					t.Fatalf("lifecycle rule %s: %v", r.ID, err)
				}
				t.Logf("refused: %v", err)
			}
			if kind == testenv.MinIO {
				// A rule that removes expired delete markers only is harmless.
				lc := lifecycle.NewConfiguration()
				lc.Rules = []lifecycle.Rule{{ID: "markers", Status: "Enabled", Expiration: lifecycle.Expiration{DeleteMarker: true}}}
				if err := c.SetBucketLifecycle(ctx(t), b, lc); err != nil {
					t.Fatal(err)
				}
				if err := open(b, nil); err != nil {
					t.Fatalf("lifecycle removing expired delete markers: %v", err)
				}
			}
		})
	}
}

// AuditWalk over many pages, with delete markers and newer versions scattered among intact
// keys: every key with a version is listed once and exactly the hidden ones are named, whatever
// order the server lists a page's delete markers and versions in.
func TestAuditWalkPages(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			s, srv := newStore(t, kind, nil)
			s.SetListPageSize(3)
			c := rawClient(t, srv)
			want := map[[32]byte]bool{}
			shadowed := map[[32]byte]bool{}
			for i := range 20 {
				data, sum := blobtest.Data(uint64(700+i), 50)
				if _, err := s.Put(ctx(t), sum, data); err != nil {
					t.Fatal(err)
				}
				want[sum] = true
				switch i % 5 {
				case 1:
					if err := c.RemoveObject(ctx(t), s.Bucket(), blob.Key(sum), minio.RemoveObjectOptions{}); err != nil {
						t.Fatal(err)
					}
					shadowed[sum] = true
				case 3:
					forgeVersion(t, srv, s.Bucket(), sum, []byte("forged"), true)
					shadowed[sum] = true
				case 4:
					if i > 4 {
						break
					}
					// More delete markers than a key's versions are kept: the walk holds the oldest and
					// the current one, and still names the key once.
					for range 110 {
						if err := c.RemoveObject(ctx(t), s.Bucket(), blob.Key(sum), minio.RemoveObjectOptions{}); err != nil {
							t.Fatal(err)
						}
					}
					shadowed[sum] = true
				}
			}
			objs, found := auditWalk(t, s)
			if len(objs) != len(want) {
				t.Fatalf("AuditWalk listed %d keys, want %d", len(objs), len(want))
			}
			got := map[[32]byte]bool{}
			for _, a := range found {
				if a.Kind != blob.AnomalyShadowed || got[a.SHA256] {
					t.Fatalf("unexpected anomaly %v", a)
				}
				got[a.SHA256] = true
			}
			if len(got) != len(shadowed) {
				t.Fatalf("%d keys named shadowed, want %d", len(got), len(shadowed))
			}
			for k := range shadowed {
				if !got[k] {
					t.Fatalf("%x not named", k[:8])
				}
			}
		})
	}
}

package s3store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/pecarchive/pecarchive/internal/testenv"
	"github.com/pecarchive/pecarchive/services/archive/blob"
	"github.com/pecarchive/pecarchive/services/archive/blob/blobtest"
	"github.com/pecarchive/pecarchive/services/archive/blob/s3store"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.CloseShared()
	os.Exit(code)
}

var kinds = []string{testenv.VersityGW, testenv.MinIO}

const testRetention = time.Hour

func config(srv *testenv.S3Server, bucket string) s3store.Config {
	return s3store.Config{
		Endpoint:     srv.Endpoint,
		AccessKey:    srv.AccessKey,
		SecretKey:    srv.SecretKey,
		Region:       srv.Region,
		Bucket:       bucket,
		Retention:    testRetention,
		CreateBucket: true,
	}
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

// newStore makes a store on a new bucket of the shared server of kind.
func newStore(t testing.TB, kind string, edit func(*s3store.Config)) (*s3store.Store, *testenv.S3Server) {
	t.Helper()
	srv := testenv.SharedS3(t, kind)
	cfg := config(srv, testenv.Bucket(kind))
	if edit != nil {
		edit(&cfg)
	}
	s, err := s3store.New(ctx(t), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s, srv
}

// rawClient is a plain minio client on srv, to act behind the store's back.
func rawClient(t testing.TB, srv *testenv.S3Server) *minio.Client {
	c, err := minio.New(srv.Endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(srv.AccessKey, srv.SecretKey, ""),
		Region: srv.Region,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// putRaw writes data under sum's key with a correct SHA-256 checksum of data, no retention.
func putRaw(t *testing.T, srv *testenv.S3Server, bucket string, sum [32]byte, data []byte) {
	t.Helper()
	ds := sha256.Sum256(data)
	core := minio.Core{Client: rawClient(t, srv)}
	_, err := core.PutObject(ctx(t), bucket, blob.Key(sum), bytes.NewReader(data), int64(len(data)), "",
		hex.EncodeToString(ds[:]), minio.PutObjectOptions{
			DisableContentSha256: true,
			UserMetadata:         map[string]string{"x-amz-checksum-sha256": base64.StdEncoding.EncodeToString(ds[:])},
		})
	if err != nil {
		t.Fatalf("raw put: %v", err)
	}
}

func TestConformance(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			srv := testenv.SharedS3(t, kind)
			opts := &blobtest.Options{
				Modes:     []string{blob.ModeCompliance},
				Retention: testRetention,
				PutRaw: func(t *testing.T, s blob.Store, sum [32]byte, data []byte) {
					putRaw(t, srv, s.(*s3store.Store).Bucket(), sum, data)
				},
			}
			if kind == testenv.VersityGW {
				// versitygw's posix backend keeps the current version as a plain file.
				opts.Corrupt = func(t *testing.T, s blob.Store, sum [32]byte) {
					path := filepath.Join(srv.DataDir, s.(*s3store.Store).Bucket(), filepath.FromSlash(blob.Key(sum)))
					b, err := os.ReadFile(path)
					if err != nil {
						t.Fatalf("corrupt: %v", err)
					}
					b[len(b)/2] ^= 0x01
					if err := os.WriteFile(path, b, 0o644); err != nil {
						t.Fatalf("corrupt: %v", err)
					}
				}
			}
			blobtest.Run(t, func(t *testing.T) blob.Store {
				s, _ := newStore(t, kind, nil)
				return s
			}, opts)
		})
	}
}

// The server, not only this package, enforces the lock: deleting the locked version, shortening
// its retention and bypassing governance are all refused under COMPLIANCE.
func TestObjectLockEnforced(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			s, srv := newStore(t, kind, nil)
			data, sum := blobtest.Data(1, 1000)
			if _, err := s.Put(ctx(t), sum, data); err != nil {
				t.Fatal(err)
			}
			c := rawClient(t, srv)
			key := blob.Key(sum)
			oi, err := c.StatObject(ctx(t), s.Bucket(), key, minio.StatObjectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if oi.VersionID == "" {
				t.Fatal("no version id: bucket not versioned")
			}
			if err := c.RemoveObject(ctx(t), s.Bucket(), key, minio.RemoveObjectOptions{VersionID: oi.VersionID}); err == nil {
				t.Fatal("DELETE of the locked version succeeded")
			}
			if err := c.RemoveObject(ctx(t), s.Bucket(), key, minio.RemoveObjectOptions{VersionID: oi.VersionID, GovernanceBypass: true}); err == nil {
				t.Fatal("DELETE with governance bypass succeeded under COMPLIANCE")
			}
			short := time.Now().Add(time.Minute)
			for _, m := range []minio.RetentionMode{minio.Compliance, minio.Governance} {
				err := c.PutObjectRetention(ctx(t), s.Bucket(), key, minio.PutObjectRetentionOptions{
					Mode: &m, RetainUntilDate: &short, VersionID: oi.VersionID, GovernanceBypass: true,
				})
				if err == nil {
					t.Fatalf("shortening retention (%s, bypass) succeeded", m)
				}
			}
			// A DELETE without version only adds a delete marker; the locked version stays, and
			// Put writes the object again (versitygw answers the conditional PUT with 412 here).
			if err := c.RemoveObject(ctx(t), s.Bucket(), key, minio.RemoveObjectOptions{}); err != nil {
				t.Fatalf("delete marker: %v", err)
			}
			if _, err := c.StatObject(ctx(t), s.Bucket(), key, minio.StatObjectOptions{VersionID: oi.VersionID}); err != nil {
				t.Fatalf("locked version gone after delete marker: %v", err)
			}
			// The store reads the retained version (see TestShadowedVersions; versitygw sends no
			// retention headers for a version that is not the current one).
			if info, err := s.Stat(ctx(t), sum); err != nil || info.Size != int64(len(data)) ||
				(info.Mode != blob.ModeCompliance && kind != testenv.VersityGW) {
				t.Fatalf("Stat behind a delete marker = %+v, %v; want the retained version", info, err)
			}
			// Put accepts the retained version (versitygw refuses the conditional PUT with 412)
			// or writes a new version over the marker (MinIO accepts it).
			if _, err := s.Put(ctx(t), sum, data); err != nil {
				t.Fatalf("Put behind a delete marker: %v", err)
			}
			got, err := blobtest.ReadAll(t, s, sum)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("Get after re-put: %v", err)
			}
		})
	}
}

// The server verifies the checksums this package sends: a wrong x-amz-checksum-sha256 or a wrong
// signed payload hash is refused and nothing is stored.
func TestServerVerifiesChecksum(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			s, srv := newStore(t, kind, nil)
			core := minio.Core{Client: rawClient(t, srv)}
			data, sum := blobtest.Data(2, 4096)
			bad := sha256.Sum256([]byte("something else"))
			for name, opts := range map[string]struct{ checksum, payload [32]byte }{
				"checksum": {bad, sum},
				"payload":  {sum, bad},
			} {
				_, err := core.PutObject(ctx(t), s.Bucket(), blob.Key(sum), bytes.NewReader(data), int64(len(data)), "",
					hex.EncodeToString(opts.payload[:]), minio.PutObjectOptions{
						DisableContentSha256: true,
						UserMetadata:         map[string]string{"x-amz-checksum-sha256": base64.StdEncoding.EncodeToString(opts.checksum[:])},
					})
				if err == nil {
					t.Fatalf("PUT with a wrong %s sha256 was accepted", name)
				}
				t.Logf("wrong %s: %v", name, err)
			}
			if _, err := s.Stat(ctx(t), sum); !errors.Is(err, blob.ErrNotFound) {
				t.Fatalf("after refused PUTs, Stat = %v, want ErrNotFound", err)
			}
			// The stored checksum is the SHA-256 we sent.
			if _, err := s.Put(ctx(t), sum, data); err != nil {
				t.Fatal(err)
			}
			oi, err := core.StatObject(ctx(t), s.Bucket(), blob.Key(sum), minio.StatObjectOptions{Checksum: true})
			if err != nil {
				t.Fatal(err)
			}
			if want := base64.StdEncoding.EncodeToString(sum[:]); oi.ChecksumSHA256 != want {
				t.Fatalf("stored checksum %q, want %q", oi.ChecksumSHA256, want)
			}
		})
	}
}

func TestCheckRefusesBucketWithoutLock(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			srv := testenv.SharedS3(t, kind)
			bucket := testenv.Bucket("nolock")
			if err := rawClient(t, srv).MakeBucket(ctx(t), bucket, minio.MakeBucketOptions{}); err != nil {
				t.Fatal(err)
			}
			cfg := config(srv, bucket)
			_, err := s3store.New(ctx(t), cfg)
			if !errors.Is(err, blob.ErrNoObjectLock) {
				t.Fatalf("New on a bucket without Object Lock = %v, want ErrNoObjectLock", err)
			}
			if !strings.Contains(err.Error(), bucket) || !strings.Contains(err.Error(), "AllowNoObjectLock") {
				t.Fatalf("message does not say what to do: %v", err)
			}
			cfg.AllowNoObjectLock = true
			s, err := s3store.New(ctx(t), cfg)
			if err != nil {
				t.Fatalf("New with AllowNoObjectLock: %v", err)
			}
			if s.ObjectLock() {
				t.Fatal("ObjectLock() = true")
			}
			data, sum := blobtest.Data(3, 100)
			if created, err := s.Put(ctx(t), sum, data); err != nil || !created {
				t.Fatalf("Put = %v, %v", created, err)
			}
			if created, err := s.Put(ctx(t), sum, data); err != nil || created {
				t.Fatalf("second Put = %v, %v", created, err)
			}
			info, err := s.Stat(ctx(t), sum)
			if err != nil || info.Mode != "" || !info.RetainUntil.IsZero() {
				t.Fatalf("Stat = %+v, %v; want no retention", info, err)
			}
			if err := s.SetLegalHold(ctx(t), sum, true); !errors.Is(err, blob.ErrNoObjectLock) {
				t.Fatalf("SetLegalHold without Object Lock = %v, want ErrNoObjectLock", err)
			}
		})
	}
}

func TestMissingBucket(t *testing.T) {
	srv := testenv.SharedS3(t, testenv.VersityGW)
	cfg := config(srv, testenv.Bucket("missing"))
	cfg.CreateBucket = false
	_, err := s3store.New(ctx(t), cfg)
	if err == nil || errors.Is(err, blob.ErrNoObjectLock) || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("New on a missing bucket = %v", err)
	}
}

func TestModesAndDefaults(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			data, sum := blobtest.Data(4, 100)
			s, _ := newStore(t, kind, func(c *s3store.Config) { c.Retention = 0 })
			before := time.Now()
			if _, err := s.Put(ctx(t), sum, data); err != nil {
				t.Fatal(err)
			}
			info, err := s.Stat(ctx(t), sum)
			if err != nil {
				t.Fatal(err)
			}
			want := before.Add(s3store.DefaultRetention)
			if info.Mode != blob.ModeCompliance || info.RetainUntil.Before(want.Add(-time.Second)) || info.RetainUntil.After(want.Add(time.Minute)) {
				t.Fatalf("default retention: %+v, want COMPLIANCE until about %v", info, want)
			}
			g, _ := newStore(t, kind, func(c *s3store.Config) { c.Mode = "GOVERNANCE" })
			if _, err := g.Put(ctx(t), sum, data); err != nil {
				t.Fatal(err)
			}
			if info, err := g.Stat(ctx(t), sum); err != nil || info.Mode != blob.ModeGovernance {
				t.Fatalf("governance Stat = %+v, %v", info, err)
			}
			if _, err := s3store.New(ctx(t), s3store.Config{Endpoint: "127.0.0.1:1", Bucket: "b", Mode: "LAX"}); err == nil {
				t.Fatal("unknown mode accepted")
			}
		})
	}
}

// An identical object written by another tool without a SHA-256 checksum or retention is
// verified by reading it, accepted, and given the retention.
func TestExistingWithoutChecksum(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			s, srv := newStore(t, kind, nil)
			c := rawClient(t, srv)
			data, sum := blobtest.Data(5, 3000)
			if _, err := c.PutObject(ctx(t), s.Bucket(), blob.Key(sum), bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{}); err != nil {
				t.Fatal(err)
			}
			if created, err := s.Put(ctx(t), sum, data); err != nil || created {
				t.Fatalf("Put over identical raw object = %v, %v; want existing", created, err)
			}
			info, err := s.Stat(ctx(t), sum)
			if err != nil || info.Mode != blob.ModeCompliance || info.RetainUntil.Before(time.Now()) {
				t.Fatalf("Stat = %+v, %v; want retention added", info, err)
			}
			other, _ := blobtest.Data(6, 3000)
			_, sum2 := blobtest.Data(7, 3000)
			if _, err := c.PutObject(ctx(t), s.Bucket(), blob.Key(sum2), bytes.NewReader(other), int64(len(other)), minio.PutObjectOptions{}); err != nil {
				t.Fatal(err)
			}
			data2, _ := blobtest.Data(7, 3000)
			if _, err := s.Put(ctx(t), sum2, data2); !errors.Is(err, blob.ErrIntegrity) {
				t.Fatalf("Put over different raw object = %v, want ErrIntegrity", err)
			}
		})
	}
}

// With S3 down every operation fails fast with ErrUnavailable, and works again once it is back.
func TestUnavailable(t *testing.T) {
	srv := testenv.StartVersityGW(t) // own server: this test stops it
	s, err := s3store.New(ctx(t), config(srv, testenv.Bucket("down")))
	if err != nil {
		t.Fatal(err)
	}
	data, sum := blobtest.Data(8, 1000)
	if _, err := s.Put(ctx(t), sum, data); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	data2, sum2 := blobtest.Data(9, 1000)
	start := time.Now()
	_, err = s.Put(ctx(t), sum2, data2)
	if !errors.Is(err, blob.ErrUnavailable) {
		t.Fatalf("Put with S3 down = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Put took %v to fail", d)
	}
	t.Logf("Put failed after %v: %v", time.Since(start), err)
	if _, err := s.Get(ctx(t), sum); !errors.Is(err, blob.ErrUnavailable) {
		t.Fatalf("Get with S3 down = %v", err)
	}
	if _, err := s.Stat(ctx(t), sum); !errors.Is(err, blob.ErrUnavailable) {
		t.Fatalf("Stat with S3 down = %v", err)
	}
	if err := s.Walk(ctx(t), func([32]byte) error { return nil }); !errors.Is(err, blob.ErrUnavailable) {
		t.Fatalf("Walk with S3 down = %v", err)
	}
	if err := s.Check(ctx(t)); !errors.Is(err, blob.ErrUnavailable) {
		t.Fatalf("Check with S3 down = %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if created, err := s.Put(ctx(t), sum2, data2); err != nil || !created {
		t.Fatalf("Put after restart = %v, %v", created, err)
	}
	if got, err := blobtest.ReadAll(t, s, sum); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get after restart: %v", err)
	}
}

func TestReadOnly(t *testing.T) {
	s, srv := newStore(t, testenv.VersityGW, nil)
	data, sum := blobtest.Data(10, 100)
	if _, err := s.Put(ctx(t), sum, data); err != nil {
		t.Fatal(err)
	}
	cfg := config(srv, s.Bucket())
	cfg.ReadOnly = true
	r, err := s3store.New(ctx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Put(ctx(t), sum, data); !errors.Is(err, blob.ErrReadOnly) {
		t.Fatalf("read-only Put = %v", err)
	}
	if err := r.SetLegalHold(ctx(t), sum, true); !errors.Is(err, blob.ErrReadOnly) {
		t.Fatalf("read-only SetLegalHold = %v", err)
	}
	if got, err := blobtest.ReadAll(t, r, sum); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read-only Get: %v", err)
	}
}

func TestStatBeforePut(t *testing.T) {
	srv := testenv.SharedS3(t, testenv.VersityGW)
	blobtest.Run(t, func(t *testing.T) blob.Store {
		s, _ := newStore(t, testenv.VersityGW, func(c *s3store.Config) { c.StatBeforePut = true })
		return s
	}, &blobtest.Options{
		Modes:     []string{blob.ModeCompliance},
		Retention: testRetention,
		PutRaw: func(t *testing.T, s blob.Store, sum [32]byte, data []byte) {
			putRaw(t, srv, s.(*s3store.Store).Bucket(), sum, data)
		},
	})
}

func TestWalkPages(t *testing.T) {
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			s, srv := newStore(t, kind, nil)
			s.SetListPageSize(7)
			want := map[[32]byte]bool{}
			for i := range 30 {
				data, sum := blobtest.Data(uint64(500+i), 10)
				if _, err := s.Put(ctx(t), sum, data); err != nil {
					t.Fatal(err)
				}
				want[sum] = true
			}
			// Foreign keys in the bucket are not objects of the store.
			c := rawClient(t, srv)
			for _, k := range []string{"README", "sha256/zz/not-a-sum", "sha256/00/" + strings.Repeat("0", 63)} {
				if _, err := c.PutObject(ctx(t), s.Bucket(), k, strings.NewReader("x"), 1, minio.PutObjectOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			got := 0
			err := s.Walk(ctx(t), func(sum [32]byte) error {
				if !want[sum] {
					t.Errorf("Walk listed %x", sum)
				}
				got++
				return nil
			})
			if err != nil || got != len(want) {
				t.Fatalf("Walk = %v after %d objects, want %d", err, got, len(want))
			}
		})
	}
}

func TestEndpointForms(t *testing.T) {
	srv := testenv.SharedS3(t, testenv.VersityGW)
	cfg := config(srv, testenv.Bucket("endpoint"))
	cfg.Endpoint = "http://" + srv.Endpoint + "/"
	if _, err := s3store.New(ctx(t), cfg); err != nil {
		t.Fatalf("http:// endpoint: %v", err)
	}
	cfg.Secure = true
	if _, err := s3store.New(ctx(t), cfg); err == nil {
		t.Fatal("http:// endpoint with Secure accepted")
	}
	cfg.Secure = false
	cfg.Endpoint = srv.Endpoint + "/bucket"
	if _, err := s3store.New(ctx(t), cfg); err == nil {
		t.Fatal("endpoint with a path accepted")
	}
}

// A hung server (accepting connections, never answering) makes calls fail after the configured
// timeout, not hang.
func TestHungServer(t *testing.T) {
	srv := testenv.StartVersityGW(t)
	cfg := config(srv, testenv.Bucket("hung"))
	cfg.Timeout = 300 * time.Millisecond
	s, err := s3store.New(ctx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Pause(); err != nil {
		t.Skip(err)
	}
	data, sum := blobtest.Data(11, 1000)
	start := time.Now()
	_, err = s.Put(ctx(t), sum, data)
	if !errors.Is(err, blob.ErrUnavailable) {
		t.Fatalf("Put to a hung server = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Put took %v to fail", d)
	}
	t.Logf("Put failed after %v", time.Since(start))
	if err := srv.Resume(); err != nil {
		t.Fatal(err)
	}
	// The timed-out PUT may still be carried out by the server once it runs again, so the
	// object may or may not exist now: either way Put succeeds.
	if _, err := s.Put(ctx(t), sum, data); err != nil {
		t.Fatalf("Put after resume: %v", err)
	}
	if got, err := blobtest.ReadAll(t, s, sum); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get after resume: %v", err)
	}
}

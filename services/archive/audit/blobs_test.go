package audit_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"os"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/pecarchive/pecarchive/internal/testenv"
	"github.com/pecarchive/pecarchive/pec"
	"github.com/pecarchive/pecarchive/services/archive"
	"github.com/pecarchive/pecarchive/services/archive/audit"
	"github.com/pecarchive/pecarchive/services/archive/blob"
	"github.com/pecarchive/pecarchive/services/archive/blob/fsstore"
	"github.com/pecarchive/pecarchive/services/archive/blob/s3store"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.CloseShared()
	os.Exit(code)
}

// s3Env is newEnv on a bucket of its own on the shared S3 server of kind, with a client holding
// the service's own credentials, as an insider would use them.
func s3Env(t *testing.T, kind, bucket string) (*env, *s3store.Store, *minio.Client) {
	t.Helper()
	srv := testenv.SharedS3(t, kind)
	st, err := s3store.New(context.Background(), s3store.Config{Endpoint: srv.Endpoint, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey,
		Region: srv.Region, Bucket: testenv.Bucket(bucket + "-" + kind), Retention: time.Hour, CreateBucket: true})
	if err != nil {
		t.Fatal(err)
	}
	c, err := minio.New(srv.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(srv.AccessKey, srv.SecretKey, ""), Region: srv.Region})
	if err != nil {
		t.Fatal(err)
	}
	return newEnv(t, st), st, c
}

// forgeVersion writes data as a newer version of sum's object, under COMPLIANCE retention (so that
// nobody can remove it either) and with its own stored SHA-256, and returns the version's id.
func forgeVersion(t *testing.T, c *minio.Client, bucket string, sum [32]byte, data []byte) string {
	t.Helper()
	ds := sha256.Sum256(data)
	info, err := minio.Core{Client: c}.PutObject(context.Background(), bucket, blob.Key(sum), bytes.NewReader(data), int64(len(data)), "",
		hex.EncodeToString(ds[:]), minio.PutObjectOptions{DisableContentSha256: true, Mode: minio.Compliance,
			RetainUntilDate: time.Now().Add(time.Hour).UTC().Truncate(time.Second),
			UserMetadata:    map[string]string{"x-amz-checksum-sha256": base64.StdEncoding.EncodeToString(ds[:])}})
	if err != nil || info.VersionID == "" {
		t.Fatalf("forged version: %q, %v", info.VersionID, err)
	}
	return info.VersionID
}

// Attack 4: with the service's own S3 credentials, an insider puts a newer version over a stored
// receipt (with COMPLIANCE retention, so that it cannot be removed either) and a delete marker
// over another. The archive records the version it wrote: the genuine bytes are still served and
// storing them again succeeds, and the audit names both keys blob-shadowed, with no other
// finding. Before, reads took the current version: the audit said blob-altered and
// blob-missing, and storing again failed with DataLoss.
func TestAuditShadowedS3Versions(t *testing.T) {
	for _, kind := range []string{testenv.VersityGW, testenv.MinIO} {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			e, st, c := s3Env(t, kind, "audit")
			acc, delA := e.recs["acc"], e.recs["delA"]
			if acc.BlobVersion == "" || delA.BlobVersion == "" {
				t.Fatalf("no version recorded: %q, %q", acc.BlobVersion, delA.BlobVersion)
			}
			forgeVersion(t, c, st.Bucket(), acc.SHA256, bytes.Replace(e.raw["acc"], []byte("accettazione"), []byte("ACCETTAZIONE"), 1))
			if err := c.RemoveObject(ctx, st.Bucket(), blob.Key(delA.SHA256), minio.RemoveObjectOptions{}); err != nil {
				t.Fatalf("delete marker: %v", err)
			}

			// The genuine bytes are still served, and the archive stores them again.
			for _, name := range []string{"acc", "delA"} {
				rc, err := e.rd.Open(ctx, e.recs[name].SHA256)
				if err != nil {
					t.Fatalf("%s: OpenBlob: %v", name, err)
				}
				got, err := io.ReadAll(rc)
				rc.Close()
				if err != nil || !bytes.Equal(got, e.raw[name]) {
					t.Fatalf("%s: OpenBlob read %d bytes, %v; want the genuine bytes", name, len(got), err)
				}
			}
			if _, err := e.a.Store(ctx, e.raw["acc"], archive.Source{Path: "/again/acc.eml"}); err != nil {
				t.Fatalf("storing the shadowed receipt again: %v", err)
			}
			// The postacert.eml carried by the receipt behind the delete marker still reads.
			if rc, err := e.rd.Open(ctx, delA.Postacert.SHA256); err != nil {
				t.Fatalf("postacert of the hidden receipt: %v", err)
			} else {
				rc.Close()
			}

			rep := e.audit()
			for _, r := range []archive.Record{acc, delA} {
				if !finds(rep, audit.BlobShadowed, r.SHA256, -1) {
					t.Errorf("%x: not named %s", r.SHA256[:8], audit.BlobShadowed)
				}
			}
			if n := rep.Count(audit.BlobShadowed); n != len(rep.Findings) || n != 2 {
				t.Errorf("%d findings, %d of them blob-shadowed; want exactly the two keys", len(rep.Findings), n)
			}
		})
	}
}

// TestAuditBlobVersionPointedElsewhere: with the service's S3 credentials and write access to
// PostgreSQL, an insider writes a version of their own over a receipt's object and points its
// row's blob_version at it, points another row's at a delete marker they put over its object,
// and a third's at a version that does not exist. Reads by those versions fail (never return
// other bytes), and the audit names each row's blob_version, whose object still holds the
// genuine bytes: not a missing or altered blob, and not a store it cannot read (a delete
// marker's version cannot be read: the audit stopped as if the store were down).
func TestAuditBlobVersionPointedElsewhere(t *testing.T) {
	for _, kind := range []string{testenv.VersityGW, testenv.MinIO} {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			e, st, c := s3Env(t, kind, "version")
			acc, delA, orig := e.recs["acc"], e.recs["delA"], e.recs["orig"]
			forged := forgeVersion(t, c, st.Bucket(), acc.SHA256, bytes.Replace(e.raw["acc"], []byte("accettazione"), []byte("ACCETTAZIONE"), 1))
			if err := c.RemoveObject(ctx, st.Bucket(), blob.Key(delA.SHA256), minio.RemoveObjectOptions{}); err != nil {
				t.Fatalf("delete marker: %v", err)
			}
			marker := ""
			for o := range c.ListObjects(ctx, st.Bucket(), minio.ListObjectsOptions{Prefix: blob.Key(delA.SHA256), WithVersions: true}) {
				if o.Err != nil {
					t.Fatal(o.Err)
				}
				if o.IsDeleteMarker {
					marker = o.VersionID
				}
			}
			if marker == "" {
				t.Fatal("no delete marker listed")
			}
			for sum, v := range map[[32]byte]string{acc.SHA256: forged, delA.SHA256: marker, orig.SHA256: "no-such-version"} {
				e.insider(`UPDATE messages SET blob_version = $1 WHERE sha256 = $2`, v, sum[:])
			}
			for _, name := range []string{"acc", "delA", "orig"} {
				if rc, err := e.rd.Open(ctx, e.recs[name].SHA256); err == nil {
					got, err := io.ReadAll(rc)
					rc.Close()
					if err == nil && !bytes.Equal(got, e.raw[name]) {
						t.Fatalf("%s: read other bytes than the genuine", name)
					}
				}
			}

			rep := e.audit()
			for _, r := range []archive.Record{acc, delA, orig} {
				if !finds(rep, audit.RowAltered, r.SHA256, int64(r.LeafIndex)) || !named(rep, audit.RowAltered, "blob_version") {
					t.Errorf("%x: its blob_version is not named", r.SHA256[:8])
				}
				if finds(rep, audit.BlobMissing, r.SHA256, -1) || finds(rep, audit.BlobAltered, r.SHA256, -1) {
					t.Errorf("%x: its intact blob is named missing or altered", r.SHA256[:8])
				}
			}
		})
	}
}

// Attack 7 (filesystem half): a stored blob replaced by a symbolic link to a copy of its bytes
// outside the store. Reads refuse it and the audit names the link (blob-irregular) and the row
// whose blob it stands in for. Before, the read followed the link and the walk skipped it: the
// audit said OK.
func TestAuditSymlinkedBlob(t *testing.T) {
	ctx := context.Background()
	fs, err := fsstore.New(ctx, fsstore.Config{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, fs)
	acc := e.recs["acc"]
	outside := t.TempDir() + "/acc.eml"
	if err := os.WriteFile(outside, e.raw["acc"], 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(fs.Path(acc.SHA256)); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, fs.Path(acc.SHA256)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rd.Open(ctx, acc.SHA256); err == nil {
		t.Fatal("OpenBlob followed a symbolic link")
	}
	rep := e.audit()
	if !finds(rep, audit.BlobIrregular, acc.SHA256, -1) {
		t.Error("the symlinked blob is not named blob-irregular")
	}
	if !finds(rep, audit.BlobAltered, acc.SHA256, int64(acc.LeafIndex)) {
		t.Error("the row whose blob is a link is not named blob-altered")
	}
}

// --deep: every blob parsed and verified again as the archive does gives its row, for every kind
// stored (receipts, an envelope, the original, a postacert.eml extracted from its receipt, a
// receipt whose signature is broken); a row that the archive's parse and verification do not give
// from its blob, but that its leaf vouches for (an archive that parsed otherwise, here one whose
// parser refused daticert.xml files), is named row-not-from-blob, which the normal audit cannot
// see.
func TestAuditDeep(t *testing.T) {
	e := newEnv(t, nil)
	e.cfg.Deep = true
	rep := e.audit()
	if !rep.OK() || len(rep.Findings) != 0 {
		t.Fatalf("deep audit of an untouched archive: %v", rep.Findings)
	}
	if rep.Reparsed != rep.Rows || rep.Rows != 8 {
		t.Fatalf("reparsed %d of %d rows, want all 8", rep.Reparsed, rep.Rows)
	}

	odd := newEnvWith(t, nil, func(c *archive.Config) { c.ParseOptions = &pec.Options{Limits: pec.Limits{MaxXMLSize: 64}} })
	if rep := odd.audit(); !rep.OK() {
		t.Fatalf("the normal audit of rows that match their leaves: %v", rep.Findings)
	}
	odd.cfg.Deep = true
	rep = odd.audit()
	acc := odd.recs["acc"]
	if !finds(rep, audit.RowNotFromBlob, acc.SHA256, int64(acc.LeafIndex)) || !named(rep, audit.RowNotFromBlob, "problems") {
		t.Fatalf("the acceptance parsed otherwise is not named")
	}
	if finds(rep, audit.RowNotFromBlob, odd.recs["orig"].SHA256, -1) {
		t.Errorf("the original, which has no daticert.xml, is named")
	}
}

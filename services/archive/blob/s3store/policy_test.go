package s3store_test

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/lifecycle"

	"github.com/pecarchive/pecarchive/internal/testenv"
	"github.com/pecarchive/pecarchive/services/archive/blob"
	"github.com/pecarchive/pecarchive/services/archive/blob/blobtest"
	"github.com/pecarchive/pecarchive/services/archive/blob/s3store"
)

// policyDoc is the documentation whose JSON block is the service's policy.
const policyDoc = "../../../../docs/s3-policy.md"

// documentedPolicy returns the policy of docs/s3-policy.md for bucket.
func documentedPolicy(t *testing.T, bucket string) string {
	t.Helper()
	b, err := os.ReadFile(policyDoc)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```json\n(.*?)```").FindSubmatch(b)
	if m == nil {
		t.Fatalf("%s has no json block", policyDoc)
	}
	return strings.ReplaceAll(string(m[1]), "pecarchive-evidence", bucket)
}

// The documented least-privilege policy, enforced by MinIO on temporary credentials limited by
// it (STS AssumeRole with an inline session policy): the store works with them, and every way
// of deleting evidence or changing the bucket's protection is refused.
func TestLeastPrivilegePolicy(t *testing.T) {
	srv := testenv.SharedS3(t, testenv.MinIO)
	root := rawClient(t, srv)
	bucket := testenv.Bucket("policy")
	if err := root.MakeBucket(ctx(t), bucket, minio.MakeBucketOptions{ObjectLocking: true, Region: srv.Region}); err != nil {
		t.Fatal(err)
	}
	sts, err := credentials.NewSTSAssumeRole("http://"+srv.Endpoint, credentials.STSAssumeRoleOptions{
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, Location: srv.Region,
		Policy: documentedPolicy(t, bucket), DurationSeconds: 3600,
	})
	if err != nil {
		t.Fatal(err)
	}
	v, err := sts.GetWithContext(nil)
	if err != nil {
		t.Fatalf("AssumeRole with the documented policy: %v", err)
	}
	cfg := config(srv, bucket)
	cfg.AccessKey, cfg.SecretKey, cfg.SessionToken = v.AccessKeyID, v.SecretAccessKey, v.SessionToken
	s, err := s3store.New(ctx(t), cfg)
	if err != nil {
		t.Fatalf("New with the documented policy: %v", err)
	}

	// Everything the archive and the audit do.
	data, sum := blobtest.Data(40, 3000)
	created, version, err := s.PutVersion(ctx(t), sum, data)
	if err != nil || !created || version == "" {
		t.Fatalf("PutVersion = %v, %q, %v", created, version, err)
	}
	if created, err := s.Put(ctx(t), sum, data); err != nil || created {
		t.Fatalf("Put again = %v, %v", created, err)
	}
	if got, err := blobtest.ReadAll(t, s, sum); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get: %v", err)
	}
	rc, err := s.GetVersion(ctx(t), sum, version)
	if err != nil {
		t.Fatalf("GetVersion: %v", err)
	}
	if got, err := readAllClose(rc); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("GetVersion: %v", err)
	}
	if info, err := s.Stat(ctx(t), sum); err != nil || info.Mode != blob.ModeCompliance || info.RetainUntil.IsZero() {
		t.Fatalf("Stat = %+v, %v; want the retention visible", info, err)
	}
	for _, on := range []bool{true, false} {
		if err := s.SetLegalHold(ctx(t), sum, on); err != nil {
			t.Fatalf("SetLegalHold(%v): %v", on, err)
		}
	}
	if err := s.Walk(ctx(t), func([32]byte) error { return nil }); err != nil {
		t.Fatalf("Walk: %v", err)
	}
	// A newer version cannot be refused by a policy (see the documentation): the store keeps
	// reading the retained one and the audit walk names it.
	forgeWith := s.Client()
	if _, err := forgeWith.PutObject(ctx(t), bucket, blob.Key(sum), strings.NewReader("forged"), 6, minio.PutObjectOptions{}); err != nil {
		t.Fatalf("a newer version with the service's credentials: %v", err)
	}
	if got, err := blobtest.ReadAll(t, s, sum); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get behind a newer version: %v", err)
	}
	if _, found := auditWalk(t, s); len(found) != 1 || found[0].Kind != blob.AnomalyShadowed {
		t.Fatalf("AuditWalk found %v", found)
	}

	// Everything else is refused.
	c := s.Client()
	key := blob.Key(sum)
	short := time.Now().Add(time.Minute)
	comp, one, days := minio.Compliance, uint(1), minio.Days
	lc := lifecycle.NewConfiguration()
	lc.Rules = []lifecycle.Rule{{ID: "expire", Status: "Enabled", Expiration: lifecycle.Expiration{Days: 1}}}
	for what, call := range map[string]func() error{
		"delete marker": func() error { return c.RemoveObject(ctx(t), bucket, key, minio.RemoveObjectOptions{}) },
		"delete version": func() error {
			return c.RemoveObject(ctx(t), bucket, key, minio.RemoveObjectOptions{VersionID: version})
		},
		"delete with governance bypass": func() error {
			return c.RemoveObject(ctx(t), bucket, key, minio.RemoveObjectOptions{VersionID: version, GovernanceBypass: true})
		},
		"shorter retention": func() error {
			return c.PutObjectRetention(ctx(t), bucket, key, minio.PutObjectRetentionOptions{
				Mode: &comp, RetainUntilDate: &short, VersionID: version, GovernanceBypass: true})
		},
		"bucket policy":          func() error { return c.SetBucketPolicy(ctx(t), bucket, `{"Version":"2012-10-17","Statement":[]}`) },
		"lifecycle":              func() error { return c.SetBucketLifecycle(ctx(t), bucket, lc) },
		"lock configuration":     func() error { return c.SetObjectLockConfig(ctx(t), bucket, &comp, &one, &days) },
		"versioning suspended":   func() error { return c.SuspendVersioning(ctx(t), bucket) },
		"bucket deleted":         func() error { return c.RemoveBucket(ctx(t), bucket) },
		"another bucket created": func() error { return c.MakeBucket(ctx(t), testenv.Bucket("other"), minio.MakeBucketOptions{}) },
	} {
		err := call()
		code := minio.ToErrorResponse(err).Code
		switch {
		case err == nil:
			t.Errorf("%s: allowed", what)
		case what == "shorter retention":
			// Allowed by the policy (a PUT with retention needs s3:PutObjectRetention), refused
			// by the lock for everyone.
			t.Logf("%s: %v (%s)", what, err, code)
		case code != "AccessDenied":
			t.Errorf("%s: %v (%s), want AccessDenied", what, err, code)
		}
	}
	// The genuine version and the bucket's protection are as they were.
	if got, err := blobtest.ReadAll(t, s, sum); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get after the refused calls: %v", err)
	}
	if err := s.Check(ctx(t)); err != nil {
		t.Fatalf("Check after the refused calls: %v", err)
	}
}

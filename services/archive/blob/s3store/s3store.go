// Package s3store owns the S3 implementation of blob.Store: a bucket with Object Lock where every
// object is written once under its content address ("sha256/<hex[0:2]>/<hex>") with a
// server-checked SHA-256 and a retention date (COMPLIANCE by default, so nobody, root account
// included, can delete or shorten it before the date).
//
// Each PUT carries the SHA-256 twice, both verified by the server before it stores anything:
// as the signed payload hash (x-amz-content-sha256) and as the object's stored checksum
// (x-amz-checksum-sha256). A PUT is conditional (If-None-Match: *), so writing an existing object
// costs one refused request and one HEAD; an existing object is accepted only when its size and
// stored SHA-256 match (else blob.ErrIntegrity).
//
// Reads are verified: Get hashes the bytes and fails with blob.ErrIntegrity at EOF on mismatch.
// Stat reads retention and legal hold from the HEAD headers (x-amz-object-lock-*), which every
// tested server returns (versitygw's GetObjectRetention answer cannot be decoded by minio-go).
//
// # Versions
//
// A bucket with Object Lock keeps versions, and whoever may PUT can add a newer version of a key
// (even one with COMPLIANCE retention) or a delete marker: the retained version is untouched but
// is no longer the current one. So PutVersion reports the ID of the version that holds the bytes
// (the archive records it), GetVersion reads that version, and Get, Stat and SetLegalHold do not
// trust the current version: when it is missing (a delete marker) or its stored SHA-256 is not the
// key's, they use the newest version whose stored SHA-256 is (Put accepts it as existing too).
// AuditWalk names every key whose current version hides its bytes (blob.AnomalyShadowed).
//
// # Bucket checks
//
// New and Check refuse a bucket that does not protect the evidence (ErrBucketConfig): without
// Object Lock (unless AllowNoObjectLock), with versioning not enabled, with a default retention
// other than the configured mode and period, or with a lifecycle rule that expires objects or
// versions. The least-privilege policy for the service's credentials is docs/s3-policy.md.
//
// Network and server failures wrap blob.ErrUnavailable. Timeouts are short and retries few, so a
// Store fails fast while S3 is down and works again as soon as it is back.
//
// versitygw v1.8.0 answers a HEAD of a version that is no longer the current one without the
// x-amz-object-lock-* headers: Stat then reports no retention for an object behind a newer
// version or a delete marker, although the server still enforces it.
//
// Durability is the server's: a 200 answer is taken as durable. Tested against versitygw (posix
// backend) and MinIO. MinIO syncs (O_DSYNC/fdatasync) before answering; versitygw v1.8.0's posix
// backend never fsyncs, so a power loss right after a PUT can lose the object there: use it for
// development and tests, not as the archive's storage. versitygw also closes connections after each request unless started with
// --keep-alive, which costs about a third of the PUT rate.
package s3store

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/pecarchive/pecarchive/services/archive/blob"
)

// Defaults.
const (
	DefaultRetention  = 87600 * time.Hour // 10 years
	DefaultRegion     = "us-east-1"
	DefaultTimeout    = 10 * time.Second
	DefaultMaxRetries = 2
	// MaxObjectSize is the largest object Put accepts: one single PUT (the S3 limit is 5 GiB).
	MaxObjectSize = 5 << 30
)

// Config configures a Store. Zero values mean the defaults.
type Config struct {
	Endpoint  string // host:port; a leading "https://" sets Secure, "http://" is dropped
	AccessKey string
	SecretKey string
	// SessionToken is set with temporary credentials (STS).
	SessionToken string
	Bucket       string
	Region       string // default "us-east-1"
	Secure       bool   // HTTPS

	// Retention of each new object from the time of its Put (default 10 years).
	Retention time.Duration
	// Mode is the retention mode: "COMPLIANCE" (default) or "GOVERNANCE".
	Mode string
	// AllowNoObjectLock accepts a bucket without Object Lock (objects are then written with no
	// retention: a weaker mode that must be asked for explicitly). Otherwise New and Check fail
	// with blob.ErrNoObjectLock on such a bucket.
	AllowNoObjectLock bool
	// CreateBucket creates the bucket, with Object Lock enabled, when it does not exist.
	CreateBucket bool
	// ReadOnly refuses Put and SetLegalHold with blob.ErrReadOnly.
	ReadOnly bool
	// StatBeforePut sends a HEAD before each (still conditional) PUT, for S3 servers that ignore
	// If-None-Match on PUT. It costs one more round trip per new object, and two Puts racing
	// on such a server may both report created (writing two identical versions).
	StatBeforePut bool

	// Timeout bounds the wait for each response's headers (default 10s); dialing is bounded by
	// min(Timeout, 3s).
	Timeout time.Duration
	// MaxRetries is the number of attempts per request on network errors (default 2).
	MaxRetries int
	// Transport replaces the HTTP transport (e.g. for custom TLS roots); timeouts are then its own.
	Transport http.RoundTripper
	// Now is the clock for retention dates (default time.Now).
	Now func() time.Time
}

// Store is a blob.Store on an S3 bucket. Safe for concurrent use; keep one per process.
type Store struct {
	cfg    Config
	client *minio.Client
	core   minio.Core
	mode   minio.RetentionMode
	locked atomic.Bool // bucket has Object Lock (set by Check)

	listPageSize  int  // ListObjects page size (0: server default, 1000); tests lower it
	unconditional bool // benchmarks only: PUT without If-None-Match, to measure its cost
}

var _ blob.Store = (*Store)(nil)

// New connects to the bucket (creating it when cfg.CreateBucket) and runs Check.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Endpoint == "" || cfg.Bucket == "" {
		return nil, errors.New("s3store: endpoint and bucket are required")
	}
	if rest, ok := strings.CutPrefix(cfg.Endpoint, "https://"); ok {
		cfg.Endpoint, cfg.Secure = rest, true
	} else if rest, ok := strings.CutPrefix(cfg.Endpoint, "http://"); ok {
		if cfg.Secure {
			return nil, fmt.Errorf("s3store: endpoint %q is http:// but Secure is set", cfg.Endpoint)
		}
		cfg.Endpoint = rest
	}
	cfg.Endpoint = strings.TrimSuffix(cfg.Endpoint, "/")
	if strings.ContainsAny(cfg.Endpoint, "/?#@") {
		return nil, fmt.Errorf("s3store: endpoint %q must be host:port", cfg.Endpoint)
	}
	if cfg.Region == "" {
		cfg.Region = DefaultRegion
	}
	if cfg.Retention == 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.Retention < 0 {
		return nil, errors.New("s3store: negative retention")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxRetries <= 0 {
		cfg.MaxRetries = DefaultMaxRetries
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Store{cfg: cfg}
	switch strings.ToUpper(cfg.Mode) {
	case "", blob.ModeCompliance:
		s.mode = minio.Compliance
	case blob.ModeGovernance:
		s.mode = minio.Governance
	default:
		return nil, fmt.Errorf("s3store: unknown retention mode %q (want COMPLIANCE or GOVERNANCE)", cfg.Mode)
	}
	tr := cfg.Transport
	if tr == nil {
		t, err := minio.DefaultTransport(cfg.Secure)
		if err != nil {
			return nil, fmt.Errorf("s3store: %w", err)
		}
		t.DialContext = (&net.Dialer{Timeout: min(cfg.Timeout, 3*time.Second), KeepAlive: 30 * time.Second}).DialContext
		t.ResponseHeaderTimeout = cfg.Timeout
		t.TLSHandshakeTimeout = min(cfg.Timeout, 10*time.Second)
		t.ExpectContinueTimeout = time.Second
		t.MaxIdleConnsPerHost = 256
		t.MaxIdleConns = 256
		tr = t
	}
	c, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, cfg.SessionToken),
		Secure:       cfg.Secure,
		Region:       cfg.Region,
		Transport:    tr,
		MaxRetries:   cfg.MaxRetries,
		BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		return nil, fmt.Errorf("s3store: %w", err)
	}
	s.client, s.core = c, minio.Core{Client: c}
	if cfg.CreateBucket && !cfg.ReadOnly {
		if err := s.createBucket(ctx); err != nil {
			return nil, err
		}
	}
	if err := s.Check(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Store) createBucket(ctx context.Context) error {
	ok, err := s.client.BucketExists(ctx, s.cfg.Bucket)
	if err != nil {
		return s.wrap("bucket exists", "", err)
	}
	if ok {
		return nil
	}
	err = s.client.MakeBucket(ctx, s.cfg.Bucket, minio.MakeBucketOptions{Region: s.cfg.Region, ObjectLocking: true})
	if code := minio.ToErrorResponse(err).Code; code == "BucketAlreadyOwnedByYou" || code == "BucketAlreadyExists" {
		return nil // created concurrently
	}
	if err != nil {
		return s.wrap("create bucket", "", err)
	}
	return nil
}

// Bucket returns the bucket name.
func (s *Store) Bucket() string { return s.cfg.Bucket }

// Client returns the underlying minio client (for tests and tools; don't write through it).
func (s *Store) Client() *minio.Client { return s.client }

// ObjectLock reports whether the bucket has Object Lock, as found by the last Check.
func (s *Store) ObjectLock() bool { return s.locked.Load() }

// ErrBucketConfig: the bucket is configured so that stored evidence could be hidden, expire or be
// kept for less than configured (see Check).
var ErrBucketConfig = errors.New("s3store: the bucket does not protect the evidence as configured")

// Check verifies that the bucket exists and protects what is stored in it: Object Lock enabled
// (without it, blob.ErrNoObjectLock unless Config.AllowNoObjectLock), and then versioning
// enabled, no default retention other than the configured mode and period, and no lifecycle rule
// that expires objects or versions (else an error wrapping ErrBucketConfig that says what to
// change). A server that implements no lifecycle configuration has none.
func (s *Store) Check(ctx context.Context) error {
	ok, err := s.client.BucketExists(ctx, s.cfg.Bucket)
	if err != nil {
		return s.wrap("check bucket", "", err)
	}
	if !ok {
		return fmt.Errorf("s3store: bucket %q does not exist at %s (create it with Object Lock, or set CreateBucket)", s.cfg.Bucket, s.cfg.Endpoint)
	}
	status, mode, validity, unit, err := s.client.GetObjectLockConfig(ctx, s.cfg.Bucket)
	locked := err == nil && status == "Enabled"
	if err != nil && !isNoLockConfig(err) {
		return s.wrap("get object lock configuration", "", err)
	}
	s.locked.Store(locked)
	if !locked && !s.cfg.AllowNoObjectLock {
		return fmt.Errorf("s3store: %w: bucket %q at %s was not created with Object Lock, so stored evidence could be "+
			"deleted or overwritten; create a new bucket with Object Lock enabled (it cannot be turned on "+
			"later on most servers), or explicitly accept the weaker mode (AllowNoObjectLock)",
			blob.ErrNoObjectLock, s.cfg.Bucket, s.cfg.Endpoint)
	}
	if locked {
		if err := s.checkDefaultRetention(mode, validity, unit); err != nil {
			return err
		}
		v, err := s.client.GetBucketVersioning(ctx, s.cfg.Bucket)
		if err != nil {
			return s.wrap("get bucket versioning", "", err)
		}
		if v.Status != "Enabled" {
			return fmt.Errorf("s3store: %w: bucket %q has versioning %q, not Enabled: without versions a PUT replaces an "+
				"object instead of adding a version; enable versioning (Object Lock requires it)", ErrBucketConfig, s.cfg.Bucket, v.Status)
		}
	}
	return s.checkLifecycle(ctx)
}

// checkDefaultRetention accepts no default retention (the archive sets each object's retention
// itself) or one equal to the configured mode and period.
func (s *Store) checkDefaultRetention(mode *minio.RetentionMode, validity *uint, unit *minio.ValidityUnit) error {
	if mode == nil || *mode == "" || validity == nil || *validity == 0 {
		return nil
	}
	period := time.Duration(*validity) * 24 * time.Hour
	what := fmt.Sprintf("%d days", *validity)
	if unit != nil && *unit == minio.Years {
		period *= 365
		what = fmt.Sprintf("%d years", *validity)
	}
	if strings.ToUpper(string(*mode)) != string(s.mode) || period != s.cfg.Retention {
		return fmt.Errorf("s3store: %w: bucket %q has a default retention of %s for %s, the archive is configured for %s for %v: "+
			"make the bucket default agree (PECARCHIVE_S3_MODE, PECARCHIVE_S3_RETENTION) or remove it",
			ErrBucketConfig, s.cfg.Bucket, *mode, what, s.mode, s.cfg.Retention)
	}
	return nil
}

// checkLifecycle refuses a lifecycle rule that expires objects or versions: on a versioned
// bucket expiring a current object adds a delete marker over it, and expiring versions deletes
// evidence once its retention ends. Rules that only move objects (transitions) or remove expired
// delete markers are accepted.
func (s *Store) checkLifecycle(ctx context.Context) error {
	lc, err := s.client.GetBucketLifecycle(ctx, s.cfg.Bucket)
	switch code := minio.ToErrorResponse(err).Code; {
	case err == nil:
	case code == "NoSuchLifecycleConfiguration", code == "NotImplemented":
		return nil
	default:
		return s.wrap("get bucket lifecycle", "", err)
	}
	if lc == nil {
		return nil
	}
	for _, r := range lc.Rules {
		if !strings.EqualFold(r.Status, "Enabled") {
			continue
		}
		var what []string
		if !r.Expiration.IsDaysNull() || !r.Expiration.IsDateNull() {
			what = append(what, "Expiration")
		}
		if r.Expiration.DeleteAll {
			what = append(what, "ExpiredObjectAllVersions")
		}
		if r.NoncurrentVersionExpiration.NoncurrentDays > 0 || r.NoncurrentVersionExpiration.NewerNoncurrentVersions > 0 {
			what = append(what, "NoncurrentVersionExpiration")
		}
		if r.AllVersionsExpiration.Days > 0 {
			what = append(what, "AllVersionsExpiration")
		}
		if len(what) > 0 {
			return fmt.Errorf("s3store: %w: bucket %q has the lifecycle rule %q with %s: evidence must never expire (an "+
				"expired object gets a delete marker over it, an expired version is deleted once its retention ends); "+
				"remove the rule, and keep anything that should expire in another bucket",
				ErrBucketConfig, s.cfg.Bucket, r.ID, strings.Join(what, ", "))
		}
	}
	return nil
}

func isNoLockConfig(err error) bool {
	r := minio.ToErrorResponse(err)
	return r.Code == "ObjectLockConfigurationNotFoundError" || r.Code == "ObjectLockConfigurationNotFound" ||
		(r.StatusCode == http.StatusNotFound && r.Code != "NoSuchBucket")
}

// Put implements blob.Store.
func (s *Store) Put(ctx context.Context, sum [32]byte, data []byte) (bool, error) {
	created, _, err := s.PutVersion(ctx, sum, data)
	return created, err
}

var _ blob.Versioner = (*Store)(nil)

// PutVersion implements blob.Versioner: it is Put, and returns the ID of the version that holds
// the bytes ("" on a bucket without versioning). An existing object is accepted when its current
// version, or else an older one, has the same size and stored SHA-256: behind a newer version
// or a delete marker (see the package documentation) the retained version is the object.
func (s *Store) PutVersion(ctx context.Context, sum [32]byte, data []byte) (created bool, version string, err error) {
	if s.cfg.ReadOnly {
		return false, "", fmt.Errorf("s3store: put %x: %w", sum, blob.ErrReadOnly)
	}
	if len(data) > MaxObjectSize {
		return false, "", fmt.Errorf("s3store: put %x: object of %d bytes is over the %d-byte limit", sum, len(data), MaxObjectSize)
	}
	if err := blob.CheckSum(sum, data); err != nil {
		return false, "", fmt.Errorf("s3store: put: %w", err)
	}
	key := blob.Key(sum)
	conditional := !s.unconditional
	if s.cfg.StatBeforePut {
		version, found, err := s.existing(ctx, sum, int64(len(data)))
		if found || err != nil {
			return false, version, err
		}
	}
	for attempt := 0; ; attempt++ {
		version, err := s.putObject(ctx, key, sum, data, conditional)
		if err == nil {
			return true, version, nil
		}
		code := minio.ToErrorResponse(err).Code
		switch {
		case code == "PreconditionFailed":
			// The object exists: accept it if identical. versitygw also refuses when the
			// current version is a delete marker; the HEAD then finds nothing and we write.
			version, found, err := s.existing(ctx, sum, int64(len(data)))
			if found || err != nil {
				return false, version, err
			}
			conditional = false
		case code == "ConditionalRequestConflict" && attempt < 5:
			// A concurrent conditional write of the same key is in progress (AWS); try again.
			select {
			case <-ctx.Done():
				return false, "", s.wrap("put", key, ctx.Err())
			case <-time.After(time.Duration(attempt+1) * 20 * time.Millisecond):
			}
		default:
			return false, "", s.wrap("put", key, err)
		}
	}
}

// putObject sends one PUT with both SHA-256 headers and the retention, and returns the ID of the
// version it wrote.
func (s *Store) putObject(ctx context.Context, key string, sum [32]byte, data []byte, conditional bool) (string, error) {
	opts := minio.PutObjectOptions{
		ContentType:          "application/octet-stream",
		DisableContentSha256: true, // no streaming signature: the payload hash below is signed and checked
		UserMetadata: map[string]string{
			"x-amz-checksum-sha256": base64.StdEncoding.EncodeToString(sum[:]),
		},
	}
	if s.locked.Load() {
		opts.Mode = s.mode
		opts.RetainUntilDate = s.cfg.Now().Add(s.cfg.Retention).UTC().Truncate(time.Second).Add(time.Second)
	}
	if conditional {
		opts.SetMatchETagExcept("*")
	}
	info, err := s.core.PutObject(ctx, s.cfg.Bucket, key, bytes.NewReader(data), int64(len(data)),
		"", hex.EncodeToString(sum[:]), opts)
	if err != nil {
		return "", err
	}
	if got := info.ChecksumSHA256; got != "" && got != base64.StdEncoding.EncodeToString(sum[:]) {
		return "", fmt.Errorf("server stored %s with checksum %s: %w", key, got, blob.ErrIntegrity)
	}
	return versionID(info.VersionID), nil
}

// versionID is the ID of a version as the archive records it: "" for the "null" version of an
// unversioned bucket.
func versionID(v string) string {
	if v == "null" {
		return ""
	}
	return v
}

// existing checks the object already stored under sum and returns the ID of the version that
// holds its bytes. found=false when there is none.
func (s *Store) existing(ctx context.Context, sum [32]byte, size int64) (version string, found bool, err error) {
	key := blob.Key(sum)
	oi, err := s.client.StatObject(ctx, s.cfg.Bucket, key, minio.StatObjectOptions{Checksum: true})
	if isNotFound(err) {
		// None, or a delete marker over the retained version.
		return s.genuine(ctx, sum)
	}
	if err != nil {
		return "", false, s.wrap("stat", key, err)
	}
	want := base64.StdEncoding.EncodeToString(sum[:])
	switch {
	case oi.Size == size && oi.ChecksumSHA256 == want:
	case oi.Size != size || oi.ChecksumSHA256 != "":
		// The current version is not these bytes: a newer version over the retained one?
		if v, ok, err := s.genuine(ctx, sum); err != nil || ok {
			return v, ok, err
		}
		if oi.Size != size {
			return "", true, fmt.Errorf("s3store: %s already stored with %d bytes, not %d: %w", key, oi.Size, size, blob.ErrIntegrity)
		}
		return "", true, fmt.Errorf("s3store: %s already stored with sha256 %s: %w", key, oi.ChecksumSHA256, blob.ErrIntegrity)
	default:
		// Written without a SHA-256 checksum (not by this package): read it back and hash it.
		if err := s.verifyVersion(ctx, sum, oi.VersionID); err != nil {
			if v, ok, gerr := s.genuine(ctx, sum); gerr != nil || ok {
				return v, ok, gerr
			}
			return "", true, err
		}
	}
	if s.locked.Load() && oi.Metadata.Get("X-Amz-Object-Lock-Mode") == "" {
		// Identical bytes but no retention (written before the lock or by another tool): add it.
		until := s.cfg.Now().Add(s.cfg.Retention).UTC().Truncate(time.Second).Add(time.Second)
		mode := s.mode
		err := s.client.PutObjectRetention(ctx, s.cfg.Bucket, key, minio.PutObjectRetentionOptions{
			Mode: &mode, RetainUntilDate: &until, VersionID: oi.VersionID,
		})
		if err != nil {
			return "", true, s.wrap("set retention", key, err)
		}
	}
	return versionID(oi.VersionID), true, nil
}

// genuine returns the newest version of sum's key whose stored SHA-256 is sum (or, for a version
// stored without one, whose bytes hash to sum), for when the current version is not: ok=false
// when there is none.
func (s *Store) genuine(ctx context.Context, sum [32]byte) (version string, ok bool, err error) {
	key := blob.Key(sum)
	want := base64.StdEncoding.EncodeToString(sum[:])
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var unsummed []string
	for o := range s.client.ListObjects(ctx, s.cfg.Bucket, minio.ListObjectsOptions{Prefix: key, WithVersions: true}) {
		if o.Err != nil {
			return "", false, s.wrap("list versions", key, o.Err)
		}
		if o.Key != key || o.IsDeleteMarker {
			continue
		}
		oi, err := s.client.StatObject(ctx, s.cfg.Bucket, key, minio.StatObjectOptions{VersionID: o.VersionID, Checksum: true})
		if err != nil {
			return "", false, s.wrap("stat version "+o.VersionID+" of", key, err)
		}
		switch oi.ChecksumSHA256 {
		case want:
			return versionID(o.VersionID), true, nil
		case "":
			unsummed = append(unsummed, o.VersionID)
		}
	}
	for _, v := range unsummed {
		if err := s.verifyVersion(ctx, sum, v); err == nil {
			return versionID(v), true, nil
		} else if !errors.Is(err, blob.ErrIntegrity) {
			return "", false, err
		}
	}
	return "", false, nil
}

// verifyVersion reads the version of sum and hashes it.
func (s *Store) verifyVersion(ctx context.Context, sum [32]byte, version string) error {
	rc, err := s.GetVersion(ctx, sum, version)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(io.Discard, rc)
	return err
}

// Get implements blob.Store. It reads the current version unless that version is missing (a
// delete marker) or its stored SHA-256 is not sum, or it has none and an older version exists:
// then it reads the newest version that holds the bytes (see the package documentation).
func (s *Store) Get(ctx context.Context, sum [32]byte) (io.ReadCloser, error) {
	key := blob.Key(sum)
	// The stored checksum in the answer's headers, without minio-go's own verification of the
	// body (the reader below verifies the SHA-256 and reports blob.ErrIntegrity).
	var opts minio.GetObjectOptions
	opts.Set("x-amz-checksum-mode", "ENABLED")
	rc, oi, _, err := s.core.GetObject(ctx, s.cfg.Bucket, key, opts)
	if err != nil && !isNotFound(err) {
		return nil, s.wrap("get", key, err)
	}
	if err == nil && oi.ChecksumSHA256 == base64.StdEncoding.EncodeToString(sum[:]) {
		return blob.NewVerifyingReader(&bodyReader{rc: rc, s: s, key: key}, sum, oi.Size), nil
	}
	if rc != nil {
		rc.Close()
	}
	version, ok, gerr := s.genuine(ctx, sum)
	switch {
	case gerr != nil:
		return nil, gerr
	case ok:
		return s.GetVersion(ctx, sum, version)
	case err != nil:
		return nil, s.wrap("get", key, err)
	}
	// No version holds the bytes: read the current one, which the reader then reports.
	return s.GetVersion(ctx, sum, oi.VersionID)
}

// GetVersion implements blob.Versioner: it reads the version of sum (the current one when version
// is ""), verified as Get's reader is.
func (s *Store) GetVersion(ctx context.Context, sum [32]byte, version string) (io.ReadCloser, error) {
	key := blob.Key(sum)
	rc, oi, _, err := s.core.GetObject(ctx, s.cfg.Bucket, key, minio.GetObjectOptions{VersionID: version})
	if err != nil {
		switch r := minio.ToErrorResponse(err); {
		case r.Code == "MethodNotAllowed":
			// The version is a delete marker: there are no bytes at this version.
			return nil, fmt.Errorf("s3store: get %s version %q: a delete marker: %w", key, version, blob.ErrNotFound)
		case r.Code == "InvalidArgument" && version != "":
			// No version has this id ("Invalid version id specified").
			return nil, fmt.Errorf("s3store: get %s version %q: %s: %w", key, version, r.Message, blob.ErrNotFound)
		}
		return nil, s.wrap("get", key, err)
	}
	return blob.NewVerifyingReader(&bodyReader{rc: rc, s: s, key: key}, sum, oi.Size), nil
}

// bodyReader turns read errors of a response body into ErrUnavailable.
type bodyReader struct {
	rc  io.ReadCloser
	s   *Store
	key string
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil && err != io.EOF {
		err = b.s.wrap("read", b.key, err)
	}
	return n, err
}

func (b *bodyReader) Close() error { return b.rc.Close() }

// locate returns the HEAD of the version holding sum's bytes: the current one, unless it is a
// delete marker or another version's bytes (then the newest that holds them, as Get reads).
func (s *Store) locate(ctx context.Context, sum [32]byte) (minio.ObjectInfo, error) {
	key := blob.Key(sum)
	oi, err := s.client.StatObject(ctx, s.cfg.Bucket, key, minio.StatObjectOptions{Checksum: true})
	if err != nil && !isNotFound(err) {
		return minio.ObjectInfo{}, s.wrap("stat", key, err)
	}
	if err == nil && oi.ChecksumSHA256 == base64.StdEncoding.EncodeToString(sum[:]) {
		return oi, nil
	}
	version, ok, gerr := s.genuine(ctx, sum)
	switch {
	case gerr != nil:
		return minio.ObjectInfo{}, gerr
	case !ok && err != nil:
		return minio.ObjectInfo{}, s.wrap("stat", key, err)
	case !ok:
		return oi, nil // no version holds the bytes: the current one, which Get reports
	}
	oi, err = s.client.StatObject(ctx, s.cfg.Bucket, key, minio.StatObjectOptions{VersionID: version})
	if err != nil {
		return minio.ObjectInfo{}, s.wrap("stat", key, err)
	}
	return oi, nil
}

// Stat implements blob.Store: the version Get reads. Retention and legal hold come from the HEAD
// headers.
func (s *Store) Stat(ctx context.Context, sum [32]byte) (blob.Info, error) {
	key := blob.Key(sum)
	oi, err := s.locate(ctx, sum)
	if err != nil {
		return blob.Info{}, err
	}
	info := blob.Info{
		Size:      oi.Size,
		Mode:      strings.ToUpper(oi.Metadata.Get("X-Amz-Object-Lock-Mode")),
		LegalHold: strings.EqualFold(oi.Metadata.Get("X-Amz-Object-Lock-Legal-Hold"), "ON"),
	}
	if v := oi.Metadata.Get("X-Amz-Object-Lock-Retain-Until-Date"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return blob.Info{}, fmt.Errorf("s3store: stat %s: bad retain-until date %q: %w", key, v, blob.ErrUnavailable)
		}
		info.RetainUntil = t.UTC()
	}
	return info, nil
}

// SetLegalHold implements blob.Store, on the version Get reads.
func (s *Store) SetLegalHold(ctx context.Context, sum [32]byte, on bool) error {
	key := blob.Key(sum)
	if s.cfg.ReadOnly {
		return fmt.Errorf("s3store: legal hold %s: %w", key, blob.ErrReadOnly)
	}
	if !s.locked.Load() {
		return fmt.Errorf("s3store: legal hold %s: %w (legal holds need it)", key, blob.ErrNoObjectLock)
	}
	oi, err := s.locate(ctx, sum)
	if err != nil {
		return err
	}
	status := minio.LegalHoldDisabled
	if on {
		status = minio.LegalHoldEnabled
	}
	err = s.client.PutObjectLegalHold(ctx, s.cfg.Bucket, key, minio.PutObjectLegalHoldOptions{Status: &status, VersionID: oi.VersionID})
	if err != nil {
		return s.wrap("legal hold", key, err)
	}
	return nil
}

// Walk implements blob.Store. Keys under "sha256/" that are not content addresses are skipped.
func (s *Store) Walk(ctx context.Context, fn func(sum [32]byte) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for o := range s.client.ListObjects(ctx, s.cfg.Bucket, minio.ListObjectsOptions{
		Prefix: blob.KeyPrefix, Recursive: true, MaxKeys: s.listPageSize,
	}) {
		if o.Err != nil {
			return s.wrap("list", blob.KeyPrefix, o.Err)
		}
		sum, ok := blob.ParseKey(o.Key)
		if !ok {
			continue
		}
		if err := fn(sum); err != nil {
			return err
		}
	}
	return ctx.Err()
}

var _ blob.AuditWalker = (*Store)(nil)

// AuditWalk implements blob.AuditWalker: it lists every version under "sha256/", calls fn for
// every key that has a version (not only a delete marker), and reports a
// blob.AnomalyShadowed for every key whose current version does not hold the key's bytes: a
// delete marker over its versions, or a newer version whose stored SHA-256 (read with a HEAD;
// only keys with more than one version need one) is not the key's. The retained version is still
// read by Get and GetVersion.
func (s *Store) AuditWalk(ctx context.Context, fn func(sum [32]byte) error, found func(blob.Anomaly) error) error {
	return s.versionsByKey(ctx, blob.KeyPrefix, "", func(key string, vs []minio.ObjectInfo, _ int) error {
		return s.auditKey(ctx, key, vs, fn, found)
	})
}

// auditKey reports the versions vs of key (AuditWalk).
func (s *Store) auditKey(ctx context.Context, key string, vs []minio.ObjectInfo, fn func(sum [32]byte) error, found func(blob.Anomaly) error) error {
	sum, ok := blob.ParseKey(key)
	if !ok {
		return nil
	}
	var kept []minio.ObjectInfo
	var latest *minio.ObjectInfo
	for i := range vs {
		if vs[i].IsLatest {
			latest = &vs[i]
		}
		if !vs[i].IsDeleteMarker {
			kept = append(kept, vs[i])
		}
	}
	if len(kept) == 0 {
		return nil // deleted: no object (the catalog's read names it missing)
	}
	if err := fn(sum); err != nil {
		return err
	}
	sort.SliceStable(kept, func(i, j int) bool { return kept[i].LastModified.After(kept[j].LastModified) })
	if latest == nil {
		latest = &kept[0]
	}
	a := blob.Anomaly{Kind: blob.AnomalyShadowed, Key: key, SHA256: sum}
	switch {
	case latest.IsDeleteMarker:
		a.Detail = fmt.Sprintf("a delete marker (version %s) hides the %d stored version(s), newest %s", latest.VersionID, len(kept), kept[0].VersionID)
	case len(vs) == 1:
		return nil
	default:
		oi, err := s.client.StatObject(ctx, s.cfg.Bucket, key, minio.StatObjectOptions{VersionID: latest.VersionID, Checksum: true})
		if err != nil {
			return s.wrap("stat version "+latest.VersionID+" of", key, err)
		}
		if oi.ChecksumSHA256 == base64.StdEncoding.EncodeToString(sum[:]) {
			return nil // a second copy of the same bytes (a Put after a delete marker)
		}
		a.Detail = fmt.Sprintf("the current version %s (%d bytes, stored SHA-256 %q) is not the key's bytes and hides %d older version(s)",
			latest.VersionID, latest.Size, oi.ChecksumSHA256, len(vs)-1)
	}
	return found(a)
}

func isNotFound(err error) bool {
	if err == nil {
		return false
	}
	r := minio.ToErrorResponse(err)
	switch r.Code {
	case "NoSuchKey", "NoSuchVersion":
		return true
	case "NoSuchBucket":
		return false
	}
	// HEAD answers have no body: a bare 404 (or 405 for a delete marker) means no object.
	return r.Code == "NotFound" || (r.Code == "" && r.StatusCode == http.StatusNotFound)
}

// wrap classifies err: missing objects become blob.ErrNotFound, checksum mismatches
// blob.ErrIntegrity, and everything else (network, server, permissions) blob.ErrUnavailable.
func (s *Store) wrap(op, key string, err error) error {
	if errors.Is(err, blob.ErrIntegrity) || errors.Is(err, blob.ErrNotFound) || errors.Is(err, blob.ErrUnavailable) {
		return fmt.Errorf("s3store: %s %s: %w", op, key, err)
	}
	if isNotFound(err) {
		return fmt.Errorf("s3store: %s %s: %w", op, key, blob.ErrNotFound)
	}
	switch minio.ToErrorResponse(err).Code {
	case "BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch", "XAmzContentChecksumMismatch", "InvalidChecksum":
		return fmt.Errorf("s3store: %s %s: %w: %w", op, key, blob.ErrIntegrity, err)
	}
	return fmt.Errorf("s3store: %s %s at %s: %w: %w", op, key, s.cfg.Endpoint, blob.ErrUnavailable, err)
}

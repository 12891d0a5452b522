// Package blob owns the archive's immutable, content-addressed blob storage: the [Store]
// interface every backend implements, its sentinel errors, the object key layout and the
// verifying reader the backends share; and the write-once storage of the log's signed
// checkpoints beside the evidence ([CheckpointStore], checkpoint.go).
//
// Objects are addressed by the SHA-256 of their exact bytes and written once. Backends:
//   - fsstore: a local directory (the embedded default; write-once files, weaker than Object Lock);
//   - s3store: any S3 server with Object Lock (COMPLIANCE retention, server-checked checksums).
//
// Package blobtest holds the conformance suite every backend must pass.
package blob

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"time"
)

// Sentinel errors. Backends wrap them (use errors.Is); the wrapping error says what failed.
var (
	// ErrNotFound: no object is stored under that sum.
	ErrNotFound = errors.New("blob: not found")
	// ErrIntegrity: bytes do not match their SHA-256 (on Put, on read, or an existing object
	// under the same key differs).
	ErrIntegrity = errors.New("blob: integrity check failed")
	// ErrUnavailable: the storage could not be reached or failed (network, server, disk errors).
	ErrUnavailable = errors.New("blob: storage unavailable")
	// ErrNoObjectLock: the bucket has no Object Lock and the store was not told to accept that.
	ErrNoObjectLock = errors.New("blob: bucket has no object lock")
	// ErrReadOnly: the store was opened read-only, or its storage refuses writes.
	ErrReadOnly = errors.New("blob: store is read-only")
)

// Modes reported in [Info.Mode].
const (
	ModeCompliance = "COMPLIANCE"  // S3 Object Lock compliance retention: nobody can delete before RetainUntil
	ModeGovernance = "GOVERNANCE"  // S3 Object Lock governance retention: privileged users may bypass
	ModeFSReadOnly = "fs-readonly" // write-once read-only file: root or the owner can still delete it
)

// Info describes a stored object.
type Info struct {
	Size        int64
	RetainUntil time.Time // zero when the backend has no retention
	LegalHold   bool
	Mode        string // ModeCompliance, ModeGovernance, ModeFSReadOnly, or "" (S3 without Object Lock)
}

// Store is immutable, content-addressed blob storage.
type Store interface {
	// Put stores data under its SHA-256 sum (sum must equal sha256(data), else ErrIntegrity). Idempotent:
	// an existing identical object is success (created=false); an existing different object is ErrIntegrity.
	// Returns only after the object is durable and its checksum was confirmed by the server (S3) or fsynced (fs).
	Put(ctx context.Context, sum [32]byte, data []byte) (created bool, err error)
	// Get returns the bytes; the reader verifies the SHA-256 and returns ErrIntegrity at EOF on mismatch.
	Get(ctx context.Context, sum [32]byte) (io.ReadCloser, error)
	Stat(ctx context.Context, sum [32]byte) (Info, error)
	SetLegalHold(ctx context.Context, sum [32]byte, on bool) error
	// Walk calls fn for every stored object's sum (order unspecified). It fails with an error
	// wrapping ErrIntegrity when it comes across something where objects are kept that no Put
	// writes (a symbolic link in fsstore): [AuditWalker] names every such thing instead.
	Walk(ctx context.Context, fn func(sum [32]byte) error) error
	// Check verifies the store is usable and as strong as configured (Object Lock enabled, etc.).
	Check(ctx context.Context) error
}

// KeyPrefix is the prefix of every object key.
const KeyPrefix = "sha256/"

// Key returns the object key of sum: "sha256/<hex[0:2]>/<hex>", hex in lower case.
func Key(sum [32]byte) string {
	h := hex.EncodeToString(sum[:])
	return KeyPrefix + h[:2] + "/" + h
}

// ParseKey is the inverse of [Key]. It accepts only keys exactly of that form (lower-case hex,
// matching fan-out directory).
func ParseKey(key string) (sum [32]byte, ok bool) {
	rest, found := strings.CutPrefix(key, KeyPrefix)
	if !found || len(rest) != 2+1+64 || rest[2] != '/' || rest[:2] != rest[3:5] {
		return sum, false
	}
	return ParseHex(rest[3:])
}

// ParseHex parses a 64-character lower-case hex SHA-256.
func ParseHex(s string) (sum [32]byte, ok bool) {
	if len(s) != 64 {
		return sum, false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return sum, false
		}
	}
	if _, err := hex.Decode(sum[:], []byte(s)); err != nil {
		return sum, false
	}
	return sum, true
}

// CheckSum returns nil when sum is the SHA-256 of data, else an error wrapping ErrIntegrity.
func CheckSum(sum [32]byte, data []byte) error {
	if got := sha256.Sum256(data); got != sum {
		return fmt.Errorf("%w: data has sha256 %x, not %x", ErrIntegrity, got, sum)
	}
	return nil
}

// NewVerifyingReader wraps r so that it hashes everything read and, at EOF, returns an error
// wrapping ErrIntegrity instead of io.EOF when the bytes do not have the SHA-256 sum or (when
// size >= 0) are not exactly size bytes long. Close closes r.
func NewVerifyingReader(r io.ReadCloser, sum [32]byte, size int64) io.ReadCloser {
	return &verifyingReader{r: r, sum: sum, size: size, h: sha256.New()}
}

type verifyingReader struct {
	r    io.ReadCloser
	sum  [32]byte
	size int64 // expected, or -1
	n    int64
	h    hash.Hash
	err  error // sticky final result
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if v.size >= 0 && v.n > v.size {
		v.err = fmt.Errorf("%w: object %x is longer than its %d bytes", ErrIntegrity, v.sum, v.size)
		return n, v.err
	}
	if err == io.EOF {
		var got [32]byte
		v.h.Sum(got[:0])
		switch {
		case v.size >= 0 && v.n != v.size:
			v.err = fmt.Errorf("%w: object %x has %d bytes, want %d", ErrIntegrity, v.sum, v.n, v.size)
		case got != v.sum:
			v.err = fmt.Errorf("%w: object %x read back with sha256 %x", ErrIntegrity, v.sum, got)
		default:
			v.err = io.EOF
		}
		return n, v.err
	}
	return n, err
}

func (v *verifyingReader) Close() error { return v.r.Close() }

// Anomaly kinds.
const (
	// AnomalyIrregular: an entry where objects are kept that is not a regular file or directory
	// as Put makes them (a symbolic link, a device, a FIFO: fsstore). A read never follows it.
	AnomalyIrregular = "irregular"
	// AnomalyShadowed: the current version of an object is not its bytes, a newer version or a
	// delete marker hides them (s3store); the retained version is still read by its ID.
	AnomalyShadowed = "shadowed"
)

// Anomaly is something a walk found where the store keeps its objects that is not an intact
// object as Put left it.
type Anomaly struct {
	Kind string // AnomalyIrregular or AnomalyShadowed
	// Key is where it is, in the store's key space ("sha256/ab/ab12..." or a directory).
	Key string
	// SHA256 is the object concerned; zero when Key is not a content address.
	SHA256 [32]byte
	Detail string
}

func (a Anomaly) String() string {
	s := a.Kind + " " + a.Key
	if a.Detail != "" {
		s += ": " + a.Detail
	}
	return s
}

// AuditWalker is implemented by stores whose storage can hold things a plain Walk does not
// report: AuditWalk calls fn for every object as Walk does and found for every [Anomaly] (fn is
// not called for an entry that holds no object). An error returned by fn or found stops the walk
// and is returned.
type AuditWalker interface {
	AuditWalk(ctx context.Context, fn func(sum [32]byte) error, found func(Anomaly) error) error
}

// Versioner is implemented by stores that keep versions of an object (s3store on a bucket with
// Object Lock): there, whoever may write can add a newer version over an object, so the version
// that holds the bytes is recorded when they are stored and read by its ID.
type Versioner interface {
	// PutVersion is Put that also returns the ID of the version holding the bytes ("" when the
	// storage keeps no versions).
	PutVersion(ctx context.Context, sum [32]byte, data []byte) (created bool, version string, err error)
	// GetVersion is Get of one version ("": the one Get reads).
	GetVersion(ctx context.Context, sum [32]byte, version string) (io.ReadCloser, error)
}

// PutVersion stores data with s.Put, through [Versioner.PutVersion] when s keeps versions, and
// returns the version holding the bytes ("" when s keeps none).
func PutVersion(ctx context.Context, s Store, sum [32]byte, data []byte) (created bool, version string, err error) {
	if v, ok := s.(Versioner); ok {
		return v.PutVersion(ctx, sum, data)
	}
	created, err = s.Put(ctx, sum, data)
	return created, "", err
}

// GetVersion reads the version of sum (as recorded from [PutVersion]) when s keeps versions and
// version is set, else what s.Get reads.
func GetVersion(ctx context.Context, s Store, sum [32]byte, version string) (io.ReadCloser, error) {
	if v, ok := s.(Versioner); ok && version != "" {
		return v.GetVersion(ctx, sum, version)
	}
	return s.Get(ctx, sum)
}

package blob

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Signed checkpoints of the transparency log are kept on the same write-once storage as the
// evidence, under the same retention, so that an insider who can rewrite PostgreSQL cannot make
// the log forget what it signed: one object per signed checkpoint, written once, under a key
// named after its size and its content (CheckpointKey). Like the evidence's content addresses,
// the key cannot be taken before the checkpoint exists: whoever can write to the storage can put
// objects under keys of sizes the log has not reached, but never the one the log will write, so
// such objects never stop it publishing (the audit names them).

// CheckpointPrefix is the prefix of every checkpoint key.
const CheckpointPrefix = "checkpoints/"

// Limits of checkpoint storage.
const (
	// MaxCheckpointSize is the largest checkpoint PutCheckpoint accepts and the most a backend
	// reads of a stored one (a larger object is reported, not read).
	MaxCheckpointSize = 64 << 10
	// MaxCheckpointVersions bounds the versions of one key a backend reports; past it, one more
	// version says how many were left out.
	MaxCheckpointVersions = 100
)

// CheckpointKey returns the key of the signed checkpoint signed, of tree size size:
// "checkpoints/", the size in 20 decimal digits, zero-padded, so that keys sort as sizes do, "."
// and the hex SHA-256 of signed.
func CheckpointKey(size uint64, signed []byte) string {
	return fmt.Sprintf("%s.%x", checkpointSizePrefix(size), sha256.Sum256(signed))
}

// checkpointSizePrefix is the part of CheckpointKey that names the size.
func checkpointSizePrefix(size uint64) string {
	return fmt.Sprintf("%s%020d", CheckpointPrefix, size)
}

// CheckpointsAfter returns a key that sorts after every checkpoint key of sizes below from and
// before every one of sizes from on, to start a listing at ("" for from 0).
func CheckpointsAfter(from uint64) string {
	if from == 0 {
		return ""
	}
	return checkpointSizePrefix(from-1) + "/" // '/' sorts after '.', and before any digit
}

// ParseCheckpointKey is the inverse of [CheckpointKey]: the size and the SHA-256 the key names.
// It accepts only keys exactly of that form (lower-case hex).
func ParseCheckpointKey(key string) (size uint64, sum [32]byte, ok bool) {
	rest, found := strings.CutPrefix(key, CheckpointPrefix)
	if !found || len(rest) != 20+1+64 || rest[20] != '.' {
		return 0, sum, false
	}
	for i := 0; i < 20; i++ {
		if rest[i] < '0' || rest[i] > '9' {
			return 0, sum, false
		}
	}
	size, err := strconv.ParseUint(rest[:20], 10, 64)
	if err != nil {
		return 0, sum, false
	}
	h := rest[21:]
	if _, err := hex.Decode(sum[:], []byte(h)); err != nil || hex.EncodeToString(sum[:]) != h {
		return 0, [32]byte{}, false
	}
	return size, sum, true
}

// CheckpointStore is write-once storage of the log's signed checkpoints, kept beside the
// evidence under the same protection (S3 Object Lock with the evidence's retention, or a
// read-only file). fsstore and s3store implement it; blobtest.RunCheckpoints is its conformance
// suite.
type CheckpointStore interface {
	// PutCheckpoint stores signed as a checkpoint of tree size size under CheckpointKey(size,
	// signed), once, and returns when it is durable. The same checkpoint already stored is
	// success (created=false); anything else already stored under the key (bytes that do not
	// hash to it) fails with ErrIntegrity and changes nothing. On a versioned bucket the
	// checkpoint counts as stored only when it is the key's oldest version (see
	// [Checkpoint.Genuine]). Larger than MaxCheckpointSize or empty: ErrIntegrity.
	PutCheckpoint(ctx context.Context, size uint64, signed []byte) (created bool, err error)
	// Checkpoints calls fn for every stored checkpoint key of size >= from, in key order (so in
	// increasing size order; a size may have several keys), with every version of the key (see
	// [Checkpoint]); the genuine version's bytes are read and checked against the key
	// ([CheckStored]). An error from fn stops the walk and is returned as is.
	Checkpoints(ctx context.Context, from uint64, fn func(Checkpoint) error) error
}

// Checkpoint is what one checkpoint key holds: on a versioned bucket, every version, including
// versions written over the first one and delete markers, which hide it from plain reads but
// cannot remove it while it is retained.
type Checkpoint struct {
	Key      string              // the object's key (see CheckpointKey)
	Size     uint64              // the size the key names
	SHA256   [32]byte            // the SHA-256 the key names
	Versions []CheckpointVersion // oldest first; never empty
}

// CheckStored checks the genuine version of c, as read, against the SHA-256 its key names: bytes
// that do not hash to it are not the key's checkpoint (someone else put them there) and are
// reported as a Problem instead of being returned. Backends call it on every checkpoint they list.
func CheckStored(c *Checkpoint) {
	i := c.genuine()
	if i < 0 {
		return
	}
	v := &c.Versions[i]
	if v.Signed != nil && sha256.Sum256(v.Signed) != c.SHA256 {
		v.Signed, v.Problem = nil, "its bytes do not hash to the SHA-256 its key names"
	}
}

// CheckpointVersion is one version of a checkpoint key.
type CheckpointVersion struct {
	ID           string // the backend's version id; "" where there is one version only
	Modified     time.Time
	DeleteMarker bool
	// Signed holds the bytes of the genuine version (see [Checkpoint.Genuine]); nil for the
	// others, for delete markers, and when Problem is set.
	Signed []byte
	// Problem says why the version could not be read as a checkpoint (not a regular file,
	// larger than MaxCheckpointSize, versions left out); "" when it was.
	Problem string
}

// Genuine returns the version that is the stored checkpoint: the oldest that is not a delete
// marker. It was written first, and retention keeps it whatever was written over it later, so a
// newer version or a delete marker cannot replace it. ok is false when the key holds nothing but
// delete markers.
func (c Checkpoint) Genuine() (v CheckpointVersion, ok bool) {
	if i := c.genuine(); i >= 0 {
		return c.Versions[i], true
	}
	return CheckpointVersion{}, false
}

func (c Checkpoint) genuine() int {
	for i, v := range c.Versions {
		if !v.DeleteMarker {
			return i
		}
	}
	return -1
}

// Shadows returns the versions other than the genuine one: versions written over it and delete
// markers. Checkpoints are written once, so any of them was written by someone else and an audit
// names it.
func (c Checkpoint) Shadows() []CheckpointVersion {
	g := c.genuine()
	var out []CheckpointVersion
	for i, v := range c.Versions {
		if i != g {
			out = append(out, v)
		}
	}
	return out
}

// String describes a version for a report.
func (v CheckpointVersion) String() string {
	s := "version"
	if v.DeleteMarker {
		s = "delete marker"
	}
	if v.ID != "" {
		s += " " + v.ID
	}
	if !v.Modified.IsZero() {
		s += " of " + v.Modified.UTC().Format(time.RFC3339)
	}
	if v.Problem != "" {
		s += ": " + v.Problem
	}
	return s
}

package blob

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Signed checkpoints of the transparency log are kept on the same write-once storage as the
// evidence, under the same retention, so that an insider who can rewrite PostgreSQL cannot make
// the log forget what it signed: key CheckpointKey(size), one object per published size,
// written once.

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

// CheckpointKey returns the key of the checkpoint of tree size size: "checkpoints/" and the
// size in 20 decimal digits, zero-padded, so that keys sort as sizes do.
func CheckpointKey(size uint64) string {
	return fmt.Sprintf("%s%020d", CheckpointPrefix, size)
}

// ParseCheckpointKey is the inverse of [CheckpointKey]; it accepts only keys exactly of that form.
func ParseCheckpointKey(key string) (size uint64, ok bool) {
	rest, found := strings.CutPrefix(key, CheckpointPrefix)
	if !found || len(rest) != 20 {
		return 0, false
	}
	for i := 0; i < len(rest); i++ {
		if rest[i] < '0' || rest[i] > '9' {
			return 0, false
		}
	}
	size, err := strconv.ParseUint(rest, 10, 64)
	return size, err == nil
}

// CheckpointStore is write-once storage of the log's signed checkpoints, kept beside the
// evidence under the same protection (S3 Object Lock with the evidence's retention, or a
// read-only file). fsstore and s3store implement it; blobtest.RunCheckpoints is its conformance
// suite.
type CheckpointStore interface {
	// PutCheckpoint stores signed as the checkpoint of tree size size, once, and returns when it
	// is durable. An identical checkpoint already stored is success (created=false); anything
	// else already stored under the key fails with ErrIntegrity and changes nothing. On a
	// versioned bucket the checkpoint counts as stored only when it is the key's oldest version
	// (see [Checkpoint.Genuine]). Larger than MaxCheckpointSize or empty: ErrIntegrity.
	PutCheckpoint(ctx context.Context, size uint64, signed []byte) (created bool, err error)
	// Checkpoints calls fn for every stored checkpoint of size >= from, in increasing size
	// order, with every version of its key (see [Checkpoint]). An error from fn stops the walk
	// and is returned as is.
	Checkpoints(ctx context.Context, from uint64, fn func(Checkpoint) error) error
}

// Checkpoint is what one checkpoint key holds: on a versioned bucket, every version, including
// versions written over the first one and delete markers, which hide it from plain reads but
// cannot remove it while it is retained.
type Checkpoint struct {
	Size     uint64
	Versions []CheckpointVersion // oldest first; never empty
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

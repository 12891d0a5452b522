package s3store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/pecarchive/pecarchive/services/archive/blob"
)

// Checkpoints (blob.CheckpointStore): each signed checkpoint is an object under
// blob.CheckpointKey(size, signed) in the evidence bucket, written like an object (conditional
// PUT, server-checked SHA-256, the evidence's retention: COMPLIANCE Object Lock by default).
//
// With the service's own credentials one can still write a newer version over a retained one
// or a delete marker on top of it; plain reads then see the newcomer, or nothing. So checkpoints
// are always read through the bucket's version listing: the genuine checkpoint is the key's
// oldest version that is not a delete marker (retention keeps it), and every other version is
// reported (blob.Checkpoint.Shadows) for the audit to name. Nobody can write under a key before
// the log does: the key names the checkpoint's SHA-256.

var _ blob.CheckpointStore = (*Store)(nil)

// PutCheckpoint implements blob.CheckpointStore: the key's version listing first (a version
// already there, even behind a delete marker, is the genuine one and is compared, never written
// over), then a conditional PUT, then the listing again to make sure the genuine version is the
// one just written. It costs three requests.
func (s *Store) PutCheckpoint(ctx context.Context, size uint64, signed []byte) (bool, error) {
	key := blob.CheckpointKey(size, signed)
	if s.cfg.ReadOnly {
		return false, fmt.Errorf("s3store: put %s: %w", key, blob.ErrReadOnly)
	}
	if len(signed) == 0 || len(signed) > blob.MaxCheckpointSize {
		return false, fmt.Errorf("s3store: put %s: %d bytes (1 to %d): %w", key, len(signed), blob.MaxCheckpointSize, blob.ErrIntegrity)
	}
	c, err := s.checkpointVersions(ctx, key)
	if err != nil {
		return false, err
	}
	if g, ok := c.Genuine(); ok {
		return false, s.sameCheckpoint(ctx, key, g, signed)
	}
	sum := sha256.Sum256(signed)
	written, err := s.putCheckpointObject(ctx, key, sum, signed, true)
	if err != nil {
		return false, err
	}
	if c, err = s.checkpointVersions(ctx, key); err != nil {
		return false, err
	}
	g, ok := c.Genuine()
	if !ok && written == "" {
		// The key holds nothing but delete markers, and the server (versitygw) refuses a
		// conditional PUT then: write without the condition; the listing decides.
		if written, err = s.putCheckpointObject(ctx, key, sum, signed, false); err != nil {
			return false, err
		}
		if c, err = s.checkpointVersions(ctx, key); err != nil {
			return false, err
		}
		g, ok = c.Genuine()
	}
	switch {
	case !ok:
		return false, fmt.Errorf("s3store: put %s: the written checkpoint is not listed: %w", key, blob.ErrUnavailable)
	case written != "" && g.ID == written:
		return true, nil
	}
	// Another writer came first (a concurrent put of the same checkpoint, or someone else).
	return false, s.sameCheckpoint(ctx, key, g, signed)
}

// sameCheckpoint reads the genuine version g of key and fails with blob.ErrIntegrity unless it
// holds exactly signed.
func (s *Store) sameCheckpoint(ctx context.Context, key string, g blob.CheckpointVersion, signed []byte) error {
	if g.Problem != "" {
		return fmt.Errorf("s3store: put %s: version %s %s: %w", key, g.ID, g.Problem, blob.ErrIntegrity)
	}
	got, problem, err := s.readCheckpointVersion(ctx, key, g.ID)
	if err != nil {
		return err
	}
	if problem != "" {
		return fmt.Errorf("s3store: put %s: version %s %s: %w", key, g.ID, problem, blob.ErrIntegrity)
	}
	if !bytes.Equal(got, signed) {
		return fmt.Errorf("s3store: put %s: version %s holds another checkpoint: %w", key, g.ID, blob.ErrIntegrity)
	}
	return nil
}

// putCheckpointObject sends one PUT of a checkpoint and returns the version it wrote, or "" when
// a conditional PUT found the key taken. On a bucket without versioning the version is "null".
func (s *Store) putCheckpointObject(ctx context.Context, key string, sum [32]byte, data []byte, conditional bool) (version string, err error) {
	for attempt := 0; ; attempt++ {
		version, err := s.putObject(ctx, key, sum, data, conditional)
		if err == nil {
			if version == "" {
				version = "null"
			}
			return version, nil
		}
		switch code := minio.ToErrorResponse(err).Code; {
		case code == "PreconditionFailed" && conditional:
			return "", nil
		case code == "ConditionalRequestConflict" && attempt < 5:
			select {
			case <-ctx.Done():
				return "", s.wrap("put", key, ctx.Err())
			case <-time.After(time.Duration(attempt+1) * 20 * time.Millisecond):
			}
		default:
			return "", s.wrap("put", key, err)
		}
	}
}

// checkpointVersions lists every version of one checkpoint key.
func (s *Store) checkpointVersions(ctx context.Context, key string) (blob.Checkpoint, error) {
	size, sum, ok := blob.ParseCheckpointKey(key)
	if !ok {
		return blob.Checkpoint{}, fmt.Errorf("s3store: %q is not a checkpoint key", key)
	}
	var found *blob.Checkpoint
	err := s.listCheckpoints(ctx, key, "", func(c blob.Checkpoint) error {
		if c.Key == key {
			found = &c
		}
		return nil
	})
	if err != nil {
		return blob.Checkpoint{}, err
	}
	if found == nil {
		return blob.Checkpoint{Key: key, Size: size, SHA256: sum}, nil
	}
	return *found, nil
}

// readCheckpointVersion reads one version of a checkpoint key, at most blob.MaxCheckpointSize
// bytes; problem says why it is not a readable checkpoint.
func (s *Store) readCheckpointVersion(ctx context.Context, key, version string) (data []byte, problem string, err error) {
	opts := minio.GetObjectOptions{}
	if version != "" && version != "null" {
		opts.VersionID = version
	}
	rc, oi, _, err := s.core.GetObject(ctx, s.cfg.Bucket, key, opts)
	if err != nil {
		return nil, "", s.wrap("get", key, err)
	}
	defer rc.Close()
	if oi.Size > blob.MaxCheckpointSize {
		return nil, fmt.Sprintf("is %d bytes, more than a checkpoint's %d", oi.Size, blob.MaxCheckpointSize), nil
	}
	data, err = io.ReadAll(io.LimitReader(&bodyReader{rc: rc, s: s, key: key}, blob.MaxCheckpointSize+1))
	if err != nil {
		return nil, "", err
	}
	if len(data) > blob.MaxCheckpointSize || int64(len(data)) != oi.Size {
		return nil, fmt.Sprintf("read back %d bytes, the server said %d", len(data), oi.Size), nil
	}
	return data, "", nil
}

// Checkpoints implements blob.CheckpointStore through the bucket's version listing, so a key
// whose current version is a delete marker is still listed with the versions under it. Only the
// genuine version of each key is read (one GET per checkpoint).
func (s *Store) Checkpoints(ctx context.Context, from uint64, fn func(blob.Checkpoint) error) error {
	return s.listCheckpoints(ctx, blob.CheckpointPrefix, blob.CheckpointsAfter(from), func(c blob.Checkpoint) error {
		if c.Size < from {
			return nil
		}
		if i := slices.IndexFunc(c.Versions, func(v blob.CheckpointVersion) bool { return !v.DeleteMarker }); i >= 0 && c.Versions[i].Problem == "" {
			v := &c.Versions[i]
			data, problem, err := s.readCheckpointVersion(ctx, c.Key, v.ID)
			if err != nil {
				return err
			}
			v.Signed, v.Problem = data, problem
		}
		blob.CheckStored(&c)
		return fn(c)
	})
}

// listCheckpoints lists the versions of the checkpoint keys under prefix after the key after and
// calls fn once per key, in key order, versions oldest first, without reading them (see
// versionsByKey).
func (s *Store) listCheckpoints(ctx context.Context, prefix, after string, fn func(blob.Checkpoint) error) error {
	return s.versionsByKey(ctx, prefix, after, func(key string, os []minio.ObjectInfo, dropped int) error {
		size, sum, ok := blob.ParseCheckpointKey(key)
		if !ok {
			return nil
		}
		vs := make([]blob.CheckpointVersion, 0, len(os)+1)
		for i := len(os) - 1; i >= 0; i-- { // as listed: newest first
			o := &os[i]
			v := blob.CheckpointVersion{ID: o.VersionID, Modified: o.LastModified.UTC(), DeleteMarker: o.IsDeleteMarker}
			if !v.DeleteMarker && o.Size > blob.MaxCheckpointSize {
				v.Problem = fmt.Sprintf("is %d bytes, more than a checkpoint's %d", o.Size, blob.MaxCheckpointSize)
			}
			vs = append(vs, v)
		}
		slices.SortStableFunc(vs, func(a, b blob.CheckpointVersion) int { return a.Modified.Compare(b.Modified) })
		if dropped > 0 {
			vs = append(vs, blob.CheckpointVersion{
				Problem: fmt.Sprintf("%d newer versions not listed (at most %d are)", dropped, maxListedVersions)})
		}
		return fn(blob.Checkpoint{Key: key, Size: size, SHA256: sum, Versions: vs})
	})
}

package fsstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/pecarchive/pecarchive/services/archive/blob"
)

// Checkpoints (blob.CheckpointStore): each signed checkpoint is a write-once, read-only file
// ROOT/checkpoints/<size in 20 digits>.<its SHA-256> (blob.CheckpointKey), written like an object
// (temporary file, fsync, 0444, exclusive link, directory fsync) and read like one, without
// following symbolic links. The same weakness as for objects applies: the owner of the files or
// root can delete or replace them; the log's audit then finds the checkpoint missing from here,
// or differing from the database's copy, and an auditor's own copy of a checkpoint (pecarchive
// audit --checkpoint) still shows a rollback or a fork.

var _ blob.CheckpointStore = (*Store)(nil)

const checkpointsDir = "checkpoints"

// CheckpointPath returns the file of the checkpoint signed of the given size (whether or not it
// exists).
func (s *Store) CheckpointPath(size uint64, signed []byte) string {
	return filepath.Join(s.root, filepath.FromSlash(blob.CheckpointKey(size, signed)))
}

// PutCheckpoint implements blob.CheckpointStore.
func (s *Store) PutCheckpoint(ctx context.Context, size uint64, signed []byte) (bool, error) {
	if s.readOnly {
		return false, fmt.Errorf("fsstore: put checkpoint %d: %w", size, blob.ErrReadOnly)
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if len(signed) == 0 || len(signed) > blob.MaxCheckpointSize {
		return false, fmt.Errorf("fsstore: put checkpoint %d: %d bytes (1 to %d): %w", size, len(signed), blob.MaxCheckpointSize, blob.ErrIntegrity)
	}
	path := s.CheckpointPath(size, signed)
	return s.writeOnce("put checkpoint", path, signed, func() error { return s.existingCheckpoint(path, signed) })
}

// existingCheckpoint accepts the checkpoint stored at path when it is signed, byte for byte, and
// makes its directory entry durable.
func (s *Store) existingCheckpoint(path string, signed []byte) error {
	got, problem, err := s.readCheckpointFile(filepath.Base(path))
	if err != nil {
		return s.ioErr("put checkpoint", path, err)
	}
	if problem != "" {
		return fmt.Errorf("fsstore: put checkpoint: %s %s: %w", path, problem, blob.ErrIntegrity)
	}
	if !bytes.Equal(got, signed) {
		return fmt.Errorf("fsstore: put checkpoint: %s holds other bytes than the checkpoint its name is of: %w", path, blob.ErrIntegrity)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return s.ioErr("put checkpoint", path, err)
	}
	return nil
}

// readCheckpointFile reads the checkpoint file name of the checkpoints directory as objects are
// read (openNoFollow): without following a symbolic link in place of the file or of the
// directory, and without blocking on a named pipe. problem says why the file is not a readable
// checkpoint (a link, not a regular file, too large).
func (s *Store) readCheckpointFile(name string) (data []byte, problem string, err error) {
	f, err := openNoFollow(s.root, checkpointsDir, name)
	if err != nil && isLinkError(err) {
		return nil, "is a symbolic link or not a regular file, or its directory is", nil
	}
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, "", err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Sprintf("is a %s, not a regular file", typeName(fi.Mode().Type())), nil
	}
	if fi.Size() > blob.MaxCheckpointSize {
		return nil, fmt.Sprintf("is %d bytes, more than a checkpoint's %d", fi.Size(), blob.MaxCheckpointSize), nil
	}
	data, err = io.ReadAll(io.LimitReader(f, blob.MaxCheckpointSize+1))
	if err != nil {
		return nil, "", err
	}
	if len(data) > blob.MaxCheckpointSize {
		return nil, fmt.Sprintf("grew past a checkpoint's %d bytes", blob.MaxCheckpointSize), nil
	}
	return data, "", nil
}

// Checkpoints implements blob.CheckpointStore. A file has one version, whose Modified is its
// modification time. Entries under a checkpoint name that are not regular files are reported
// with a Problem; other names (temporary files) are skipped.
func (s *Store) Checkpoints(ctx context.Context, from uint64, fn func(blob.Checkpoint) error) error {
	dir := filepath.Join(s.root, checkpointsDir)
	if fi, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return s.ioErr("list checkpoints", dir, err)
	} else if !fi.IsDir() {
		return fmt.Errorf("fsstore: list checkpoints: %s is a %s, not a directory: %w", dir, typeName(fi.Mode().Type()), blob.ErrIntegrity)
	}
	entries, err := os.ReadDir(dir) // sorted by name, which is by size
	if err != nil {
		return s.ioErr("list checkpoints", dir, err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			continue
		}
		key := blob.CheckpointPrefix + e.Name()
		size, sum, ok := blob.ParseCheckpointKey(key)
		if !ok || size < from {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		path := filepath.Join(dir, e.Name())
		v := blob.CheckpointVersion{}
		if fi, err := os.Lstat(path); err == nil {
			v.Modified = fi.ModTime().UTC()
		}
		data, problem, err := s.readCheckpointFile(e.Name())
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed since listed
		}
		if err != nil {
			return s.ioErr("read checkpoint", path, err)
		}
		v.Signed, v.Problem = data, problem
		c := blob.Checkpoint{Key: key, Size: size, SHA256: sum, Versions: []blob.CheckpointVersion{v}}
		blob.CheckStored(&c)
		if err := fn(c); err != nil {
			return err
		}
	}
	return nil
}

// Package fsstore owns the filesystem implementation of blob.Store, the embedded default: each
// object is a write-once, read-only file under its content address,
// ROOT/sha256/<hex[0:2]>/<hex>.
//
// A Put writes a temporary file in the object's directory, fsyncs it, makes it read-only (0444),
// links it to its final name with exclusive-create semantics (os.Link never replaces an existing
// file), removes the temporary name and fsyncs the directory. So an object appears whole or not at
// all, is never overwritten, and is durable when Put returns. Get verifies the SHA-256 while
// reading. A legal hold is a marker file ROOT/legal-hold/<hex[0:2]>/<hex>.
//
// Reads never follow a symbolic link: an object is opened step by step from ROOT with
// O_NOFOLLOW, so a link planted in place of an object or of its directory fails the read with
// blob.ErrIntegrity instead of serving whatever it points at, and the walk (AuditWalk) names
// every entry that is not a regular file or directory as Put makes them.
//
// WEAKER THAN S3 OBJECT LOCK: nothing but file permissions protects the files. Root, the owner of
// the files, or anyone who can write the directories can delete or replace an object, and the
// legal-hold marker only records a decision: it prevents nothing. Stat reports Mode
// "fs-readonly" and no retention date. Use s3store with Object Lock (COMPLIANCE) where evidence
// must survive a privileged or compromised operator; the append-only Merkle log still makes a
// removed or altered object detectable.
//
// The filesystem must support hard links (any local POSIX filesystem does).
package fsstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/pecarchive/pecarchive/services/archive/blob"
)

const (
	objectsDir   = "sha256"
	legalHoldDir = "legal-hold"
	tmpPrefix    = ".tmp-"
)

// Config configures a Store.
type Config struct {
	// Root is the directory holding the objects; created (0750) when missing unless ReadOnly.
	Root string
	// ReadOnly refuses Put and SetLegalHold with blob.ErrReadOnly, and Check does not need write access.
	ReadOnly bool
}

// Store is a blob.Store on a local directory. Safe for concurrent use, also by several processes
// sharing the directory.
type Store struct {
	root     string
	readOnly bool
}

var _ blob.Store = (*Store)(nil)

// New opens (and unless read-only creates) the store directory and runs Check.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Root == "" {
		return nil, errors.New("fsstore: root directory is required")
	}
	root, err := filepath.Abs(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("fsstore: %w", err)
	}
	s := &Store{root: root, readOnly: cfg.ReadOnly}
	if !cfg.ReadOnly {
		for _, d := range []string{objectsDir, legalHoldDir} {
			if err := mkdirDurable(filepath.Join(root, d)); err != nil {
				return nil, s.ioErr("create", root, err)
			}
		}
	}
	if err := s.Check(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Root returns the store directory.
func (s *Store) Root() string { return s.root }

// Path returns the file of the object sum (whether or not it exists).
func (s *Store) Path(sum [32]byte) string {
	return filepath.Join(s.root, filepath.FromSlash(blob.Key(sum)))
}

func (s *Store) holdPath(sum [32]byte) string {
	k := strings.TrimPrefix(blob.Key(sum), blob.KeyPrefix)
	return filepath.Join(s.root, legalHoldDir, filepath.FromSlash(k))
}

// Check verifies that the directory exists and, unless read-only, that files and hard links can
// be created in it.
func (s *Store) Check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	fi, err := os.Lstat(filepath.Join(s.root, objectsDir))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && s.readOnly {
			return fmt.Errorf("fsstore: %s is not a blob store (no %s directory): %w", s.root, objectsDir, blob.ErrUnavailable)
		}
		return s.ioErr("check", s.root, err)
	}
	if !fi.IsDir() {
		// Reads do not follow links (see openNoFollow), so a linked objects directory could not
		// be read either.
		return fmt.Errorf("fsstore: %s is not a directory (%s): %w", filepath.Join(s.root, objectsDir), typeName(fi.Mode().Type()), blob.ErrUnavailable)
	}
	if s.readOnly {
		return nil
	}
	f, err := os.CreateTemp(filepath.Join(s.root, objectsDir), tmpPrefix+"check-")
	if err != nil {
		return s.ioErr("check write access", s.root, err)
	}
	name := f.Name()
	f.Close()
	defer os.Remove(name)
	// Put publishes objects with os.Link: make sure the filesystem has hard links.
	if err := os.Link(name, name+".link"); err != nil {
		return s.ioErr("check hard links", s.root, err)
	}
	if err := os.Remove(name + ".link"); err != nil {
		return s.ioErr("check write access", s.root, err)
	}
	if err := os.Remove(name); err != nil {
		return s.ioErr("check write access", s.root, err)
	}
	return nil
}

// Put implements blob.Store.
func (s *Store) Put(ctx context.Context, sum [32]byte, data []byte) (bool, error) {
	if s.readOnly {
		return false, fmt.Errorf("fsstore: put %x: %w", sum, blob.ErrReadOnly)
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if err := blob.CheckSum(sum, data); err != nil {
		return false, fmt.Errorf("fsstore: put: %w", err)
	}
	path := s.Path(sum)
	return s.writeOnce("put", path, data, func() error { return s.existing(sum, path, data) })
}

// writeOnce creates the read-only file path holding data, never over an existing one: a
// temporary file in its directory, fsynced, hard-linked to path (which fails when path exists),
// then the directory fsynced. When path exists, or a concurrent writer links it first, existing
// decides (it compares what is stored with data). A symbolic link in place of the directory is
// refused (blob.ErrIntegrity): writing through it would put the file where reads never look.
// Put and PutCheckpoint write through it.
func (s *Store) writeOnce(op, path string, data []byte, existing func() error) (created bool, err error) {
	dir := filepath.Dir(path)
	if _, err := os.Lstat(path); err == nil {
		return false, existing()
	}
	if err := mkdirDurable(dir); err != nil {
		return false, s.ioErr(op, path, err)
	}
	if fi, err := os.Lstat(dir); err != nil {
		return false, s.ioErr(op, path, err)
	} else if !fi.IsDir() {
		return false, fmt.Errorf("fsstore: %s: %s is a %s, not a directory: %w", op, dir, typeName(fi.Mode().Type()), blob.ErrIntegrity)
	}
	tmp, err := writeTemp(dir, data)
	if err != nil {
		return false, s.ioErr(op, path, err)
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Lost a race with a concurrent writer (or another process): check what won.
			return false, existing()
		}
		return false, s.ioErr(op, path, err)
	}
	if err := os.Remove(tmp); err != nil {
		return false, s.ioErr(op, path, err)
	}
	if err := syncDir(dir); err != nil {
		return false, s.ioErr(op, path, err)
	}
	return true, nil
}

// existing compares the stored object with data and makes sure its directory entry is durable
// (a concurrent Put may have linked it and not yet synced the directory).
func (s *Store) existing(sum [32]byte, path string, data []byte) error {
	f, fi, err := s.open("put", sum)
	if err != nil {
		return err
	}
	defer f.Close()
	if fi.Size() != int64(len(data)) {
		return fmt.Errorf("fsstore: put: %s already stored with %d bytes, not %d: %w", path, fi.Size(), len(data), blob.ErrIntegrity)
	}
	if _, err := io.Copy(io.Discard, blob.NewVerifyingReader(f, sum, fi.Size())); err != nil {
		if errors.Is(err, blob.ErrIntegrity) {
			return fmt.Errorf("fsstore: put: existing %s differs: %w", path, err)
		}
		return s.ioErr("put", path, err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return s.ioErr("put", path, err)
	}
	return nil
}

// writeTemp writes data to a new read-only file in dir and fsyncs it.
func writeTemp(dir string, data []byte) (name string, err error) {
	f, err := os.CreateTemp(dir, tmpPrefix)
	if err != nil {
		return "", err
	}
	name = f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(name)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return "", err
	}
	if err = f.Chmod(0o444); err != nil {
		return "", err
	}
	if err = f.Sync(); err != nil {
		return "", err
	}
	if err = f.Close(); err != nil {
		return "", err
	}
	return name, nil
}

// Get implements blob.Store.
func (s *Store) Get(ctx context.Context, sum [32]byte) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, fi, err := s.open("get", sum)
	if err != nil {
		return nil, err
	}
	return blob.NewVerifyingReader(&fileReader{f: f, path: f.Name(), s: s}, sum, fi.Size()), nil
}

// open opens the object sum for reading without following symbolic links (see openNoFollow)
// and checks that it is a regular file: anything else is blob.ErrIntegrity.
func (s *Store) open(op string, sum [32]byte) (*os.File, fs.FileInfo, error) {
	path := s.Path(sum)
	k := blob.Key(sum)
	f, err := openNoFollow(s.root, objectsDir, k[len(blob.KeyPrefix):len(blob.KeyPrefix)+2], k[len(blob.KeyPrefix)+3:])
	if err != nil {
		if isLinkError(err) {
			return nil, nil, fmt.Errorf("fsstore: %s: %s or its directory is a symbolic link or not a regular file: %w: %v",
				op, path, blob.ErrIntegrity, err)
		}
		return nil, nil, s.ioErr(op, path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, s.ioErr(op, path, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("fsstore: %s: %s is not a regular file (%v): %w", op, path, fi.Mode().Type(), blob.ErrIntegrity)
	}
	return f, fi, nil
}

// fileReader turns read errors into ErrUnavailable.
type fileReader struct {
	f    *os.File
	path string
	s    *Store
}

func (r *fileReader) Read(p []byte) (int, error) {
	n, err := r.f.Read(p)
	if err != nil && err != io.EOF {
		err = r.s.ioErr("read", r.path, err)
	}
	return n, err
}

func (r *fileReader) Close() error { return r.f.Close() }

// Stat implements blob.Store. Mode is always "fs-readonly"; RetainUntil is zero.
func (s *Store) Stat(ctx context.Context, sum [32]byte) (blob.Info, error) {
	if err := ctx.Err(); err != nil {
		return blob.Info{}, err
	}
	path := s.Path(sum)
	f, fi, err := s.open("stat", sum)
	if err != nil {
		return blob.Info{}, err
	}
	f.Close()
	info := blob.Info{Size: fi.Size(), Mode: blob.ModeFSReadOnly}
	_, err = os.Lstat(s.holdPath(sum))
	switch {
	case err == nil:
		info.LegalHold = true
	case !errors.Is(err, fs.ErrNotExist):
		return blob.Info{}, s.ioErr("stat", path, err)
	}
	return info, nil
}

// SetLegalHold implements blob.Store: it creates or removes the marker file. The marker only
// records the hold; it does not stop anyone from deleting the object.
func (s *Store) SetLegalHold(ctx context.Context, sum [32]byte, on bool) error {
	if s.readOnly {
		return fmt.Errorf("fsstore: legal hold %x: %w", sum, blob.ErrReadOnly)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, err := os.Lstat(s.Path(sum)); err != nil {
		return s.ioErr("legal hold", s.Path(sum), err)
	}
	hold := s.holdPath(sum)
	dir := filepath.Dir(hold)
	if on {
		if err := mkdirDurable(dir); err != nil {
			return s.ioErr("legal hold", hold, err)
		}
		f, err := os.OpenFile(hold, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o444)
		if errors.Is(err, fs.ErrExist) {
			return nil
		}
		if err != nil {
			return s.ioErr("legal hold", hold, err)
		}
		if err := f.Close(); err != nil {
			return s.ioErr("legal hold", hold, err)
		}
	} else {
		err := os.Remove(hold)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return s.ioErr("legal hold", hold, err)
		}
	}
	if err := syncDir(dir); err != nil {
		return s.ioErr("legal hold", hold, err)
	}
	return nil
}

// Walk implements blob.Store. Regular files that are not content addresses (temporary files) are
// skipped; anything else that is not a regular file or a fan-out directory (a symbolic link, a
// device) fails the walk with an error wrapping blob.ErrIntegrity: AuditWalk names them all.
func (s *Store) Walk(ctx context.Context, fn func(sum [32]byte) error) error {
	return s.AuditWalk(ctx, fn, func(a blob.Anomaly) error {
		return fmt.Errorf("fsstore: walk: %w: %s", blob.ErrIntegrity, a)
	})
}

var _ blob.AuditWalker = (*Store)(nil)

// AuditWalk implements blob.AuditWalker: found gets a blob.AnomalyIrregular for every entry
// under ROOT/sha256 that Put does not make: a symbolic link (to a file or to a directory) or
// any other file that is neither a regular file nor a directory, in place of an object or of a
// fan-out directory. Regular files that are not content addresses are skipped, as in Walk.
func (s *Store) AuditWalk(ctx context.Context, fn func(sum [32]byte) error, found func(blob.Anomaly) error) error {
	top := filepath.Join(s.root, objectsDir)
	if fi, err := os.Lstat(top); err != nil {
		return s.ioErr("walk", top, err)
	} else if !fi.IsDir() {
		return found(blob.Anomaly{Kind: blob.AnomalyIrregular, Key: strings.TrimSuffix(blob.KeyPrefix, "/"),
			Detail: fmt.Sprintf("the objects directory is a %s: no object in it can be read", typeName(fi.Mode().Type()))})
	}
	dirs, err := os.ReadDir(top)
	if err != nil {
		return s.ioErr("walk", top, err)
	}
	for _, d := range dirs {
		if err := ctx.Err(); err != nil {
			return err
		}
		key := blob.KeyPrefix + d.Name()
		switch t := d.Type(); {
		case t.IsRegular():
			continue // a temporary file of Check, or something that is no object
		case !t.IsDir():
			if err := found(blob.Anomaly{Kind: blob.AnomalyIrregular, Key: key,
				Detail: fmt.Sprintf("a %s where only fan-out directories belong", typeName(t))}); err != nil {
				return err
			}
			continue
		case len(d.Name()) != 2:
			continue
		}
		sub := filepath.Join(top, d.Name())
		files, err := os.ReadDir(sub)
		if err != nil {
			return s.ioErr("walk", sub, err)
		}
		for _, f := range files {
			key := blob.KeyPrefix + d.Name() + "/" + f.Name()
			sum, ok := blob.ParseKey(key)
			if t := f.Type(); !t.IsRegular() {
				a := blob.Anomaly{Kind: blob.AnomalyIrregular, Key: key, Detail: fmt.Sprintf("a %s, not a regular file", typeName(t))}
				if ok {
					a.SHA256 = sum
					a.Detail += " in place of the object"
				}
				if err := found(a); err != nil {
					return err
				}
				continue
			}
			if !ok {
				continue
			}
			if err := fn(sum); err != nil {
				return err
			}
		}
	}
	return nil
}

// typeName names a file type for an anomaly's detail.
func typeName(t fs.FileMode) string {
	switch {
	case t&fs.ModeSymlink != 0:
		return "symbolic link"
	case t.IsDir():
		return "directory"
	case t&fs.ModeNamedPipe != 0:
		return "named pipe"
	case t&fs.ModeSocket != 0:
		return "socket"
	case t&fs.ModeDevice != 0:
		return "device"
	}
	return "irregular file (" + t.String() + ")"
}

// ioErr classifies err: a missing file is blob.ErrNotFound, a read-only filesystem or denied
// write blob.ErrReadOnly, anything else blob.ErrUnavailable.
func (s *Store) ioErr(op, path string, err error) error {
	switch {
	case errors.Is(err, blob.ErrIntegrity) || errors.Is(err, blob.ErrUnavailable) ||
		errors.Is(err, blob.ErrNotFound) || errors.Is(err, blob.ErrReadOnly):
		return fmt.Errorf("fsstore: %s %s: %w", op, path, err)
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("fsstore: %s %s: %w", op, path, blob.ErrNotFound)
	case errors.Is(err, syscall.EROFS) || errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("fsstore: %s %s: %w: %w", op, path, blob.ErrReadOnly, err)
	}
	return fmt.Errorf("fsstore: %s %s: %w: %w", op, path, blob.ErrUnavailable, err)
}

// mkdirDurable creates dir and missing parents, fsyncing each new directory's parent.
func mkdirDurable(dir string) error {
	fi, err := os.Stat(dir)
	if err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirDurable(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o750); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return syncDir(parent)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOTSUP) {
		return err
	}
	return nil
}

//go:build unix

package fsstore

import (
	"errors"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// openNoFollow opens the regular file root/elems[0]/.../elems[n-1] for reading without following
// a symbolic link at any of those steps: each is opened relative to the one before with
// O_NOFOLLOW, so a link planted in place of an object or of its directory fails with ELOOP (or
// ENOTDIR) instead of being read through. root itself is the configured directory and may be
// reached through links. The last step is opened non-blocking, so a FIFO put in place of an
// object cannot hang the reader; the caller checks that it got a regular file.
func openNoFollow(root string, elems ...string) (*os.File, error) {
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: root, Err: err}
	}
	path := root
	for i, e := range elems {
		path = filepath.Join(path, e)
		flags := unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC
		if i < len(elems)-1 {
			flags |= unix.O_DIRECTORY
		} else {
			flags |= unix.O_NONBLOCK
		}
		next, err := unix.Openat(fd, e, flags, 0)
		unix.Close(fd)
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: path, Err: err}
		}
		fd = next
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// isLinkError reports whether err is what openNoFollow returns for a symbolic link (or another
// file that is not a directory) on its way.
func isLinkError(err error) bool {
	return errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR)
}

//go:build !unix

package fsstore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

var errLink = errors.New("fsstore: a symbolic link or irregular file is on the way")

// openNoFollow opens root/elems... for reading, refusing (errLink) when any step is a symbolic
// link. Without openat, a link put in place between the checks and the open is not seen.
func openNoFollow(root string, elems ...string) (*os.File, error) {
	path := root
	for i, e := range elems {
		path = filepath.Join(path, e)
		fi, err := os.Lstat(path)
		if err != nil {
			return nil, err
		}
		if fi.Mode()&fs.ModeSymlink != 0 || (i < len(elems)-1 && !fi.IsDir()) {
			return nil, &os.PathError{Op: "open", Path: path, Err: errLink}
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return f, nil
}

func isLinkError(err error) bool { return errors.Is(err, errLink) }

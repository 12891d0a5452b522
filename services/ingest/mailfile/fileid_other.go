//go:build !unix

package mailfile

import (
	"io/fs"
	"path/filepath"
)

// fileID identifies a folder however it is reached: its path with every symbolic link resolved.
type fileID struct{ path string }

func idOf(path string, _ fs.FileInfo) (fileID, error) {
	p, err := filepath.EvalSymlinks(path)
	if err != nil {
		return fileID{}, err
	}
	p, err = filepath.Abs(p)
	return fileID{path: p}, err
}

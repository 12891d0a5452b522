//go:build unix

package mailfile

import (
	"io/fs"
	"syscall"
)

// fileID identifies a folder however it is reached: its device and inode.
type fileID struct{ dev, ino uint64 }

func idOf(_ string, fi fs.FileInfo) (fileID, error) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, syscall.EINVAL
	}
	return fileID{dev: uint64(st.Dev), ino: uint64(st.Ino)}, nil
}

package fsstore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pecarchive/pecarchive/services/archive/blob"
	"github.com/pecarchive/pecarchive/services/archive/blob/blobtest"
	"github.com/pecarchive/pecarchive/services/archive/blob/fsstore"
)

// auditWalk walks s, returning the objects listed and the anomalies found.
func auditWalk(t *testing.T, s *fsstore.Store) (map[[32]byte]bool, []blob.Anomaly) {
	t.Helper()
	objs := map[[32]byte]bool{}
	var found []blob.Anomaly
	err := s.AuditWalk(context.Background(), func(sum [32]byte) error {
		objs[sum] = true
		return nil
	}, func(a blob.Anomaly) error {
		found = append(found, a)
		return nil
	})
	if err != nil {
		t.Fatalf("AuditWalk: %v", err)
	}
	return objs, found
}

// An insider replaces a stored object by a symbolic link to a file of theirs holding the same
// bytes (to be changed later, or pointing outside the store): reads refuse it instead of
// following it, and the walk names it instead of skipping it.
func TestSymlinkedObject(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no symbolic links")
	}
	ctx := context.Background()
	s := newStore(t).(*fsstore.Store)
	data, sum := blobtest.Data(20, 500)
	other, otherSum := blobtest.Data(21, 500)
	for _, p := range []struct {
		d []byte
		s [32]byte
	}{{data, sum}, {other, otherSum}} {
		if _, err := s.Put(ctx, p.s, p.d); err != nil {
			t.Fatal(err)
		}
	}
	outside := filepath.Join(t.TempDir(), "copy")
	if err := os.WriteFile(outside, data, 0o644); err != nil {
		t.Fatal(err)
	}
	path := s.Path(sum)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, path); err != nil {
		t.Fatal(err)
	}

	if got, err := blobtest.ReadAll(t, s, sum); !errors.Is(err, blob.ErrIntegrity) {
		t.Fatalf("Get of a symlinked object = %d bytes, %v; want ErrIntegrity", len(got), err)
	}
	if _, err := s.Stat(ctx, sum); !errors.Is(err, blob.ErrIntegrity) {
		t.Fatalf("Stat of a symlinked object = %v, want ErrIntegrity", err)
	}
	if _, err := s.Put(ctx, sum, data); !errors.Is(err, blob.ErrIntegrity) {
		t.Fatalf("Put over a symlinked object = %v, want ErrIntegrity", err)
	}
	if err := s.Walk(ctx, func([32]byte) error { return nil }); !errors.Is(err, blob.ErrIntegrity) {
		t.Fatalf("Walk over a symlinked object = %v, want ErrIntegrity", err)
	}
	objs, found := auditWalk(t, s)
	if len(objs) != 1 || !objs[otherSum] {
		t.Fatalf("AuditWalk listed %d objects, want only the intact one", len(objs))
	}
	if len(found) != 1 || found[0].Kind != blob.AnomalyIrregular || found[0].SHA256 != sum ||
		found[0].Key != blob.Key(sum) || !strings.Contains(found[0].Detail, "symbolic link") {
		t.Fatalf("AuditWalk found %v, want the symlinked object", found)
	}
	// The intact object still reads.
	if got, err := blobtest.ReadAll(t, s, otherSum); err != nil || string(got) != string(other) {
		t.Fatalf("Get of the intact object: %v", err)
	}
}

// A fan-out directory replaced by a symbolic link to a copy of it: reads do not go through it,
// Put does not write through it, and the walk names it.
func TestSymlinkedDirectory(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no symbolic links")
	}
	ctx := context.Background()
	s := newStore(t).(*fsstore.Store)
	data, sum := blobtest.Data(22, 300)
	if _, err := s.Put(ctx, sum, data); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(s.Path(sum))
	copyDir := filepath.Join(t.TempDir(), "fanout")
	if err := os.Rename(dir, copyDir); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(copyDir, dir); err != nil {
		t.Fatal(err)
	}
	if _, err := blobtest.ReadAll(t, s, sum); !errors.Is(err, blob.ErrIntegrity) {
		t.Fatalf("Get through a symlinked directory = %v, want ErrIntegrity", err)
	}
	// Another object of the same fan-out directory is not written through the link.
	var data2 []byte
	var sum2 [32]byte
	for i := uint64(100); ; i++ {
		if data2, sum2 = blobtest.Data(i, 300); sum2[0] == sum[0] {
			break
		}
	}
	if _, err := s.Put(ctx, sum2, data2); !errors.Is(err, blob.ErrIntegrity) {
		t.Fatalf("Put through a symlinked directory = %v, want ErrIntegrity", err)
	}
	if entries, _ := os.ReadDir(copyDir); len(entries) != 1 {
		t.Fatalf("the link's target has %d entries, want the one moved there", len(entries))
	}
	objs, found := auditWalk(t, s)
	if len(objs) != 0 || len(found) != 1 || found[0].Key != blob.Key(sum)[:len(blob.KeyPrefix)+2] {
		t.Fatalf("AuditWalk: %d objects, found %v; want the symlinked directory named", len(objs), found)
	}
}

// A named pipe in place of an object fails the read at once instead of blocking on it.
func TestFIFOObject(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no named pipes")
	}
	s := newStore(t).(*fsstore.Store)
	data, sum := blobtest.Data(23, 300)
	if _, err := s.Put(context.Background(), sum, data); err != nil {
		t.Fatal(err)
	}
	path := s.Path(sum)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Skip(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := blobtest.ReadAll(t, s, sum)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, blob.ErrIntegrity) {
			t.Fatalf("Get of a FIFO = %v, want ErrIntegrity", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Get of a FIFO blocked")
	}
	if _, found := auditWalk(t, s); len(found) != 1 || found[0].SHA256 != sum || !strings.Contains(found[0].Detail, "named pipe") {
		t.Fatalf("AuditWalk found %v, want the FIFO", found)
	}
}

// A symbolic link in place of the objects directory: Check refuses the store.
func TestSymlinkedObjectsDirectory(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no symbolic links")
	}
	root := filepath.Join(t.TempDir(), "blobs")
	s, err := fsstore.New(context.Background(), fsstore.Config{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	elsewhere := filepath.Join(t.TempDir(), "objects")
	if err := os.Rename(filepath.Join(root, "sha256"), elsewhere); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, filepath.Join(root, "sha256")); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("Check with a symlinked objects directory = %v", err)
	}
	if _, found := auditWalk(t, s); len(found) != 1 {
		t.Fatalf("AuditWalk found %v, want the objects directory", found)
	}
}

// A named pipe in place of a checkpoint fails that checkpoint at once instead of blocking the
// listing (and with it the archive's publish and the audit) or a PutCheckpoint of that size.
func TestFIFOCheckpoint(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no named pipes")
	}
	ctx := context.Background()
	s := newStore(t).(*fsstore.Store)
	if _, err := s.PutCheckpoint(ctx, 3, blobtest.CheckpointText(3, "a")); err != nil {
		t.Fatal(err)
	}
	path := s.CheckpointPath(4, blobtest.CheckpointText(4, "a"))
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Skip(err)
	}
	done := make(chan error, 1)
	go func() {
		var cs []blob.Checkpoint
		err := s.Checkpoints(ctx, 0, func(c blob.Checkpoint) error {
			cs = append(cs, c)
			return nil
		})
		if err == nil && (len(cs) != 2 || cs[1].Size != 4 || !strings.Contains(cs[1].Versions[0].Problem, "not a regular file")) {
			err = fmt.Errorf("listed %v, want checkpoint 3 and the FIFO reported", cs)
		}
		if err == nil {
			if _, perr := s.PutCheckpoint(ctx, 4, blobtest.CheckpointText(4, "a")); !errors.Is(perr, blob.ErrIntegrity) {
				err = fmt.Errorf("PutCheckpoint over a FIFO = %v, want ErrIntegrity", perr)
			}
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a FIFO in place of a checkpoint blocked")
	}
}

// The checkpoints directory replaced by a symbolic link to a copy of it: the listing and
// PutCheckpoint refuse it (ErrIntegrity) instead of reading or writing checkpoints elsewhere.
func TestSymlinkedCheckpointsDirectory(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no symbolic links")
	}
	ctx := context.Background()
	s := newStore(t).(*fsstore.Store)
	if _, err := s.PutCheckpoint(ctx, 3, blobtest.CheckpointText(3, "a")); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(s.CheckpointPath(3, nil))
	elsewhere := filepath.Join(t.TempDir(), "checkpoints")
	if err := os.Rename(dir, elsewhere); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, dir); err != nil {
		t.Fatal(err)
	}
	err := s.Checkpoints(ctx, 0, func(blob.Checkpoint) error { return nil })
	if !errors.Is(err, blob.ErrIntegrity) || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("Checkpoints through a symlinked directory = %v, want ErrIntegrity naming the link", err)
	}
	if _, err := s.PutCheckpoint(ctx, 5, blobtest.CheckpointText(5, "a")); !errors.Is(err, blob.ErrIntegrity) {
		t.Fatalf("PutCheckpoint through a symlinked directory = %v, want ErrIntegrity", err)
	}
	if entries, _ := os.ReadDir(elsewhere); len(entries) != 1 {
		t.Fatalf("the link's target has %d entries, want the one moved there", len(entries))
	}
}

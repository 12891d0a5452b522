package fsstore_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/pecarchive/pecarchive/services/archive/blob"
	"github.com/pecarchive/pecarchive/services/archive/blob/blobtest"
	"github.com/pecarchive/pecarchive/services/archive/blob/fsstore"
)

func TestCheckpointConformance(t *testing.T) {
	blobtest.RunCheckpoints(t, func(t *testing.T) blob.CheckpointStore {
		return newStore(t).(*fsstore.Store)
	}, &blobtest.CheckpointOptions{
		PutRaw: func(t *testing.T, s blob.CheckpointStore, key string, data []byte) {
			path := filepath.Join(s.(*fsstore.Store).Root(), filepath.FromSlash(key))
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, data, 0o444); err != nil {
				t.Fatal(err)
			}
		},
		Symlink: func(t *testing.T, s blob.CheckpointStore, key string, data []byte) {
			path := filepath.Join(s.(*fsstore.Store).Root(), filepath.FromSlash(key))
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			target := filepath.Join(t.TempDir(), "elsewhere")
			if err := os.WriteFile(target, data, 0o444); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, path); err != nil {
				t.Fatal(err)
			}
		},
	})
}

func TestCheckpointFiles(t *testing.T) {
	s := newStore(t).(*fsstore.Store)
	ctx := context.Background()
	data := blobtest.CheckpointText(77, "a")
	if _, err := s.PutCheckpoint(ctx, 77, data); err != nil {
		t.Fatal(err)
	}
	path := s.CheckpointPath(77, data)
	if want := filepath.Join(s.Root(), "checkpoints", fmt.Sprintf("00000000000000000077.%x", sha256.Sum256(data))); path != want {
		t.Fatalf("path %s, want %s", path, want)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o444 {
		t.Fatalf("checkpoint file: %v, %v; want mode 0444", fi, err)
	}
	// A temporary file and a foreign name beside it are not checkpoints.
	os.WriteFile(filepath.Join(filepath.Dir(path), ".tmp-1"), []byte("partial"), 0o644)
	os.WriteFile(filepath.Join(filepath.Dir(path), "README"), []byte("x"), 0o644)
	if cs := blobtest.ListCheckpoints(t, s, 0); len(cs) != 1 || cs[0].Size != 77 {
		t.Fatalf("listed %v, want only checkpoint 77", cs)
	}
	r, err := fsstore.New(ctx, fsstore.Config{Root: s.Root(), ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.PutCheckpoint(ctx, 78, data); !errors.Is(err, blob.ErrReadOnly) {
		t.Fatalf("read-only PutCheckpoint = %v, want ErrReadOnly", err)
	}
	if cs := blobtest.ListCheckpoints(t, r, 0); len(cs) != 1 {
		t.Fatalf("read-only store lists %d checkpoints", len(cs))
	}
}

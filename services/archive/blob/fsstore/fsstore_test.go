package fsstore_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/pecarchive/pecarchive/services/archive/blob"
	"github.com/pecarchive/pecarchive/services/archive/blob/blobtest"
	"github.com/pecarchive/pecarchive/services/archive/blob/fsstore"
)

func newStore(t *testing.T) blob.Store {
	s, err := fsstore.New(context.Background(), fsstore.Config{Root: filepath.Join(t.TempDir(), "blobs")})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// writeRaw replaces the file of sum with data, as a foreign writer or bad disk would.
func writeRaw(t *testing.T, s blob.Store, sum [32]byte, data []byte) {
	t.Helper()
	path := s.(*fsstore.Store).Path(sum)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err == nil {
		if err := os.Chmod(path, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o444); err != nil {
		t.Fatal(err)
	}
}

func TestConformance(t *testing.T) {
	blobtest.Run(t, newStore, &blobtest.Options{
		Modes: []string{blob.ModeFSReadOnly},
		Corrupt: func(t *testing.T, s blob.Store, sum [32]byte) {
			path := s.(*fsstore.Store).Path(sum)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)/2] ^= 0x01
			writeRaw(t, s, sum, b)
		},
		PutRaw: writeRaw,
	})
}

func TestFileIsReadOnlyAndLayout(t *testing.T) {
	s := newStore(t).(*fsstore.Store)
	data, sum := blobtest.Data(1, 100)
	if _, err := s.Put(context.Background(), sum, data); err != nil {
		t.Fatal(err)
	}
	path := s.Path(sum)
	k := blob.Key(sum)
	if want := filepath.Join(s.Root(), filepath.FromSlash(k)); path != want {
		t.Fatalf("path %s, want %s", path, want)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o444 {
		t.Fatalf("mode %v, want 0444", fi.Mode().Perm())
	}
	// No temporary files are left behind.
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("directory has %d entries, want only the object", len(entries))
	}
	if runtime.GOOS != "windows" && os.Geteuid() != 0 {
		if err := os.WriteFile(path, []byte("x"), 0o644); err == nil {
			t.Fatal("a non-root user could overwrite the stored file")
		}
	}
}

func TestWalkSkipsForeignFiles(t *testing.T) {
	s := newStore(t).(*fsstore.Store)
	data, sum := blobtest.Data(2, 100)
	if _, err := s.Put(context.Background(), sum, data); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(s.Path(sum))
	os.WriteFile(filepath.Join(dir, ".tmp-123"), []byte("partial"), 0o644)
	os.WriteFile(filepath.Join(dir, strings.ToUpper(filepath.Base(s.Path(sum)))), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(s.Root(), "sha256", "README"), []byte("x"), 0o644)
	n := 0
	if err := s.Walk(context.Background(), func(got [32]byte) error {
		if got != sum {
			t.Errorf("Walk listed %x", got)
		}
		n++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("Walk listed %d, want 1", n)
	}
}

func TestReadOnly(t *testing.T) {
	root := filepath.Join(t.TempDir(), "blobs")
	if _, err := fsstore.New(context.Background(), fsstore.Config{Root: root, ReadOnly: true}); !errors.Is(err, blob.ErrUnavailable) {
		t.Fatalf("read-only New on a missing directory = %v, want ErrUnavailable", err)
	}
	w, err := fsstore.New(context.Background(), fsstore.Config{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	data, sum := blobtest.Data(3, 100)
	if _, err := w.Put(context.Background(), sum, data); err != nil {
		t.Fatal(err)
	}
	r, err := fsstore.New(context.Background(), fsstore.Config{Root: root, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Put(context.Background(), sum, data); !errors.Is(err, blob.ErrReadOnly) {
		t.Fatalf("read-only Put = %v, want ErrReadOnly", err)
	}
	if err := r.SetLegalHold(context.Background(), sum, true); !errors.Is(err, blob.ErrReadOnly) {
		t.Fatalf("read-only SetLegalHold = %v, want ErrReadOnly", err)
	}
	if got, err := blobtest.ReadAll(t, r, sum); err != nil || string(got) != string(data) {
		t.Fatalf("read-only Get = %v", err)
	}
}

func TestCheckNotWritable(t *testing.T) {
	if os.Geteuid() == 0 || runtime.GOOS == "windows" {
		t.Skip("root can write anywhere")
	}
	root := filepath.Join(t.TempDir(), "blobs")
	s, err := fsstore.New(context.Background(), fsstore.Config{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(root, "sha256"), 0o555)
	t.Cleanup(func() { os.Chmod(filepath.Join(root, "sha256"), 0o755) })
	if err := s.Check(context.Background()); !errors.Is(err, blob.ErrReadOnly) {
		t.Fatalf("Check on a read-only directory = %v, want ErrReadOnly", err)
	}
}

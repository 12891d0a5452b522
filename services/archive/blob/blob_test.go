package blob_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/pecarchive/pecarchive/services/archive/blob"
)

func TestKey(t *testing.T) {
	sum := sha256.Sum256([]byte("abc"))
	k := blob.Key(sum)
	if want := "sha256/ba/ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"; k != want {
		t.Fatalf("Key = %q, want %q", k, want)
	}
	got, ok := blob.ParseKey(k)
	if !ok || got != sum {
		t.Fatalf("ParseKey(%q) = %x, %v", k, got, ok)
	}
	for _, bad := range []string{
		"", "sha256/", k + "x", k[:len(k)-1], strings.ToUpper(k), "sha256/bb/" + k[10:],
		"sha1/ba/" + k[10:], "sha256/ba" + k[10:], "sha256/ba//" + k[10:], "sha256/ba/ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015aZ",
	} {
		if _, ok := blob.ParseKey(bad); ok {
			t.Errorf("ParseKey(%q) accepted", bad)
		}
	}
}

func FuzzParseKey(f *testing.F) {
	f.Add(blob.Key(sha256.Sum256(nil)))
	f.Add("sha256/00/" + strings.Repeat("0", 64))
	f.Add("sha256/0/")
	f.Fuzz(func(t *testing.T, key string) {
		sum, ok := blob.ParseKey(key)
		if ok && blob.Key(sum) != key {
			t.Fatalf("ParseKey(%q) accepted a non-canonical key (%q)", key, blob.Key(sum))
		}
	})
}

func TestCheckSum(t *testing.T) {
	data := []byte("hello")
	if err := blob.CheckSum(sha256.Sum256(data), data); err != nil {
		t.Fatal(err)
	}
	if err := blob.CheckSum(sha256.Sum256(data), []byte("hellO")); !errors.Is(err, blob.ErrIntegrity) {
		t.Fatalf("CheckSum mismatch = %v", err)
	}
}

func TestVerifyingReader(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 1000)
	sum := sha256.Sum256(data)
	read := func(b []byte, size int64) ([]byte, error) {
		r := blob.NewVerifyingReader(io.NopCloser(iotest.HalfReader(bytes.NewReader(b))), sum, size)
		defer r.Close()
		return io.ReadAll(r)
	}
	if got, err := read(data, int64(len(data))); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("good read: %v", err)
	}
	if _, err := read(data, -1); err != nil {
		t.Fatalf("good read, unknown size: %v", err)
	}
	bad := bytes.Clone(data)
	bad[5000] ^= 1
	if _, err := read(bad, int64(len(bad))); !errors.Is(err, blob.ErrIntegrity) {
		t.Fatalf("corrupt read: %v", err)
	}
	if _, err := read(data[:9999], 10000); !errors.Is(err, blob.ErrIntegrity) {
		t.Fatalf("short read: %v", err)
	}
	if _, err := read(append(bytes.Clone(data), 'x'), 10000); !errors.Is(err, blob.ErrIntegrity) {
		t.Fatalf("long read: %v", err)
	}
	// The error is sticky and reading on does not turn it into EOF.
	r := blob.NewVerifyingReader(io.NopCloser(bytes.NewReader(bad)), sum, -1)
	io.ReadAll(r)
	if _, err := r.Read(make([]byte, 10)); !errors.Is(err, blob.ErrIntegrity) {
		t.Fatalf("read after failure: %v", err)
	}
	// Other read errors pass through.
	boom := errors.New("boom")
	r = blob.NewVerifyingReader(io.NopCloser(iotest.ErrReader(boom)), sum, -1)
	if _, err := io.ReadAll(r); !errors.Is(err, boom) {
		t.Fatalf("read error: %v", err)
	}
}

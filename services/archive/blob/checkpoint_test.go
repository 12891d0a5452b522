package blob_test

import (
	"crypto/sha256"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/pecarchive/pecarchive/services/archive/blob"
)

func TestCheckpointKey(t *testing.T) {
	signed := []byte("a checkpoint")
	sum := sha256.Sum256(signed)
	for _, n := range []uint64{0, 1, 42, 1 << 40, math.MaxUint64} {
		k := blob.CheckpointKey(n, signed)
		if len(k) != len(blob.CheckpointPrefix)+20+1+64 {
			t.Fatalf("CheckpointKey(%d) = %q: not 20 digits, a dot and a SHA-256", n, k)
		}
		if got, gotSum, ok := blob.ParseCheckpointKey(k); !ok || got != n || gotSum != sum {
			t.Fatalf("ParseCheckpointKey(%q) = %d, %x, %v", k, got, gotSum, ok)
		}
		if after := blob.CheckpointsAfter(n); n > 0 && !(blob.CheckpointKey(n-1, []byte{0xff}) < after && after < k) {
			t.Fatalf("CheckpointsAfter(%d) = %q does not sort between the keys of %d and %d", n, after, n-1, n)
		}
	}
	if blob.CheckpointKey(9, []byte("z")) >= blob.CheckpointKey(10, []byte("a")) {
		t.Fatal("keys do not sort as sizes")
	}
	good := blob.CheckpointKey(1, signed)
	for _, k := range []string{"", "checkpoints/1", "checkpoints/00000000000000000001", good[:len(good)-1], good + "0",
		strings.Replace(good, ".", "-", 1), strings.ToUpper(good), "sha256/" + strings.TrimPrefix(good, blob.CheckpointPrefix),
		"checkpoints/99999999999999999999" + good[len(blob.CheckpointPrefix)+20:]} {
		if _, _, ok := blob.ParseCheckpointKey(k); ok {
			t.Errorf("ParseCheckpointKey(%q) accepted", k)
		}
	}
}

// TestCheckStored: the genuine bytes of a key must hash to the SHA-256 it names.
func TestCheckStored(t *testing.T) {
	signed := []byte("a checkpoint")
	c := blob.Checkpoint{SHA256: sha256.Sum256(signed), Versions: []blob.CheckpointVersion{{Signed: signed}}}
	if blob.CheckStored(&c); c.Versions[0].Problem != "" {
		t.Fatalf("the key's own bytes: %q", c.Versions[0].Problem)
	}
	c.Versions[0].Signed = []byte("other bytes")
	if blob.CheckStored(&c); c.Versions[0].Signed != nil || c.Versions[0].Problem == "" {
		t.Fatal("other bytes than the key names were kept")
	}
}

func TestCheckpointGenuine(t *testing.T) {
	t0 := time.Unix(1000, 0)
	c := blob.Checkpoint{Size: 3, Versions: []blob.CheckpointVersion{
		{ID: "dm0", DeleteMarker: true, Modified: t0},
		{ID: "v1", Modified: t0.Add(time.Second), Signed: []byte("first")},
		{ID: "v2", Modified: t0.Add(2 * time.Second)},
		{ID: "dm3", DeleteMarker: true, Modified: t0.Add(3 * time.Second)},
	}}
	g, ok := c.Genuine()
	if !ok || g.ID != "v1" {
		t.Fatalf("Genuine = %v, %v; want v1", g, ok)
	}
	sh := c.Shadows()
	if len(sh) != 3 || sh[0].ID != "dm0" || sh[1].ID != "v2" || sh[2].ID != "dm3" {
		t.Fatalf("Shadows = %v", sh)
	}
	if s := sh[2].String(); s != "delete marker dm3 of 1970-01-01T00:16:43Z" {
		t.Fatalf("String = %q", s)
	}
	only := blob.Checkpoint{Versions: []blob.CheckpointVersion{{DeleteMarker: true}}}
	if _, ok := only.Genuine(); ok || len(only.Shadows()) != 1 {
		t.Fatal("a key of delete markers only has a genuine version")
	}
}

package blob_test

import (
	"math"
	"testing"
	"time"

	"github.com/pecarchive/pecarchive/services/archive/blob"
)

func TestCheckpointKey(t *testing.T) {
	for _, n := range []uint64{0, 1, 42, 1 << 40, math.MaxUint64} {
		k := blob.CheckpointKey(n)
		if len(k) != len(blob.CheckpointPrefix)+20 {
			t.Fatalf("CheckpointKey(%d) = %q: not 20 digits", n, k)
		}
		if got, ok := blob.ParseCheckpointKey(k); !ok || got != n {
			t.Fatalf("ParseCheckpointKey(%q) = %d, %v", k, got, ok)
		}
	}
	if blob.CheckpointKey(9) >= blob.CheckpointKey(10) {
		t.Fatal("keys do not sort as sizes")
	}
	for _, k := range []string{"", "checkpoints/1", "checkpoints/0000000000000000001x", "sha256/00000000000000000001",
		"checkpoints/99999999999999999999", "checkpoints/-0000000000000000001"} {
		if _, ok := blob.ParseCheckpointKey(k); ok {
			t.Errorf("ParseCheckpointKey(%q) accepted", k)
		}
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

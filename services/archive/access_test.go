package archive_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/pecarchive/pecarchive/services/archive"
	"github.com/pecarchive/pecarchive/services/archive/catalog"
	"github.com/pecarchive/pecarchive/tlog"
)

// Access records are committed through the group commit with Store calls: each gets a leaf of
// kind access after the batch's messages, whose SHA256 is the digest of what was returned and
// whose Extra the digest of its catalog row.
func TestRecordAccess(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	c := newConversation(t, f, "Accessi")
	acc := f.store(c.acc.Bytes, archive.Source{Path: "acc"})

	rec, err := f.a.RecordAccess(ctx, catalog.Access{Principal: "segreteria", Auth: "token",
		Method: "/pecarchive.query.v1.EvidenceService/ProveDelivery", Selector: "msgid=" + c.orig.MessageID,
		Returned: [][32]byte{acc.SHA256}, Recorder: "query"})
	if err != nil {
		t.Fatal(err)
	}
	if rec.LeafIndex != acc.LeafIndex+1 || rec.At.IsZero() {
		t.Fatalf("record: %+v", rec)
	}
	data, err := f.log.LeafData(ctx, rec.LeafIndex)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := tlog.ParseLeaf(data)
	if err != nil {
		t.Fatal(err)
	}
	if leaf.Kind != tlog.KindAccess || leaf.SHA256 != rec.ReturnedDigest() || leaf.Extra != rec.LeafExtra() ||
		!leaf.Time.Equal(rec.At.Truncate(1e9)) {
		t.Errorf("leaf %+v for record %+v", leaf, rec)
	}
	var rows []catalog.Access
	catalog.New(f.pool).ScanAccesses(ctx, 0, func(a catalog.Access) error { rows = append(rows, a); return nil })
	if len(rows) != 1 || rows[0].Digest() != rec.Digest() || rows[0].LeafIndex != rec.LeafIndex {
		t.Errorf("rows %+v, record %+v", rows, rec)
	}

	// Many at once, mixed with stores: every one recorded once, leaves contiguous.
	before := f.logSize()
	var wg sync.WaitGroup
	errs := make(chan error, 60)
	leaves := make(chan uint64, 50)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := f.a.RecordAccess(ctx, catalog.Access{Principal: fmt.Sprint("p", i), Method: "/m", Returned: [][32]byte{sha256.Sum256([]byte{byte(i)})}})
			errs <- err
			leaves <- r.LeafIndex
		}()
	}
	for i, raw := range [][]byte{c.nonDel.Bytes, c.env.Bytes, c.warn.Bytes} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := f.a.Store(ctx, raw, archive.Source{Path: fmt.Sprint(i)})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	close(leaves)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	seen := map[uint64]bool{}
	for l := range leaves {
		if l < before || seen[l] {
			t.Errorf("leaf %d reused or before %d", l, before)
		}
		seen[l] = true
	}
	if got := f.logSize(); got != before+53 || f.count("accesses") != 51 || f.a.Stats().Accesses != 51 {
		t.Errorf("log %d (want %d), %d access rows, stats %d", got, before+53, f.count("accesses"), f.a.Stats().Accesses)
	}

	for _, bad := range []catalog.Access{{Method: "/m"}, {Principal: "p"}} {
		if _, err := f.a.RecordAccess(ctx, bad); !errors.Is(err, archive.ErrInvalid) {
			t.Errorf("RecordAccess(%+v): %v, want ErrInvalid", bad, err)
		}
	}
	if err := f.a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := f.a.RecordAccess(ctx, catalog.Access{Principal: "p", Method: "/m"}); !errors.Is(err, archive.ErrClosed) {
		t.Errorf("after Close: %v, want ErrClosed", err)
	}
}

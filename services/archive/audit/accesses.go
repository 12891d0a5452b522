package audit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pecarchive/pecarchive/services/archive/catalog"
	"github.com/pecarchive/pecarchive/tlog"
)

// Finding kinds of the access records (catalog accesses rows and the log's access leaves).
const (
	AccessAltered          = "access-altered"             // an access row differs from what its leaf commits to
	AccessLeafMismatch     = "access-leaf-mismatch"       // an access row's leaf is not an access leaf, or carries no access digest
	AccessNotInLog         = "access-not-in-log"          // an access row's leaf index is beyond the log
	AccessLeafNotInCatalog = "access-leaf-not-in-catalog" // an access leaf no access row records (a row deleted)
)

// accesses merges the access rows (by leaf index) with the log's leaves, so that a read of
// evidence recorded in the log cannot lose or change its catalog row unseen, and a row cannot
// claim a read the log does not hold.
func (a *auditor) accesses(ctx context.Context, size uint64) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rows := make(chan catalog.Access, catalog.MaxLimit)
	scanErr := make(chan error, 1)
	go func() {
		defer close(rows)
		scanErr <- a.cat.ScanAccesses(ctx, 0, func(x catalog.Access) error {
			select {
			case rows <- x:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	drain := func() {
		cancel()
		for range rows {
		}
	}
	next := func() *catalog.Access {
		x, ok := <-rows
		if !ok {
			return nil
		}
		return &x
	}
	row := next()
	err := a.cfg.Log.Leaves(ctx, func(i uint64, data []byte) error {
		if i >= size {
			return errStop
		}
		leaf, perr := tlog.ParseLeaf(data)
		if row != nil && row.LeafIndex == i {
			a.rep.AccessRows++
			a.compareAccess(row, leaf, perr)
			row = next()
			return nil
		}
		if perr == nil && leaf.Kind == tlog.KindAccess {
			a.add(Finding{Kind: AccessLeafNotInCatalog, SHA256: leaf.SHA256, LeafIndex: int64(i),
				Detail: "no access row records this access leaf"})
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		drain()
		return fmt.Errorf("audit: log leaves: %w", err)
	}
	end, err := a.cfg.Log.Size(ctx)
	if err != nil {
		drain()
		return fmt.Errorf("audit: log size: %w", err)
	}
	for ; row != nil; row = next() {
		if row.LeafIndex >= end {
			a.rep.AccessRows++
			a.add(Finding{Kind: AccessNotInLog, LeafIndex: int64(row.LeafIndex),
				Detail: fmt.Sprintf("access by %q: leaf index beyond the log size %d", row.Principal, end)})
		}
	}
	if err := <-scanErr; err != nil {
		return fmt.Errorf("audit: catalog accesses: %w", err)
	}
	return nil
}

// compareAccess checks one access row against the leaf at its index.
func (a *auditor) compareAccess(x *catalog.Access, leaf tlog.Leaf, perr error) {
	f := Finding{Kind: AccessAltered, LeafIndex: int64(x.LeafIndex)}
	switch {
	case perr != nil:
		f.Kind, f.Detail = AccessLeafMismatch, "the access row's leaf does not parse"
	case leaf.Kind != tlog.KindAccess:
		f.Kind, f.Detail = AccessLeafMismatch, fmt.Sprintf("the access row's leaf is a %q leaf", leaf.Kind)
	case !leaf.Time.Equal(x.At.Truncate(time.Second)):
		f.Detail = fmt.Sprintf("access by %q at %s, the leaf says %s", x.Principal, x.At.Format(time.RFC3339), leaf.Time.Format(time.RFC3339))
	case leaf.SHA256 != x.ReturnedDigest():
		f.Detail = fmt.Sprintf("access by %q: the messages returned differ from what the leaf commits to", x.Principal)
	default:
		d, err := catalog.ParseAccessLeafExtra(leaf.Extra)
		switch {
		case err != nil:
			f.Kind, f.Detail = AccessLeafMismatch, "the leaf carries no access digest: "+err.Error()
		case d != x.Digest():
			f.Detail = fmt.Sprintf("access by %q: the row differs from what its leaf commits to (who, what, when)", x.Principal)
		default:
			return
		}
	}
	a.add(f)
}

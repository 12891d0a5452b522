package archive

import (
	"context"
	"fmt"

	"github.com/pecarchive/pecarchive/services/archive/catalog"
)

// RecordAccess records one read of evidence (who, which RPC, what selector, which messages it
// returned) as an access row of the catalog and an "access" leaf of the log, committed in the
// archive's group commit like a Store: it returns once both are durable, with the record's leaf
// index and time (the commit's) filled in. The readers (the query service) call it before they
// answer and refuse to answer when it fails, so no read goes unrecorded; the archive stays the
// single writer of the log. Errors wrap ErrInvalid (no principal or method, too many messages),
// ErrUnavailable or ErrClosed. A failed call may have been committed all the same (the caller
// then refused an answer that is recorded, which errs on the safe side).
func (a *Archive) RecordAccess(ctx context.Context, acc catalog.Access) (catalog.Access, error) {
	acc.Normalize()
	if err := acc.Check(); err != nil {
		return catalog.Access{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	acc.LeafIndex = 0
	a.mu.RLock()
	if a.closed {
		a.mu.RUnlock()
		return catalog.Access{}, ErrClosed
	}
	a.inflight.Add(1)
	a.mu.RUnlock()
	defer a.inflight.Done()
	req := &request{access: &acc, done: make(chan result, 1)}
	// Counted as coming until the committer takes it, as Store's requests are.
	a.coming.Add(1)
	select {
	case a.queue <- req:
	case <-ctx.Done():
		a.coming.Add(-1)
		return catalog.Access{}, fmt.Errorf("archive: waiting to record an access: %w", ctx.Err())
	}
	select {
	case r := <-req.done:
		if r.err != nil {
			return catalog.Access{}, r.err
		}
		return acc, nil
	case <-ctx.Done():
		return catalog.Access{}, fmt.Errorf("archive: waiting for the access record's commit: %w", ctx.Err())
	}
}

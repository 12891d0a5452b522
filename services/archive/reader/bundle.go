package reader

import (
	"context"

	"github.com/pecarchive/pecarchive/services/archive/catalog"
)

// LeavesAt returns the data of the log's leaves at indices, in their order, with one query.
func (r *Reader) LeavesAt(ctx context.Context, indices []uint64) ([][]byte, error) {
	d, err := r.log.LeavesAt(ctx, indices)
	return d, classify("leaves", err)
}

// UnloggedSources returns, for each of sums, its sources without a log leaf of their own (see
// catalog.Catalog.UnloggedSources), with one query.
func (r *Reader) UnloggedSources(ctx context.Context, sums [][32]byte) (map[[32]byte][]catalog.Source, error) {
	s, err := r.cat.UnloggedSources(ctx, sums)
	return s, classify("sources", err)
}

// MessagesByMsgIDs is Messages by msgid for many msgids with one query (see
// catalog.Catalog.ByMsgIDs).
func (r *Reader) MessagesByMsgIDs(ctx context.Context, msgids []string, limit int) (map[string][]catalog.Message, error) {
	ms, err := r.cat.ByMsgIDs(ctx, msgids, limit)
	return ms, classify("messages", err)
}

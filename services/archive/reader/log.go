package reader

import "context"

// Size returns the number of leaves committed to the log.
func (r *Reader) Size(ctx context.Context) (uint64, error) {
	n, err := r.log.Size(ctx)
	return n, classify("log size", err)
}

// Checkpoint returns the latest signed checkpoint (a C2SP tlog-checkpoint signed note), or an
// error wrapping ErrNotFound before the first is published.
func (r *Reader) Checkpoint(ctx context.Context) ([]byte, error) {
	cp, err := r.log.Checkpoint(ctx)
	return cp, classify("checkpoint", err)
}

// CheckpointAt returns the stored signed checkpoint of exactly the given tree size.
func (r *Reader) CheckpointAt(ctx context.Context, size uint64) ([]byte, error) {
	cp, err := r.log.CheckpointAt(ctx, size)
	return cp, classify("checkpoint", err)
}

// Root returns the root hash of the tree of the given size.
func (r *Reader) Root(ctx context.Context, size uint64) ([]byte, error) {
	h, err := r.log.Root(ctx, size)
	return h, classify("root", err)
}

// LeafData returns the encoded leaf at index (see package tlog).
func (r *Reader) LeafData(ctx context.Context, index uint64) ([]byte, error) {
	d, err := r.log.LeafData(ctx, index)
	return d, classify("leaf", err)
}

// InclusionProof returns the proof that leaf index is in the tree of the given size (index <
// size <= Size), for tlog.VerifyInclusion.
func (r *Reader) InclusionProof(ctx context.Context, index, size uint64) ([][]byte, error) {
	p, err := r.log.InclusionProof(ctx, index, size)
	return p, classify("inclusion proof", err)
}

// ConsistencyProof returns the proof that the tree of size from is a prefix of the tree of size
// to (from <= to <= Size), for tlog.VerifyConsistency.
func (r *Reader) ConsistencyProof(ctx context.Context, from, to uint64) ([][]byte, error) {
	p, err := r.log.ConsistencyProof(ctx, from, to)
	return p, classify("consistency proof", err)
}

// InclusionProofs returns the inclusion proofs of every leaf of indices in the tree of the given
// size, in that order, with one query for them all.
func (r *Reader) InclusionProofs(ctx context.Context, indices []uint64, size uint64) ([][][]byte, error) {
	p, err := r.log.InclusionProofs(ctx, indices, size)
	return p, classify("inclusion proofs", err)
}

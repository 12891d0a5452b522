package merklelog

import (
	"context"
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
)

// MaxProofs bounds the leaves of one [Log.InclusionProofs] call.
const MaxProofs = 10_000

// InclusionProofs returns the proofs that each leaf of indices is in the tree of the given size
// (every index < size <= Size), in the order of indices, reading every node they need (and the
// leaves themselves, to know they exist) with one query: an answer that proves many receipts at
// once costs one round trip, not one per receipt. The upper nodes, which proofs share, are
// cached (complete subtrees never change once stored), so that query reads mostly the lower ones.
func (l *Log) InclusionProofs(ctx context.Context, indices []uint64, size uint64) ([][][]byte, error) {
	if len(indices) > MaxProofs || size > 1<<62 {
		return nil, fmt.Errorf("%w: %d proofs in a tree of size %d", ErrInvalid, len(indices), size)
	}
	out := make([][][]byte, len(indices))
	if len(indices) == 0 {
		return out, nil
	}
	plans := make([]proof.Nodes, len(indices))
	var ids []compact.NodeID
	seen := map[compact.NodeID]int{}
	need := func(id compact.NodeID) {
		if _, ok := seen[id]; !ok {
			seen[id] = len(ids)
			ids = append(ids, id)
		}
	}
	for i, index := range indices {
		if index >= size {
			return nil, fmt.Errorf("%w: leaf %d in tree of size %d", ErrInvalid, index, size)
		}
		nodes, err := proof.Inclusion(index, size)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		plans[i] = nodes
		for _, id := range nodes.IDs {
			need(id)
		}
		need(compact.NewNodeID(0, index))
	}
	// The upper nodes from the cache, the others with one query.
	hs := make([][]byte, len(ids))
	want := l.nodes.get(ids, hs, size)
	if len(want) > 0 {
		fetch := make([]compact.NodeID, len(want))
		for i, j := range want {
			fetch[i] = ids[j]
		}
		got, missing, err := fetchNodes(ctx, l.pool, fetch)
		if err != nil {
			return nil, err
		}
		if len(missing) > 0 {
			return nil, l.missingErr(ctx, l.pool, size, missing)
		}
		for i, j := range want {
			hs[j] = got[i]
		}
		l.nodes.put(fetch, got, size)
	}
	for i, nodes := range plans {
		got := make([][]byte, len(nodes.IDs))
		for j, id := range nodes.IDs {
			got[j] = hs[seen[id]]
		}
		p, err := nodes.Rehash(got, hashChildren)
		if err != nil {
			return nil, fmt.Errorf("merklelog: inclusion proof: %w", err)
		}
		out[i] = p
	}
	return out, nil
}

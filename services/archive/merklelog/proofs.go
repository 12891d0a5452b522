package merklelog

import (
	"context"
	"fmt"

	"github.com/pecarchive/pecarchive/tlog"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
)

// fetchNodes reads the hashes of the given complete subtrees with one SELECT: level-0 nodes come
// from merklelog_leaf, the others from merklelog_node. It returns the hashes in the order of ids
// and the ids that are not stored.
func fetchNodes(ctx context.Context, q querier, ids []compact.NodeID) ([][]byte, []compact.NodeID, error) {
	out := make([][]byte, len(ids))
	if len(ids) == 0 {
		return out, nil, nil
	}
	var leafIdx []int64
	var lvl []int16
	var idx []int64
	for _, id := range ids {
		if id.Level == 0 {
			leafIdx = append(leafIdx, int64(id.Index))
		} else {
			lvl = append(lvl, int16(id.Level))
			idx = append(idx, int64(id.Index))
		}
	}
	if leafIdx == nil {
		leafIdx = []int64{}
	}
	if lvl == nil {
		lvl, idx = []int16{}, []int64{}
	}
	rows, err := q.Query(ctx, `
		SELECT 0::smallint, idx, hash FROM merklelog_leaf WHERE idx = ANY($1::bigint[])
		UNION ALL
		SELECT n.level, n.idx, n.hash FROM merklelog_node n
			JOIN unnest($2::smallint[], $3::bigint[]) AS q(level, idx)
			ON n.level = q.level AND n.idx = q.idx`, leafIdx, lvl, idx)
	if err != nil {
		return nil, nil, dbErr("read nodes", err)
	}
	got := make(map[compact.NodeID][]byte, len(ids))
	for rows.Next() {
		var level int16
		var index int64
		var hash []byte
		if err := rows.Scan(&level, &index, &hash); err != nil {
			rows.Close()
			return nil, nil, dbErr("read nodes", err)
		}
		if len(hash) != 32 || level < 0 || index < 0 {
			rows.Close()
			return nil, nil, fmt.Errorf("%w: node (%d, %d) has a %d-byte hash", ErrCorrupt, level, index, len(hash))
		}
		got[compact.NewNodeID(uint(level), uint64(index))] = hash
	}
	if err := rows.Err(); err != nil {
		return nil, nil, dbErr("read nodes", err)
	}
	var missing []compact.NodeID
	for i, id := range ids {
		h, ok := got[id]
		if !ok {
			missing = append(missing, id)
			continue
		}
		out[i] = h
	}
	return out, missing, nil
}

// missingErr explains missing nodes: the tree is smaller than asked (ErrOutOfRange) or a stored
// node is gone (ErrCorrupt).
func (l *Log) missingErr(ctx context.Context, q querier, need uint64, missing []compact.NodeID) error {
	st, err := l.readState(ctx, q)
	if err != nil {
		return err
	}
	if need > st.size {
		return fmt.Errorf("%w: size %d > %d", ErrOutOfRange, need, st.size)
	}
	m := missing[0]
	return fmt.Errorf("%w: node (level %d, index %d) missing for a tree of size %d", ErrCorrupt, m.Level, m.Index, st.size)
}

// rootAt computes the root of the tree of the given size from its compact range of stored nodes.
func (l *Log) rootAt(ctx context.Context, q querier, size uint64) ([]byte, error) {
	if size == 0 {
		e := tlog.EmptyRoot()
		// Still refuse on an unmigrated schema, like every other call.
		if _, err := l.readState(ctx, q); err != nil {
			return nil, err
		}
		return e[:], nil
	}
	ids := compact.RangeNodes(0, size, nil)
	hs, missing, err := fetchNodes(ctx, q, ids)
	if err != nil {
		return nil, err
	}
	if len(missing) > 0 {
		return nil, l.missingErr(ctx, q, size, missing)
	}
	root := hs[len(hs)-1]
	for i := len(hs) - 2; i >= 0; i-- {
		root = hashChildren(hs[i], root)
	}
	return root, nil
}

// Root returns the root hash of the tree of the given size (0 <= size <= Size), reading at most
// 64 stored nodes with one query.
func (l *Log) Root(ctx context.Context, size uint64) ([]byte, error) {
	if size > 1<<62 {
		return nil, fmt.Errorf("%w: size %d", ErrInvalid, size)
	}
	return l.rootAt(ctx, l.pool, size)
}

// InclusionProof returns the proof that leaf index is included in the tree of the given size
// (index < size <= Size), for tlog.VerifyInclusion. It reads the proof's nodes with one query.
func (l *Log) InclusionProof(ctx context.Context, index, size uint64) ([][]byte, error) {
	return l.inclusionProof(ctx, l.pool, index, size)
}

func (l *Log) inclusionProof(ctx context.Context, q querier, index, size uint64) ([][]byte, error) {
	if index >= size || size > 1<<62 {
		return nil, fmt.Errorf("%w: leaf %d in tree of size %d", ErrInvalid, index, size)
	}
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	// The leaf itself is not part of the proof, but asking for it too makes sure it exists, in
	// the same query.
	ids := append(append(make([]compact.NodeID, 0, len(nodes.IDs)+1), nodes.IDs...), compact.NewNodeID(0, index))
	hs, missing, err := fetchNodes(ctx, q, ids)
	if err != nil {
		return nil, err
	}
	if len(missing) > 0 {
		return nil, l.missingErr(ctx, q, size, missing)
	}
	p, err := nodes.Rehash(hs[:len(hs)-1], hashChildren)
	if err != nil {
		return nil, fmt.Errorf("merklelog: inclusion proof: %w", err)
	}
	return p, nil
}

// ConsistencyProof returns the proof that the tree of size from is a prefix of the tree of size
// to (from <= to <= Size), for tlog.VerifyConsistency. It reads the proof's nodes with one query.
func (l *Log) ConsistencyProof(ctx context.Context, from, to uint64) ([][]byte, error) {
	return l.consistencyProof(ctx, l.pool, from, to)
}

func (l *Log) consistencyProof(ctx context.Context, q querier, from, to uint64) ([][]byte, error) {
	if from > to || to > 1<<62 {
		return nil, fmt.Errorf("%w: consistency from %d to %d", ErrInvalid, from, to)
	}
	if from == 0 || from == to {
		// The proof is empty; only check that the tree is that large.
		st, err := l.readState(ctx, q)
		if err != nil {
			return nil, err
		}
		if to > st.size {
			return nil, fmt.Errorf("%w: size %d > %d", ErrOutOfRange, to, st.size)
		}
		return [][]byte{}, nil
	}
	nodes, err := proof.Consistency(from, to)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	hs, missing, err := fetchNodes(ctx, q, nodes.IDs)
	if err != nil {
		return nil, err
	}
	if len(missing) > 0 {
		return nil, l.missingErr(ctx, q, to, missing)
	}
	p, err := nodes.Rehash(hs, hashChildren)
	if err != nil {
		return nil, fmt.Errorf("merklelog: consistency proof: %w", err)
	}
	return p, nil
}

package merklelog

import (
	"context"
	"fmt"
)

// LeavesAt returns the data of the leaves at indices, in their order, with one query (at most
// MaxProofs of them): an evidence bundle carries the leaf of every message it holds. A leaf the
// log does not hold is an error wrapping ErrNotFound.
func (l *Log) LeavesAt(ctx context.Context, indices []uint64) ([][]byte, error) {
	if len(indices) > MaxProofs {
		return nil, fmt.Errorf("%w: %d leaves at once", ErrInvalid, len(indices))
	}
	out := make([][]byte, len(indices))
	if len(indices) == 0 {
		return out, nil
	}
	idx := make([]int64, len(indices))
	for i, x := range indices {
		if x >= 1<<62 {
			return nil, fmt.Errorf("%w: leaf %d", ErrNotFound, x)
		}
		idx[i] = int64(x)
	}
	rows, err := l.pool.Query(ctx, `SELECT idx, data FROM merklelog_leaf WHERE idx = ANY($1)`, idx)
	if err != nil {
		return nil, dbErr("read leaves", err)
	}
	defer rows.Close()
	got := make(map[int64][]byte, len(idx))
	for rows.Next() {
		var i int64
		var data []byte
		if err := rows.Scan(&i, &data); err != nil {
			return nil, dbErr("read leaves", err)
		}
		got[i] = data
	}
	if err := rows.Err(); err != nil {
		return nil, dbErr("read leaves", err)
	}
	for i, x := range idx {
		d, ok := got[x]
		if !ok {
			return nil, fmt.Errorf("%w: leaf %d", ErrNotFound, x)
		}
		out[i] = d
	}
	return out, nil
}

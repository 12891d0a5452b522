package merklelog

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/pecarchive/pecarchive/tlog"
	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/compact"
)

// Objects a [Problem] can name.
const (
	ObjectLeaf       = "leaf"
	ObjectNode       = "node"
	ObjectState      = "state"
	ObjectCheckpoint = "checkpoint"
)

// MaxProblems bounds the problems Verify reports; past it, one last problem says the list was cut.
const MaxProblems = 1000

// Problem is one inconsistency found by [Log.Verify].
type Problem struct {
	Object string // ObjectLeaf, ObjectNode, ObjectState or ObjectCheckpoint
	Index  uint64 // leaf index, node index within its level, or checkpoint size
	Level  int    // node level (1 and up) for ObjectNode, else 0
	Detail string
}

func (p Problem) String() string {
	switch p.Object {
	case ObjectNode:
		return fmt.Sprintf("node (level %d, index %d): %s", p.Level, p.Index, p.Detail)
	case ObjectState:
		return "state: " + p.Detail
	case ObjectCheckpoint:
		return fmt.Sprintf("checkpoint of size %d: %s", p.Index, p.Detail)
	case ObjectLeaf:
		return fmt.Sprintf("leaf %d: %s", p.Index, p.Detail)
	}
	return p.Object + ": " + p.Detail
}

// Verify audits the whole stored log in one consistent snapshot: it recomputes the tree from the
// leaf data, checks every leaf (stored hash, encoding, no gaps), every stored
// node (present, right hash, none beyond the tree), the state row, and every stored checkpoint
// (signature with the log's keys when Config.Verifier is set, origin, stored size and root, root
// equal to the recomputed tree at its size, consistency proof from the previous checkpoint built
// from the stored nodes, creation times in size order). It reads everything once and keeps O(log n) hashes
// plus one 8-byte size per checkpoint in memory. It is meant for audits, not the hot path.
//
// problems is empty when the log is sound; err reports only failures to read.
func (l *Log) Verify(ctx context.Context) (problems []Problem, err error) {
	tx, err := l.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, dbErr("verify: begin", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read-only
	a := &auditor{l: l, tx: tx}
	if err := a.run(ctx); err != nil {
		return a.problems, err
	}
	return a.problems, nil
}

type auditor struct {
	l        *Log
	tx       pgx.Tx
	problems []Problem
	cut      bool
}

func (a *auditor) add(p Problem) {
	switch {
	case len(a.problems) < MaxProblems:
		a.problems = append(a.problems, p)
	case !a.cut:
		a.cut = true
		a.problems = append(a.problems, Problem{Object: ObjectState, Detail: fmt.Sprintf("more than %d problems; the rest are not listed", MaxProblems)})
	}
}

var errStop = errors.New("stop")

func (a *auditor) run(ctx context.Context) error {
	l, tx := a.l, a.tx

	// State row.
	var stSize int64 = -1
	var packed []byte
	var st state
	stOK := false
	if err := tx.QueryRow(ctx, `SELECT size, compact FROM merklelog_state WHERE id`).Scan(&stSize, &packed); err != nil {
		if !errors.Is(err, pgx.ErrNoRows) {
			return dbErr("verify: read state", err)
		}
		a.add(Problem{Object: ObjectState, Detail: "state row missing"})
	} else if st, err = l.parseState(stSize, packed); err != nil {
		a.add(Problem{Object: ObjectState, Detail: fmt.Sprintf("size %d does not fit the %d stored compact range hashes", stSize, len(packed)/32)})
	} else {
		stOK = true
	}

	// Checkpoint sizes, to record the recomputed roots at those sizes on the way.
	roots := map[uint64][]byte{}
	rows, err := tx.Query(ctx, `SELECT size FROM merklelog_checkpoint`)
	if err != nil {
		return dbErr("verify: read checkpoints", err)
	}
	for rows.Next() {
		var s int64
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return dbErr("verify: read checkpoints", err)
		}
		roots[uint64(s)] = nil
	}
	if err := rows.Err(); err != nil {
		return dbErr("verify: read checkpoints", err)
	}
	if _, ok := roots[0]; ok {
		e := tlog.EmptyRoot()
		roots[0] = e[:]
	}

	// Leaves: recompute the tree, checking nodes window by window as subtrees complete.
	rng := l.rf.NewEmptyRange(0)
	want := map[compact.NodeID][]byte{}
	flushed := uint64(0)
	visit := func(id compact.NodeID, hash []byte) {
		if id.Level > 0 {
			want[id] = hash
		}
	}
	flush := func() error {
		if err := a.checkNodes(ctx, flushed, rng.End(), want); err != nil {
			return err
		}
		clear(want)
		flushed = rng.End()
		return nil
	}
	beyond := 0
	err = l.leaves(ctx, tx, 0, func(index uint64, data, stored []byte) error {
		if n := rng.End(); index != n {
			a.add(Problem{Object: ObjectLeaf, Index: n, Detail: fmt.Sprintf("missing (next stored leaf is %d); the tree cannot be recomputed past it", index)})
			return errStop
		}
		h := tlog.LeafHash(data)
		if !bytes.Equal(stored, h[:]) {
			a.add(Problem{Object: ObjectLeaf, Index: index, Detail: "stored hash does not match the leaf data"})
		}
		if _, err := tlog.ParseLeaf(data); err != nil {
			a.add(Problem{Object: ObjectLeaf, Index: index, Detail: err.Error()})
		}
		if stSize >= 0 && index >= uint64(stSize) && beyond < 10 {
			beyond++
			a.add(Problem{Object: ObjectLeaf, Index: index, Detail: fmt.Sprintf("stored beyond the state's tree size %d", stSize)})
		}
		if err := rng.Append(h[:], visit); err != nil {
			return fmt.Errorf("merklelog: verify: %w", err)
		}
		if _, ok := roots[rng.End()]; ok {
			r, err := rng.GetRootHash(nil)
			if err != nil {
				return fmt.Errorf("merklelog: verify: %w", err)
			}
			roots[rng.End()] = r
		}
		if len(want) >= 4*pageSize {
			return flush()
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return err
	}
	if err := flush(); err != nil {
		return err
	}
	count := rng.End()

	// Nodes that no complete subtree of the recomputed tree accounts for.
	rows, err = tx.Query(ctx, `SELECT level, idx FROM merklelog_node
		WHERE (idx + 1)::numeric * (2::numeric ^ level) > $1 ORDER BY level, idx LIMIT 10`, int64(count))
	if err != nil {
		return dbErr("verify: read nodes", err)
	}
	for rows.Next() {
		var lv int16
		var ix int64
		if err := rows.Scan(&lv, &ix); err != nil {
			rows.Close()
			return dbErr("verify: read nodes", err)
		}
		a.add(Problem{Object: ObjectNode, Level: int(lv), Index: uint64(ix), Detail: fmt.Sprintf("stored but covers leaves beyond the %d leaves present", count)})
	}
	if err := rows.Err(); err != nil {
		return dbErr("verify: read nodes", err)
	}

	// State against the recomputed tree.
	switch {
	case stSize < 0:
	case uint64(stSize) != count:
		a.add(Problem{Object: ObjectState, Detail: fmt.Sprintf("size %d but %d leaves are stored", stSize, count)})
	case stOK && !st.rng.Equal(rng):
		a.add(Problem{Object: ObjectState, Detail: "compact range does not match the tree recomputed from the leaves"})
	}

	// Checkpoints.
	var prev *log.Checkpoint
	var prevTime int64
	return l.checkpoints(ctx, tx, func(c storedCheckpoint) error {
		bad := func(format string, args ...any) {
			a.add(Problem{Object: ObjectCheckpoint, Index: c.size, Detail: fmt.Sprintf(format, args...)})
		}
		if c.unix < prevTime {
			bad("created before the previous, smaller checkpoint")
		}
		prevTime = c.unix
		var cp log.Checkpoint
		var err error
		if l.cfg.Verifier != nil {
			cp, err = tlog.VerifyCheckpointAny(c.signed, l.Verifiers())
		} else {
			cp, err = tlog.ParseCheckpoint(c.signed)
		}
		if err != nil {
			bad("%v", err)
			prev = nil
			return nil
		}
		ok := true
		if l.cfg.Origin != "" && cp.Origin != l.cfg.Origin {
			bad("origin %q, want %q", cp.Origin, l.cfg.Origin)
			ok = false
		}
		if cp.Size != c.size {
			bad("signed note says size %d", cp.Size)
			ok = false
		}
		if !bytes.Equal(cp.Hash, c.root) {
			bad("stored root differs from the signed root")
		}
		switch r := roots[cp.Size]; {
		case cp.Size > count:
			bad("beyond the %d leaves present", count)
			ok = false
		case r == nil:
			bad("no recomputed root for size %d", cp.Size)
			ok = false
		case !bytes.Equal(r, cp.Hash):
			bad("signed root does not match the tree recomputed from the leaves")
		}
		if ok && prev != nil && prev.Size > 0 { // every tree extends the empty one
			p, err := l.consistencyProof(ctx, tx, prev.Size, cp.Size)
			if err == nil {
				err = tlog.VerifyConsistency(prev.Size, cp.Size, p, prev.Hash, cp.Hash)
			}
			if err != nil {
				bad("not shown consistent with checkpoint of size %d: %v", prev.Size, err)
			}
		}
		if ok {
			prev = &cp
		} else {
			prev = nil
		}
		return nil
	})
}

// checkNodes compares the stored nodes completed by leaves [from, to) with want (every node of
// level >= 1 whose last leaf is in that window, as recomputed).
func (a *auditor) checkNodes(ctx context.Context, from, to uint64, want map[compact.NodeID][]byte) error {
	if from >= to {
		return nil
	}
	// Node (level L, index i) covers leaves [i<<L, (i+1)<<L); its last leaf is in [from, to) when
	// from>>L <= i < to>>L.
	var lv []int16
	var lo, hi []int64
	for L := uint(1); L < 63; L++ {
		if a, b := from>>L, to>>L; a < b {
			lv, lo, hi = append(lv, int16(L)), append(lo, int64(a)), append(hi, int64(b))
		}
	}
	got := map[compact.NodeID][]byte{}
	if len(lv) > 0 {
		rows, err := a.tx.Query(ctx, `SELECT n.level, n.idx, n.hash FROM merklelog_node n
			JOIN unnest($1::smallint[], $2::bigint[], $3::bigint[]) AS q(level, lo, hi)
			ON n.level = q.level AND n.idx >= q.lo AND n.idx < q.hi`, lv, lo, hi)
		if err != nil {
			return dbErr("verify: read nodes", err)
		}
		for rows.Next() {
			var l int16
			var i int64
			var h []byte
			if err := rows.Scan(&l, &i, &h); err != nil {
				rows.Close()
				return dbErr("verify: read nodes", err)
			}
			got[compact.NewNodeID(uint(l), uint64(i))] = h
		}
		if err := rows.Err(); err != nil {
			return dbErr("verify: read nodes", err)
		}
	}
	ids := make([]compact.NodeID, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(x, y compact.NodeID) int {
		return cmp.Or(cmp.Compare(x.Level, y.Level), cmp.Compare(x.Index, y.Index))
	})
	for _, id := range ids {
		w := want[id]
		h, ok := got[id]
		switch {
		case !ok:
			a.add(Problem{Object: ObjectNode, Level: int(id.Level), Index: id.Index, Detail: "missing"})
		case !bytes.Equal(h, w):
			a.add(Problem{Object: ObjectNode, Level: int(id.Level), Index: id.Index, Detail: "stored hash does not match the tree recomputed from the leaves"})
		}
		delete(got, id)
	}
	for id := range got { // cannot happen: the window holds exactly the wanted nodes
		a.add(Problem{Object: ObjectNode, Level: int(id.Level), Index: id.Index, Detail: "unexpected"})
	}
	return nil
}

package merklelog_test

import (
	"context"
	"strings"
	"testing"

	"github.com/pecarchive/pecarchive/services/archive/merklelog"
	"github.com/pecarchive/pecarchive/tlog"
	"github.com/transparency-dev/formats/log"
)

func hasProblem(ps []merklelog.Problem, object string, level int, index uint64, detail string) bool {
	for _, p := range ps {
		if p.Object == object && p.Level == level && p.Index == index && strings.Contains(p.Detail, detail) {
			return true
		}
	}
	return false
}

func TestVerify(t *testing.T) {
	e := newEnv(t, merklelog.Config{})
	ctx := context.Background()
	exec := func(sql string, args ...any) {
		t.Helper()
		e.tamper(t, sql, args...)
	}
	verify := func(name string) []merklelog.Problem {
		t.Helper()
		ps, err := e.log.Verify(ctx)
		if err != nil {
			t.Fatalf("%s: Verify: %v", name, err)
		}
		for _, p := range ps {
			t.Logf("%s: %s", name, p)
		}
		return ps
	}
	// A tree of 1000 leaves with checkpoints at 0, 100, 333, 600 and 1000.
	for _, n := range []int{0, 100, 233, 267, 400} {
		if n > 0 {
			batch := make([][]byte, n)
			for i := range batch {
				batch[i] = leaf(i)
			}
			e.appendTx(t, batch)
		}
		if _, err := e.log.Publish(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if ps := verify("clean"); len(ps) != 0 {
		t.Fatalf("clean log: %d problems", len(ps))
	}

	// 1. A leaf's data is replaced (by another valid leaf).
	var orig []byte
	if err := e.pool.QueryRow(ctx, `SELECT data FROM merklelog_leaf WHERE idx = 123`).Scan(&orig); err != nil {
		t.Fatal(err)
	}
	exec(`UPDATE merklelog_leaf SET data = $1 WHERE idx = 123`, leaf(0))
	ps := verify("leaf data")
	if !hasProblem(ps, merklelog.ObjectLeaf, 0, 123, "stored hash does not match") {
		t.Errorf("leaf 123 not named")
	}
	// Its parent (level 1, index 61) is recomputed differently, so is every checkpoint after it.
	if !hasProblem(ps, merklelog.ObjectNode, 1, 61, "does not match") || !hasProblem(ps, merklelog.ObjectCheckpoint, 0, 333, "does not match the tree") {
		t.Errorf("consequences of leaf 123 not named")
	}
	if hasProblem(ps, merklelog.ObjectCheckpoint, 0, 100, "") {
		t.Errorf("checkpoint 100 blamed for a later leaf")
	}
	exec(`UPDATE merklelog_leaf SET data = $1 WHERE idx = 123`, orig)

	// 2. Nodes: one hash changed, one deleted, and one used by the consistency proof between
	// the checkpoints of sizes 600 and 1000 changed (node (3, 74) covers leaves [592, 600)).
	exec(`UPDATE merklelog_node SET hash = sha256(hash) WHERE (level, idx) IN ((3, 5), (3, 74))`)
	var saved []byte
	if err := e.pool.QueryRow(ctx, `SELECT hash FROM merklelog_node WHERE level = 7 AND idx = 2`).Scan(&saved); err != nil {
		t.Fatal(err)
	}
	exec(`DELETE FROM merklelog_node WHERE level = 7 AND idx = 2`)
	ps = verify("nodes")
	if !hasProblem(ps, merklelog.ObjectNode, 3, 5, "does not match") || !hasProblem(ps, merklelog.ObjectNode, 7, 2, "missing") ||
		!hasProblem(ps, merklelog.ObjectNode, 3, 74, "does not match") {
		t.Errorf("nodes not named")
	}
	// The proof served from the bad node no longer verifies, and Verify says between which
	// checkpoints; the checkpoints themselves are sound.
	if !hasProblem(ps, merklelog.ObjectCheckpoint, 0, 1000, "not shown consistent with checkpoint of size 600") ||
		hasProblem(ps, merklelog.ObjectCheckpoint, 0, 1000, "does not match the tree") {
		t.Errorf("consistency failure from node (3, 74) not reported as such")
	}
	exec(`INSERT INTO merklelog_node (level, idx, hash) VALUES (7, 2, $1)`, saved)
	exec(`DELETE FROM merklelog_node WHERE (level, idx) IN ((3, 5), (3, 74))`)
	fixNode(t, e, 3, 5)
	fixNode(t, e, 3, 74)
	if ps := verify("restored"); len(ps) != 0 {
		t.Fatalf("restored log: %d problems", len(ps))
	}

	// 3. Checkpoints: one re-signed by another key, one with a forged (validly signed) root, one
	// with its stored root column changed.
	skey, _, _ := tlog.GenerateKey(origin)
	other, _ := tlog.NewSigner(skey)
	var root []byte
	if err := e.pool.QueryRow(ctx, `SELECT root FROM merklelog_checkpoint WHERE size = 333`).Scan(&root); err != nil {
		t.Fatal(err)
	}
	forgedBy, _ := tlog.SignCheckpoint(other, log.Checkpoint{Origin: origin, Size: 333, Hash: root})
	exec(`UPDATE merklelog_checkpoint SET signed = $1 WHERE size = 333`, forgedBy)
	fake := make([]byte, 32)
	forgedRoot, _ := tlog.SignCheckpoint(e.signer, log.Checkpoint{Origin: origin, Size: 600, Hash: fake})
	exec(`UPDATE merklelog_checkpoint SET signed = $1, root = $2 WHERE size = 600`, forgedRoot, fake)
	exec(`UPDATE merklelog_checkpoint SET root = sha256(root) WHERE size = 100`)
	ps = verify("checkpoints")
	if !hasProblem(ps, merklelog.ObjectCheckpoint, 0, 333, "invalid checkpoint") {
		t.Errorf("checkpoint 333 (wrong key) not named")
	}
	if !hasProblem(ps, merklelog.ObjectCheckpoint, 0, 600, "signed root does not match the tree") {
		t.Errorf("checkpoint 600 (forged root) not named")
	}
	if !hasProblem(ps, merklelog.ObjectCheckpoint, 0, 100, "stored root differs") {
		t.Errorf("checkpoint 100 (root column) not named")
	}
	if !hasProblem(ps, merklelog.ObjectCheckpoint, 0, 1000, "not shown consistent with checkpoint of size 600") {
		t.Errorf("split view between 600 and 1000 not named")
	}

	// 4. State row and a deleted leaf.
	exec(`UPDATE merklelog_state SET size = size + 1`)
	exec(`DELETE FROM merklelog_leaf WHERE idx = 700`)
	ps = verify("state and gap")
	if !hasProblem(ps, merklelog.ObjectLeaf, 0, 700, "missing") {
		t.Errorf("missing leaf 700 not named")
	}
	if !hasProblem(ps, merklelog.ObjectState, 0, 0, "size 1001 does not fit") || !hasProblem(ps, merklelog.ObjectState, 0, 0, "size 1001 but 700 leaves") {
		t.Errorf("state size not named")
	}
}

// fixNode recomputes node (level, index) from its leaves with a root query on a perfect subtree.
func fixNode(t *testing.T, e *env, level int, index uint64) {
	t.Helper()
	ctx := context.Background()
	var hashes [][]byte
	rows, err := e.pool.Query(ctx, `SELECT hash FROM merklelog_leaf WHERE idx >= $1 AND idx < $2 ORDER BY idx`,
		int64(index<<level), int64((index+1)<<level))
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var h []byte
		if err := rows.Scan(&h); err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, h)
	}
	for len(hashes) > 1 {
		var next [][]byte
		for i := 0; i < len(hashes); i += 2 {
			h := tlog.NodeHash(hashes[i], hashes[i+1])
			next = append(next, h[:])
		}
		hashes = next
	}
	if _, err := e.pool.Exec(ctx, `INSERT INTO merklelog_node (level, idx, hash) VALUES ($1, $2, $3)`, level, int64(index), hashes[0]); err != nil {
		t.Fatal(err)
	}
}

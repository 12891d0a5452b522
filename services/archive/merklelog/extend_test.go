package merklelog_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"

	"github.com/pecarchive/pecarchive/services/archive/blob"
	"github.com/pecarchive/pecarchive/services/archive/blob/blobtest"
	"github.com/pecarchive/pecarchive/services/archive/merklelog"
	"github.com/pecarchive/pecarchive/tlog"
)

// flakyStore is write-once checkpoint storage that fails: before writing (fail), or after the
// write is durable (crash: the process dies before the database copy).
type flakyStore struct {
	merklelog.CheckpointStore
	fail, crash bool
}

var errCrash = errors.New("crash after the write-once put")

func (f *flakyStore) PutCheckpoint(ctx context.Context, size uint64, signed []byte) (bool, error) {
	if f.fail {
		return false, fmt.Errorf("flaky: %w", blob.ErrUnavailable)
	}
	created, err := f.CheckpointStore.PutCheckpoint(ctx, size, signed)
	if err == nil && f.crash {
		return created, errCrash
	}
	return created, err
}

// withStore returns another Log on e's tables with e's key and the checkpoint storage cs.
func (e *env) withStore(t *testing.T, cs merklelog.CheckpointStore) *merklelog.Log {
	t.Helper()
	v, _ := tlog.NewVerifier(e.vkey)
	l, err := merklelog.New(context.Background(), merklelog.Config{Pool: e.pool, Signer: e.signer, Verifier: v, Checkpoints: cs})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// writeOnce returns the genuine checkpoints of e's write-once storage by size.
func (e *env) writeOnce(t *testing.T) map[uint64][]byte {
	t.Helper()
	out := map[uint64][]byte{}
	for _, c := range blobtest.ListCheckpoints(t, e.checkpoints, 0) {
		g, _ := c.Genuine()
		out[c.Size] = g.Signed
	}
	return out
}

// dbCheckpoints returns the sizes of the database's checkpoints.
func (e *env) dbCheckpoints(t *testing.T) []uint64 {
	t.Helper()
	var sizes []uint64
	if err := e.log.Checkpoints(context.Background(), func(size uint64, _ []byte) error {
		sizes = append(sizes, size)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return sizes
}

func (e *env) grow(t *testing.T, n int) {
	t.Helper()
	batch := make([][]byte, n)
	for i := range batch {
		batch[i] = leaf(i)
	}
	e.appendTx(t, batch)
}

func (e *env) publish(t *testing.T) []byte {
	t.Helper()
	signed, err := e.log.Publish(context.Background())
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	return signed
}

// TestPublishWritesOnceFirst: every checkpoint is on write-once storage before its database
// copy; a failed write-once put publishes nothing, and a checkpoint that reached the storage but
// not the database (a crash in between) is restored by the next Publish.
func TestPublishWritesOnceFirst(t *testing.T) {
	e := newEnv(t, merklelog.Config{})
	ctx := context.Background()
	e.grow(t, 5)
	c5 := e.publish(t)
	if wo := e.writeOnce(t); len(wo) != 1 || !bytes.Equal(wo[5], c5) {
		t.Fatalf("write-once storage holds %v, want the checkpoint of 5", wo)
	}

	flaky := &flakyStore{CheckpointStore: e.checkpoints, fail: true}
	fl := e.withStore(t, flaky)
	e.grow(t, 3)
	if _, err := fl.Publish(ctx); !errors.Is(err, blob.ErrUnavailable) {
		t.Fatalf("Publish with write-once storage down: %v, want ErrUnavailable", err)
	}
	if latest, _ := e.log.Checkpoint(ctx); !bytes.Equal(latest, c5) || len(e.writeOnce(t)) != 1 {
		t.Fatal("a checkpoint was published without its write-once copy")
	}

	flaky.fail, flaky.crash = false, true
	if _, err := fl.Publish(ctx); !errors.Is(err, errCrash) {
		t.Fatalf("Publish: %v", err)
	}
	if fmt.Sprint(e.dbCheckpoints(t)) != "[5]" || len(e.writeOnce(t)) != 2 {
		t.Fatalf("after the crash: database %v, write-once %d", e.dbCheckpoints(t), len(e.writeOnce(t)))
	}
	// The same size again: the stored checkpoint is restored, not signed anew.
	if c8 := e.publish(t); !bytes.Equal(c8, e.writeOnce(t)[8]) || fmt.Sprint(e.dbCheckpoints(t)) != "[5 8]" {
		t.Fatalf("restore at the same size: database %v", e.dbCheckpoints(t))
	}
	// A larger size: the one before is restored with the new one.
	e.grow(t, 2)
	if _, err := fl.Publish(ctx); !errors.Is(err, errCrash) {
		t.Fatalf("Publish: %v", err)
	}
	e.grow(t, 4)
	e.publish(t)
	if fmt.Sprint(e.dbCheckpoints(t)) != "[5 8 10 14]" || len(e.writeOnce(t)) != 4 {
		t.Fatalf("restore below a new checkpoint: database %v, write-once %d", e.dbCheckpoints(t), len(e.writeOnce(t)))
	}
	if ps, err := e.log.Verify(ctx); err != nil || len(ps) != 0 {
		t.Fatalf("Verify: %v, %v", ps, err)
	}
}

// TestPublishRefusesForkedTree is attack 1 of the log: an insider rewrites a leaf signed under a
// checkpoint and recomputes the nodes and the state with the triggers disabled. The log refuses
// to sign the forged tree, with the database's checkpoints kept and with them deleted (then the
// write-once storage alone shows the fork).
func TestPublishRefusesForkedTree(t *testing.T) {
	e := newEnv(t, merklelog.Config{})
	ctx := context.Background()
	e.grow(t, 20)
	e.publish(t)
	e.grow(t, 10)
	e.publish(t)
	if err := e.log.CheckAppendOnly(ctx); err != nil {
		t.Fatalf("CheckAppendOnly on a sound log: %v", err)
	}

	e.tamper(t, `UPDATE merklelog_leaf SET data = $1 WHERE idx = 7`, leaf(777))
	e.rebuild(t)
	if ps, err := e.log.Verify(ctx); err != nil || len(ps) == 0 {
		t.Fatalf("the forged tree is not even seen by Verify (%v)", err) // the checkpoints betray it
	}
	refuses := func(what string) {
		t.Helper()
		if err := e.log.CheckAppendOnly(ctx); !errors.Is(err, merklelog.ErrForked) || !errors.Is(err, tlog.ErrFork) {
			t.Errorf("%s: CheckAppendOnly = %v, want ErrForked (fork)", what, err)
		}
		if _, err := e.log.Publish(ctx); !errors.Is(err, merklelog.ErrForked) || !errors.Is(err, tlog.ErrFork) {
			t.Errorf("%s: Publish = %v, want ErrForked (fork)", what, err)
		}
	}
	// At the size of the last checkpoint Publish has nothing new to sign, and the tree of that
	// size is not the one signed: refused at once, not at the next leaf.
	refuses("at the signed size")
	e.grow(t, 5)
	refuses("checkpoints kept")
	e.tamper(t, `DELETE FROM merklelog_checkpoint`)
	refuses("database checkpoints deleted")
	if n := len(e.dbCheckpoints(t)); n != 0 || len(e.writeOnce(t)) != 2 {
		t.Fatalf("a refused Publish stored a checkpoint (%d in the database)", n)
	}
}

// TestPublishRefusesRollback: the log restored from an older copy (a dump taken before the last
// checkpoint) is smaller than what it signed; grown again past that size it is another tree.
func TestPublishRefusesRollback(t *testing.T) {
	e := newEnv(t, merklelog.Config{})
	ctx := context.Background()
	e.grow(t, 20)
	e.publish(t)
	e.grow(t, 10)
	e.publish(t)
	// The dump of size 20: the later leaves and the checkpoint of 30 gone.
	e.tamper(t, `DELETE FROM merklelog_leaf WHERE idx >= 20`)
	e.tamper(t, `DELETE FROM merklelog_checkpoint WHERE size > 20`)
	e.rebuild(t)
	if ps, err := e.log.Verify(ctx); err != nil || len(ps) != 0 {
		t.Fatalf("the restored database is consistent in itself: %v, %v", ps, err)
	}
	if err := e.log.CheckAppendOnly(ctx); !errors.Is(err, merklelog.ErrForked) || !errors.Is(err, tlog.ErrRollback) {
		t.Fatalf("CheckAppendOnly = %v, want ErrForked (rollback)", err)
	}
	e.grow(t, 3)
	if _, err := e.log.Publish(ctx); !errors.Is(err, merklelog.ErrForked) || !errors.Is(err, tlog.ErrRollback) {
		t.Fatalf("Publish at 23 = %v, want ErrForked (rollback)", err)
	}
	e.grow(t, 12)
	if _, err := e.log.Publish(ctx); !errors.Is(err, merklelog.ErrForked) || !errors.Is(err, tlog.ErrFork) {
		t.Fatalf("Publish at 35 = %v, want ErrForked (fork)", err)
	}
}

// TestPublishKeys is attack 5 of the log: a key that does not verify the log's checkpoints (the
// key file replaced) is refused, from the database's checkpoints and from the write-once ones
// alone; a rotated key listed with the old one signs on; objects planted on write-once storage
// do not stop a log whose own checkpoints verify.
func TestPublishKeys(t *testing.T) {
	e := newEnv(t, merklelog.Config{})
	ctx := context.Background()
	e.grow(t, 4)
	e.publish(t)

	skey, vkey, _ := tlog.GenerateKey(origin)
	s2, _ := tlog.NewSigner(skey)
	v2, _ := tlog.NewVerifier(vkey)
	swapped, err := merklelog.New(ctx, merklelog.Config{Pool: e.pool, Signer: s2, Verifier: v2, Checkpoints: e.checkpoints})
	if err != nil {
		t.Fatal(err)
	}
	e.grow(t, 2)
	for _, what := range []string{"database and write-once", "write-once alone"} {
		if err := swapped.CheckAppendOnly(ctx); !errors.Is(err, merklelog.ErrWrongKey) {
			t.Errorf("%s: CheckAppendOnly with another key = %v, want ErrWrongKey", what, err)
		}
		if _, err := swapped.Publish(ctx); !errors.Is(err, merklelog.ErrWrongKey) {
			t.Errorf("%s: Publish with another key = %v, want ErrWrongKey", what, err)
		}
		e.tamper(t, `DELETE FROM merklelog_checkpoint`)
	}

	// Rotation: the new key, with the old one listed, checks the old checkpoints and signs on.
	v1, _ := tlog.NewVerifier(e.vkey)
	rotated, err := merklelog.New(ctx, merklelog.Config{Pool: e.pool, Signer: s2, Verifier: v2,
		OldVerifiers: []note.Verifier{v1}, Checkpoints: e.checkpoints})
	if err != nil {
		t.Fatal(err)
	}
	c6, err := rotated.Publish(ctx)
	if err != nil {
		t.Fatalf("Publish after a rotation: %v", err)
	}
	if _, err := tlog.VerifyCheckpoint(c6, vkey); err != nil {
		t.Fatalf("not signed by the new key: %v", err)
	}
	if ps, err := rotated.Verify(ctx); err != nil || len(ps) != 0 {
		t.Fatalf("Verify with both keys: %v, %v", ps, err)
	}

	// Objects planted under checkpoint keys (beyond the tree, and at the next size) do not
	// stop the log.
	for _, size := range []uint64{7, 1000} {
		if _, err := e.checkpoints.PutCheckpoint(ctx, size, blobtest.CheckpointText(size, "planted")); err != nil {
			t.Fatal(err)
		}
	}
	e.grow(t, 1)
	if _, err := rotated.Publish(ctx); err != nil {
		t.Fatalf("Publish at the size of a planted object: %v", err)
	}

	// With nothing verifiable anywhere but a checkpoint of this origin on write-once storage,
	// this key is not trusted; an object that is no checkpoint of this log does not count.
	fresh := newEnv(t, merklelog.Config{})
	if _, err := fresh.checkpoints.PutCheckpoint(ctx, 2, []byte("not a checkpoint")); err != nil {
		t.Fatal(err)
	}
	if _, err := fresh.log.Publish(ctx); err != nil {
		t.Fatalf("Publish over an object that is no checkpoint: %v", err)
	}
	fresh = newEnv(t, merklelog.Config{})
	_, err = fresh.checkpoints.PutCheckpoint(ctx, 3, mustSign(t, s2, 3))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fresh.log.Publish(ctx); !errors.Is(err, merklelog.ErrWrongKey) {
		t.Fatalf("Publish over a checkpoint of another key only = %v, want ErrWrongKey", err)
	}
}

// mustSign signs a checkpoint of the test origin with a made-up root.
func mustSign(t *testing.T, s note.Signer, size uint64) []byte {
	t.Helper()
	b, err := tlog.SignCheckpoint(s, log.Checkpoint{Origin: origin, Size: size, Hash: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPublishChecksTheDatabasesLatest: nothing new to sign is no reason to trust the database's
// latest checkpoint. A row inserted at the tree's size, or beyond it, that the log's keys do not
// verify is refused as such (ErrWrongKey), never handed out as the log's checkpoint nor taken for
// a rollback.
func TestPublishChecksTheDatabasesLatest(t *testing.T) {
	e := newEnv(t, merklelog.Config{})
	ctx := context.Background()
	e.grow(t, 4)
	e.publish(t)
	e.grow(t, 2)
	other, _, _ := tlog.GenerateKey(origin)
	otherSigner, _ := tlog.NewSigner(other)
	for _, size := range []uint64{6, 100} {
		forged := mustSign(t, otherSigner, size)
		e.tamper(t, `INSERT INTO merklelog_checkpoint (size, root, signed) VALUES ($1, $2, $3)`, int64(size), bytes.Repeat([]byte{7}, 32), forged)
		got, err := e.log.Publish(ctx)
		if !errors.Is(err, merklelog.ErrWrongKey) {
			t.Errorf("Publish with a forged checkpoint of size %d in the database = %q, %v; want ErrWrongKey", size, got, err)
		}
		e.tamper(t, `DELETE FROM merklelog_checkpoint WHERE size = $1`, int64(size))
	}
	if _, err := e.log.Publish(ctx); err != nil {
		t.Fatalf("Publish once the forged rows are gone: %v", err)
	}
}

// TestPublishPastPlantedCheckpoints: an insider with the storage's credentials (S3: the
// service's own, whose objects COMPLIANCE retention then keeps for years) plants an object, or a
// checkpoint signed by another key, at every size the log will reach next. None of them is where
// the log writes its checkpoint of that size (the key names the checkpoint's SHA-256), so every
// Publish goes on, and they are all on write-once storage for the audit to name. Before, each
// planted size failed its Publish: a range of them stopped signing until the log grew past it.
func TestPublishPastPlantedCheckpoints(t *testing.T) {
	e := newEnv(t, merklelog.Config{})
	ctx := context.Background()
	e.grow(t, 3)
	e.publish(t)
	skey, _, _ := tlog.GenerateKey(origin)
	other, _ := tlog.NewSigner(skey)
	for size := uint64(4); size < 12; size++ {
		for _, planted := range [][]byte{blobtest.CheckpointText(size, "planted"), mustSign(t, other, size)} {
			if _, err := e.checkpoints.PutCheckpoint(ctx, size, planted); err != nil {
				t.Fatal(err)
			}
		}
	}
	for size := uint64(4); size < 12; size++ {
		e.grow(t, 1)
		signed, err := e.log.Publish(ctx)
		if err != nil {
			t.Fatalf("Publish at planted size %d: %v", size, err)
		}
		if cp, err := tlog.VerifyCheckpoint(signed, e.vkey); err != nil || cp.Size != size {
			t.Fatalf("Publish at %d gave a checkpoint of size %d (%v)", size, cp.Size, err)
		}
	}
	if n := len(blobtest.ListCheckpoints(t, e.checkpoints, 4)); n != 3*8 {
		t.Fatalf("%d checkpoint keys from size 4, want the log's 8 beside the 16 planted", n)
	}
}

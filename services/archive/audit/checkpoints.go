package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"

	"github.com/pecarchive/pecarchive/services/archive/blob"
	"github.com/pecarchive/pecarchive/services/archive/merklelog"
	"github.com/pecarchive/pecarchive/tlog"
)

// The checkpoints the log signed are kept twice: in the database and on write-once storage
// beside the evidence (blob.CheckpointStore). The database copies are checked with the rest of
// the log (merklelog.Log.Verify); here every write-once checkpoint, and every checkpoint held
// outside the archive (Config.Outside), is checked against the current tree with
// tlog.CheckAgainst: signed by the log's keys, not larger than the tree, and extended by it. So
// a database rewritten as a whole, or restored from an older copy, fails the audit from the
// write-once checkpoints alone.

// Finding kinds of the checkpoint audit.
const (
	CheckpointMissing     = "checkpoint-missing"     // a write-once checkpoint with no database copy
	LogRollback           = "log-rollback"           // the tree is smaller than a write-once or outside checkpoint
	CheckpointFork        = "checkpoint-fork"        // the tree does not extend a write-once or outside checkpoint
	CheckpointShadowed    = "checkpoint-shadowed"    // a version or delete marker written over a write-once checkpoint
	CheckpointUnprotected = "checkpoint-unprotected" // warning: a database checkpoint with no write-once copy
)

// CheckpointSource is the write-once checkpoint storage the audit reads (blob.CheckpointStore).
type CheckpointSource interface {
	Checkpoints(ctx context.Context, from uint64, fn func(blob.Checkpoint) error) error
}

// OutsideCheckpoint is a signed checkpoint held outside the archive (an auditor's or a
// witness's copy), named for the report.
type OutsideCheckpoint struct {
	Name   string
	Signed []byte
}

func checkpointKind(kind string) bool {
	switch kind {
	case CheckpointInvalid, CheckpointMissing, LogRollback, CheckpointFork, CheckpointShadowed, CheckpointUnprotected:
		return true
	}
	return false
}

// logKeys parses Config.LogKey and Config.LogKeys.
func logKeys(cfg Config) ([]note.Verifier, error) {
	var vs []note.Verifier
	for _, k := range append([]string{cfg.LogKey}, cfg.LogKeys...) {
		if k == "" {
			continue
		}
		more, err := tlog.ParseVerifierKeys(k)
		if err != nil {
			return nil, fmt.Errorf("audit: log key: %w", err)
		}
		vs = append(vs, more...)
	}
	return vs, nil
}

// checkpointSource returns the write-once checkpoint storage to audit, or nil.
func (a *auditor) checkpointSource() CheckpointSource {
	if a.cfg.Checkpoints != nil {
		return a.cfg.Checkpoints
	}
	if s, ok := a.cfg.Blobs.(CheckpointSource); ok {
		return s
	}
	return nil
}

// verify checks a checkpoint's signature with the log's keys (or only parses it when the audit
// has none).
func (a *auditor) verify(signed []byte) (log.Checkpoint, error) {
	if len(a.keys) == 0 {
		return tlog.ParseCheckpoint(signed)
	}
	return tlog.VerifyCheckpointAny(signed, a.keys)
}

// treeAt returns the tree of the given size from the stored nodes; ok is false (and a finding
// recorded) when they cannot make it.
func (a *auditor) treeAt(ctx context.Context, size uint64) (tree tlog.Tree, ok bool, err error) {
	root, err := a.cfg.Log.Root(ctx, size)
	if errors.Is(err, merklelog.ErrCorrupt) || errors.Is(err, merklelog.ErrOutOfRange) {
		a.add(Finding{Kind: LogInconsistent, LeafIndex: -1, Detail: fmt.Sprintf("no root of the tree of size %d from the stored nodes, "+
			"so no checkpoint is checked against it: %v", size, err)})
		return tlog.Tree{}, false, nil
	}
	if err != nil {
		return tlog.Tree{}, false, fmt.Errorf("audit: log root: %w", err)
	}
	return tlog.Tree{Size: size, Root: root, Consistency: func(from uint64) ([][]byte, error) {
		return a.cfg.Log.ConsistencyProof(ctx, from, size)
	}}, true, nil
}

// against checks cp, verified as the log's, against tree and records what it finds about it,
// where naming the copy. A checkpoint beyond the tree is checked again against the log's size
// now: one published since the audit began is left to the next audit.
func (a *auditor) against(ctx context.Context, cp log.Checkpoint, tree tlog.Tree, where string) error {
	if cp.Size > tree.Size {
		now, err := a.cfg.Log.Size(ctx)
		if err != nil {
			return fmt.Errorf("audit: log size: %w", err)
		}
		if cp.Size <= now {
			return nil
		}
		a.add(Finding{Kind: LogRollback, LeafIndex: -1, Size: cp.Size,
			Detail: fmt.Sprintf("%s is of size %d, the log has %d leaves: it lost leaves that were signed", where, cp.Size, now)})
		return nil
	}
	err := tlog.Extends(cp, tree)
	switch {
	case err == nil:
	case errors.Is(err, tlog.ErrFork), errors.Is(err, tlog.ErrInvalidProof):
		a.add(Finding{Kind: CheckpointFork, LeafIndex: -1, Size: cp.Size,
			Detail: fmt.Sprintf("%s: the log of %d leaves does not extend it: %v", where, tree.Size, err)})
	case errors.Is(err, merklelog.ErrCorrupt):
		a.add(Finding{Kind: LogInconsistent, LeafIndex: -1, Size: cp.Size,
			Detail: fmt.Sprintf("%s: no consistency proof from the stored nodes: %v", where, err)})
	default:
		return fmt.Errorf("audit: consistency of the checkpoint of size %d: %w", cp.Size, err)
	}
	return nil
}

// dbCheckpoint is one database checkpoint, streamed in size order.
type dbCheckpoint struct {
	size   uint64
	signed []byte
}

// checkpoints audits the write-once checkpoints (against the tree of the audited size and
// against their database copies) and the outside ones.
func (a *auditor) checkpoints(ctx context.Context, size uint64) error {
	src := a.checkpointSource()
	if src == nil && len(a.cfg.Outside) == 0 {
		return nil
	}
	tree, treeOK, err := a.treeAt(ctx, size)
	if err != nil {
		return err
	}
	for _, o := range a.cfg.Outside {
		a.rep.OutsideCheckpoints++
		where := fmt.Sprintf("outside checkpoint %s", o.Name)
		cp, err := a.verify(o.Signed)
		if err != nil {
			a.add(Finding{Kind: CheckpointInvalid, LeafIndex: -1, Detail: fmt.Sprintf("%s: %v", where, err)})
			continue
		}
		if treeOK {
			if err := a.against(ctx, cp, tree, where); err != nil {
				return err
			}
		}
	}
	if src == nil {
		return nil
	}

	// The database's checkpoints, streamed in size order beside the write-once ones.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	dbc := make(chan dbCheckpoint, 64)
	dbErr := make(chan error, 1)
	go func() {
		defer close(dbc)
		dbErr <- a.cfg.Log.Checkpoints(ctx, func(s uint64, signed []byte) error {
			select {
			case dbc <- dbCheckpoint{s, signed}:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	var next *dbCheckpoint
	pull := func() {
		if d, ok := <-dbc; ok {
			next = &d
		} else {
			next = nil
		}
	}
	pull()
	// unprotected names a database checkpoint with no write-once copy, after asking the
	// storage again (it may have been published since the listing).
	unprotected := func(d dbCheckpoint) error {
		if d.size > size {
			return nil // published since the audit began
		}
		found := false
		stop := errors.New("found")
		err := src.Checkpoints(ctx, d.size, func(c blob.Checkpoint) error {
			g, ok := c.Genuine()
			found = c.Size == d.size && ok && bytes.Equal(g.Signed, d.signed)
			if found || c.Size > d.size {
				return stop
			}
			return nil
		})
		if err != nil && !errors.Is(err, stop) {
			return fmt.Errorf("audit: write-once checkpoints: %w", err)
		}
		if !found {
			a.add(Finding{Kind: CheckpointUnprotected, LeafIndex: -1, Size: d.size,
				Detail: "the database's checkpoint has no copy on write-once storage"})
		}
		return nil
	}

	// The keys of one size (normally one; others were planted, or are a fork's) share the
	// database's checkpoint of that size, cur, which must be one of them.
	var cur *dbCheckpoint
	curMatched := false
	finish := func() error {
		d, matched := cur, curMatched
		cur = nil
		if d != nil && !matched {
			return unprotected(*d)
		}
		return nil
	}
	err = src.Checkpoints(ctx, 0, func(c blob.Checkpoint) error {
		a.rep.WriteOnceCheckpoints++
		if cur != nil && cur.size < c.Size {
			if err := finish(); err != nil {
				return err
			}
		}
		for cur == nil && next != nil && next.size <= c.Size {
			d := *next
			pull()
			if d.size < c.Size {
				if err := unprotected(d); err != nil {
					return err
				}
				continue
			}
			cur, curMatched = &d, false
		}
		var db []byte
		if cur != nil {
			db = cur.signed
		}
		same, err := a.writeOnce(ctx, c, db, tree, treeOK)
		curMatched = curMatched || same
		return err
	})
	if err == nil {
		err = finish()
	}
	if err == nil {
		for ; next != nil; pull() {
			if err = unprotected(*next); err != nil {
				break
			}
		}
	}
	if err != nil {
		cancel()
		for range dbc {
		}
		if errors.Is(err, blob.ErrIntegrity) {
			// The storage itself was tampered with (a filesystem store's checkpoints directory
			// replaced by a link): a finding, not a failure to audit.
			a.add(Finding{Kind: CheckpointInvalid, LeafIndex: -1,
				Detail: fmt.Sprintf("the write-once checkpoints cannot be read as the archive keeps them: %v", err)})
			return nil
		}
		return fmt.Errorf("audit: write-once checkpoints: %w", err)
	}
	if err := <-dbErr; err != nil {
		return fmt.Errorf("audit: checkpoints: %w", err)
	}
	return nil
}

// writeOnce checks one write-once checkpoint: its versions, its signature, the tree against it,
// and its database copy db (the database's checkpoint of its size; nil when none was listed).
// same reports whether db is this checkpoint.
func (a *auditor) writeOnce(ctx context.Context, c blob.Checkpoint, db []byte, tree tlog.Tree, treeOK bool) (same bool, _ error) {
	where := fmt.Sprintf("write-once checkpoint %s", c.Key)
	for _, v := range c.Shadows() {
		a.add(Finding{Kind: CheckpointShadowed, LeafIndex: -1, Size: c.Size,
			Detail: fmt.Sprintf("%s: %s written over it (the first version stays the checkpoint)", where, v)})
	}
	g, ok := c.Genuine()
	if !ok {
		return false, nil // delete markers only: named above, nothing was ever stored there
	}
	if g.Problem != "" {
		a.add(Finding{Kind: CheckpointInvalid, LeafIndex: -1, Size: c.Size, Detail: fmt.Sprintf("%s: %s", where, g.Problem)})
		return false, nil
	}
	cp, err := a.verify(g.Signed)
	if err == nil && cp.Size != c.Size {
		err = fmt.Errorf("it holds a checkpoint of size %d", cp.Size)
	}
	if err != nil {
		a.add(Finding{Kind: CheckpointInvalid, LeafIndex: -1, Size: c.Size, Detail: fmt.Sprintf("%s: %v", where, err)})
		return false, nil
	}
	if treeOK {
		if err := a.against(ctx, cp, tree, where); err != nil {
			return false, err
		}
	}
	if db == nil {
		var err error
		db, err = a.cfg.Log.SettledCheckpointAt(ctx, c.Size)
		if errors.Is(err, merklelog.ErrNotFound) {
			a.add(Finding{Kind: CheckpointMissing, LeafIndex: -1, Size: c.Size,
				Detail: fmt.Sprintf("%s has no copy in the database", where)})
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("audit: checkpoint of size %d: %w", c.Size, err)
		}
	}
	if !bytes.Equal(db, g.Signed) {
		a.add(Finding{Kind: CheckpointInvalid, LeafIndex: -1, Size: c.Size,
			Detail: fmt.Sprintf("the database's checkpoint of size %d differs from the %s", c.Size, where)})
		return false, nil
	}
	return true, nil
}

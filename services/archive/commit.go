package archive

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pecarchive/pecarchive/internal/pgerr"
	"github.com/pecarchive/pecarchive/services/archive/blob"
	"github.com/pecarchive/pecarchive/services/archive/catalog"
	"github.com/pecarchive/pecarchive/services/archive/merklelog"
	"github.com/pecarchive/pecarchive/tlog"
)

// request is one Store call waiting for the committer.
type request struct {
	items []item // the message, then the postacert.eml it carries (if any)
	// access, for a RecordAccess call instead of a Store call (no items): the record to commit,
	// whose LeafIndex and At the commit fills in.
	access *catalog.Access
	done   chan result
}

// size is how many rows and leaves r adds to a batch.
func (r *request) size() int {
	if r.access != nil {
		return 1
	}
	return len(r.items)
}

type result struct {
	rec Record
	err error
}

// committer takes the waiting requests in batches and commits each batch in one transaction.
func (a *Archive) committer() {
	defer a.done.Done()
	defer a.dropConn()
	for {
		first, ok := <-a.queue
		if !ok {
			return
		}
		a.coming.Add(-1)
		start := time.Now()
		batch := []*request{first}
		n := first.size()
		var timer *time.Timer
		var deadline <-chan time.Time
		if a.cfg.BatchDelay > 0 {
			timer = time.NewTimer(a.cfg.BatchDelay)
			deadline = timer.C
		}
	collect:
		for n < a.cfg.MaxBatch {
			select {
			case r, ok := <-a.queue:
				if !ok {
					break collect
				}
				a.coming.Add(-1)
				batch = append(batch, r)
				n += r.size()
			default:
				// Nothing queued: wait for more only while other Store calls are on their
				// way, so a lone caller is not delayed and a busy archive commits big batches.
				// A request counts in a.coming until it is taken here, so a lone caller's own
				// request never makes the committer wait for it.
				if deadline == nil || a.coming.Load() == 0 {
					break collect
				}
				select {
				case r, ok := <-a.queue:
					if !ok {
						break collect
					}
					a.coming.Add(-1)
					batch = append(batch, r)
					n += r.size()
				case <-deadline:
					deadline = nil
					break collect
				}
			}
		}
		if timer != nil {
			timer.Stop()
		}
		collected := time.Now()
		a.commitBatch(batch)
		a.stats.batched.Add(uint64(len(batch)))
		a.stats.collect.Add(int64(collected.Sub(start)))
		a.stats.transact.Add(int64(time.Since(collected)))
	}
}

// commitBatch commits batch and answers every request in it. A batch failing for a reason other
// than unavailability is retried one request at a time so a bad request fails alone.
func (a *Archive) commitBatch(batch []*request) {
	recs, err := a.commit(batch)
	if err == nil {
		for i, r := range batch {
			r.done <- result{rec: recs[i]}
		}
		return
	}
	if len(batch) > 1 && !errors.Is(err, ErrUnavailable) {
		for _, r := range batch {
			a.commitBatch([]*request{r})
		}
		return
	}
	for _, r := range batch {
		r.done <- result{err: err}
	}
}

// maxKnownSets bounds the certificate sets the committer remembers as committed.
const maxKnownSets = 4096

// connLifetime is how long the committer keeps its connection before returning it to the pool
// (so pool settings such as MaxConnLifetime still apply).
const connLifetime = time.Minute

// commitConn returns the committer's own connection, acquiring one when it has none: the
// committer does not queue behind readers for a connection on every batch.
func (a *Archive) commitConn(ctx context.Context) (*pgxpool.Conn, error) {
	if a.conn != nil && time.Since(a.connSince) > connLifetime {
		a.dropConn()
	}
	if a.conn == nil {
		c, err := a.pool.Acquire(ctx)
		if err != nil {
			return nil, err
		}
		a.conn, a.connSince = c, time.Now()
	}
	return a.conn, nil
}

// dropConn returns the committer's connection to the pool, which discards it if it broke.
func (a *Archive) dropConn() {
	if a.conn != nil {
		a.conn.Release()
		a.conn = nil
	}
}

// commit runs one transaction for batch and returns one record per request. Normally it takes
// one round trip: BEGIN, the writer and sequencer locks, the log's leaves, the catalog's rows
// with the links and delivery states the server derives, and COMMIT. That assumes every message
// is new and the log is as this committer left it; a transaction that finds otherwise (a stored
// message fails the messages primary key, a moved log fails the state check) is rolled back and
// the batch is committed again with a round trip of its own first, which looks up the stored
// messages and reads the log's state.
func (a *Archive) commit(batch []*request) (recs []Record, err error) {
	a.stats.batches.Add(1)
	defer func() {
		if err != nil {
			a.stats.failed.Add(1)
			clear(a.knownSets)
			a.logKnown = false
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.CommitTimeout)
	defer cancel()
	if a.logKnown {
		recs, miss, err := a.commitTx(ctx, batch, true)
		if !miss {
			return recs, err
		}
		a.stats.redone.Add(1)
	}
	recs, _, err = a.commitTx(ctx, batch, false)
	return recs, err
}

// beginOnFirst is a catalog.Sender whose first batch begins the transaction.
type beginOnFirst struct {
	conn *pgxpool.Conn
	tx   pgx.Tx
}

func (s *beginOnFirst) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if s.tx != nil {
		return s.tx.SendBatch(ctx, b)
	}
	first := &pgx.Batch{}
	first.BeginTx(pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	first.QueuedQueries = append(first.QueuedQueries, b.QueuedQueries...)
	br := s.conn.SendBatch(ctx, first)
	s.tx = br.Tx()
	return br
}

// commitTx runs commit's transaction. With known, it assumes that every message is new and that
// the log is in the state this committer left it in; miss reports a transaction rolled back
// because that was not so (err then says how).
func (a *Archive) commitTx(ctx context.Context, batch []*request, known bool) (recs []Record, miss bool, err error) {
	conn, err := a.commitConn(ctx)
	if err != nil {
		return nil, false, classify("connect", err)
	}
	tx := &beginOnFirst{conn: conn}
	committed := false
	defer func() {
		if err != nil {
			if !committed && tx.tx != nil {
				rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
				tx.tx.Rollback(rctx)
				rcancel()
			}
			if !miss {
				a.dropConn()
			}
		}
	}()
	// The locks, and the log's state read (or checked) under them.
	var pre pgx.Batch
	stored := make(map[[32]byte]catalog.Message)
	storedSources := make(map[catalog.SourceKey]bool)
	var sums [][32]byte
	for _, r := range batch {
		for _, it := range r.items {
			sums = append(sums, it.sum)
		}
	}
	// A batch of access records only inserts no message: the log's lock orders it, the catalog's
	// writer lock (which keeps two writers from inserting one message twice) is not needed.
	var ap *merklelog.Appender
	if known {
		if len(sums) > 0 {
			catalog.QueueLock(&pre)
		}
		ap = a.log.QueueLockAt(&pre, a.logSize, a.logPacked)
	} else {
		// A round trip of its own: which messages are stored decides which are new.
		if len(sums) > 0 {
			catalog.QueueLockAndLookup(&pre, sums, stored)
			catalog.QueueSourceKeys(&pre, sums, storedSources)
		}
		ap = a.log.QueueLock(&pre)
		if err = tx.SendBatch(ctx, &pre).Close(); err != nil {
			return nil, false, classify("lock and look up", err)
		}
		pre = pgx.Batch{}
	}

	// New messages in batch order; the first request carrying a message inserts it, and its
	// source is the message's first, which the message's leaf covers (catalog/v2). Every other
	// source not recorded yet gets a leaf of its own after the messages' leaves.
	received := a.cfg.Now().UTC().Truncate(time.Microsecond)
	inserted := map[[32]byte]int{} // sum -> index in msgs
	var msgs []catalog.Message
	var leaves [][]byte
	var further []catalog.SourceRow
	sourced := map[catalog.SourceKey]bool{}
	b := &catalog.Batch{Now: received}
	anchorsUsed := false
	for _, r := range batch {
		for _, it := range r.items {
			src := it.src
			src.FirstSeen = received
			key := catalog.KeyOf(it.sum, &src)
			_, isStored := stored[it.sum]
			_, isInserted := inserted[it.sum]
			if isStored || isInserted {
				if !sourced[key] && !storedSources[key] {
					further = append(further, catalog.SourceRow{SHA256: it.sum, Source: src, Logged: true})
				}
				sourced[key] = true
				continue
			}
			sourced[key] = true
			b.Sources = append(b.Sources, catalog.SourceRow{SHA256: it.sum, Source: src})
			m := it.msg
			m.ReceivedAt = received
			m.Normalize()
			leaf := tlog.Leaf{Kind: tlog.KindMessage, SHA256: m.SHA256, Time: received, Extra: m.LeafExtraV2(&src)}
			data := leaf.Marshal()
			if data == nil {
				return nil, false, fmt.Errorf("archive: commit: leaf of %x: %w", m.SHA256[:8], leaf.Validate())
			}
			inserted[it.sum] = len(msgs)
			msgs = append(msgs, m)
			leaves = append(leaves, data)
			if it.chain.SHA256 != ([32]byte{}) && !a.knownSets[it.chain.SHA256] {
				b.Chains = append(b.Chains, it.chain)
			}
			if m.AnchorsSHA256 == a.anchors.SHA256 {
				anchorsUsed = true
			}
		}
	}
	if anchorsUsed && !a.knownSets[a.anchors.SHA256] {
		b.Anchors = append(b.Anchors, a.anchors)
	}
	// Anchor sets the verifier did not report as its own (changed anchors) are not stored:
	// drop the reference rather than fail the foreign key.
	for i := range msgs {
		if msgs[i].AnchorsSHA256 != ([32]byte{}) && msgs[i].AnchorsSHA256 != a.anchors.SHA256 {
			msgs[i].AnchorsSHA256 = [32]byte{}
		}
	}
	// The further sources' leaves after the messages', then the access records': stamped with
	// the commit's time, their leaves carry their digests.
	for _, f := range further {
		leaf := tlog.Leaf{Kind: tlog.KindSource, SHA256: f.SHA256, Time: received, Extra: catalog.SourceLeafExtra(f.SHA256, &f.Source)}
		data := leaf.Marshal()
		if data == nil {
			return nil, false, fmt.Errorf("archive: commit: source leaf of %x: %w", f.SHA256[:8], leaf.Validate())
		}
		leaves = append(leaves, data)
	}
	for _, r := range batch {
		if acc := r.access; acc != nil {
			acc.At = received
			leaf := tlog.Leaf{Kind: tlog.KindAccess, SHA256: acc.ReturnedDigest(), Time: received, Extra: acc.LeafExtra()}
			data := leaf.Marshal()
			if data == nil {
				return nil, false, fmt.Errorf("%w: access record: %w", ErrInvalid, leaf.Validate())
			}
			leaves = append(leaves, data)
			b.Accesses = append(b.Accesses, *acc)
		}
	}
	if len(leaves) > 0 {
		first, err := ap.QueueAppend(&pre, leaves)
		if err != nil {
			return nil, false, classify("append to log", err)
		}
		for i := range msgs {
			msgs[i].LeafIndex = first + uint64(i)
		}
		for i := range further {
			further[i].LeafIndex = first + uint64(len(msgs)+i)
		}
		j := 0
		for _, r := range batch {
			if r.access != nil {
				r.access.LeafIndex = first + uint64(len(msgs)+len(further)+j)
				b.Accesses[j].LeafIndex = r.access.LeafIndex
				j++
			}
		}
	}
	b.Sources = append(b.Sources, further...)
	b.Before = pre.QueuedQueries
	b.Messages = msgs
	// COMMIT rides on the catalog's round trip, unless a test hook runs before it.
	var commitTag pgconn.CommandTag
	if a.hooks.beforeCommit == nil {
		var cb pgx.Batch
		cb.Queue("COMMIT").Exec(func(tag pgconn.CommandTag) error {
			commitTag = tag
			return nil
		})
		b.After = cb.QueuedQueries
	}
	if err = catalog.Write(ctx, tx, b); err != nil {
		// Assuming, a failure that is not the server's unavailability is taken for a wrong
		// assumption; committed again with the look-up, a real fault fails the same way.
		if known && !transient(err) {
			return nil, true, err
		}
		return nil, false, classify("write catalog", err)
	}
	if a.hooks.beforeCommit != nil {
		if err = a.hooks.beforeCommit(ctx, tx.tx); err != nil {
			return nil, false, classify("commit", err)
		}
		if err = tx.tx.Commit(ctx); err != nil {
			return nil, false, classify("commit", err)
		}
	} else {
		committed = true // or rolled back: either way the transaction is over
		if commitTag.String() != "COMMIT" {
			err = fmt.Errorf("archive: commit: the server answered %q", commitTag.String())
			return nil, false, classify("commit", err)
		}
	}
	a.logSize, a.logPacked = ap.State()
	a.logKnown = true
	if a.hooks.afterCommit != nil {
		if err := a.hooks.afterCommit(); err != nil {
			return nil, false, err
		}
	}
	// Certificate sets now committed need not be sent again (each is a few KB, and most batches
	// carry the same few provider chains). The set is forgotten when it grows large and after
	// any failed commit, so a set missing for whatever reason is written again.
	if len(a.knownSets) > maxKnownSets {
		clear(a.knownSets)
	}
	for _, c := range b.Chains {
		a.knownSets[c.SHA256] = true
	}
	for _, c := range b.Anchors {
		a.knownSets[c.SHA256] = true
	}
	a.stats.stored.Add(uint64(len(msgs)))
	a.stats.accesses.Add(uint64(len(b.Accesses)))
	a.sinceCheckpoint += len(leaves)
	if a.cfg.CheckpointEvery > 0 && a.sinceCheckpoint >= a.cfg.CheckpointEvery {
		a.sinceCheckpoint = 0
		select {
		case a.publishCh <- struct{}{}:
		default:
		}
	}

	recs = make([]Record, len(batch))
	claimed := map[[32]byte]bool{}
	for i, r := range batch {
		if r.access != nil {
			continue // its record is r.access, filled in above
		}
		var out []Record
		for _, it := range r.items {
			var rec Record
			if j, ok := inserted[it.sum]; ok {
				rec = Record{Message: msgs[j], New: !claimed[it.sum]}
				claimed[it.sum] = true
			} else {
				rec = Record{Message: stored[it.sum]}
			}
			rec.Reasons = rec.Verdict.Reasons
			out = append(out, rec)
		}
		if !out[0].New {
			a.stats.duplicates.Add(1)
		}
		recs[i] = out[0]
		if len(out) > 1 {
			recs[i].Postacert = &out[1]
		}
	}
	return recs, false, nil
}

// classify wraps err: unavailability of PostgreSQL or the blob store (network, server shut down,
// timeouts, serialization failures) as ErrUnavailable, missing things as ErrNotFound.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, ErrUnavailable), errors.Is(err, ErrInvalid), errors.Is(err, ErrNotFound),
		errors.Is(err, ErrClosed), errors.Is(err, ErrIntegrity):
		return err
	case errors.Is(err, blob.ErrNotFound), errors.Is(err, catalog.ErrNotFound), errors.Is(err, merklelog.ErrNotFound):
		return fmt.Errorf("%w: %s: %w", ErrNotFound, op, err)
	case errors.Is(err, catalog.ErrInvalid), errors.Is(err, merklelog.ErrInvalid):
		return fmt.Errorf("%w: %s: %w", ErrInvalid, op, err)
	case errors.Is(err, blob.ErrIntegrity), refusal(err):
		return fmt.Errorf("%w: %s: %w", ErrIntegrity, op, err)
	case errors.Is(err, blob.ErrUnavailable), errors.Is(err, blob.ErrReadOnly), errors.Is(err, merklelog.ErrUnavailable), transient(err):
		return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
	}
	return fmt.Errorf("archive: %s: %w", op, err)
}

// transient reports whether a PostgreSQL error means the server (or the path to it) is not usable
// right now, as opposed to a bad statement (see internal/pgerr).
func transient(err error) bool { return pgerr.Transient(err) }

package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/emersion/go-imap"
	"golang.org/x/sync/semaphore"
)

// msgInfo is a message of a folder listed by UID FETCH (UID RFC822.SIZE).
type msgInfo struct {
	uid  uint32
	size int64
}

var bodySection = &imap.BodySectionName{Peek: true}

// pullFolder pulls one folder to its end: it opens it (EXAMINE, or SELECT when the after_archive
// policy writes), checks its UIDVALIDITY against the cursor (a change starts a new epoch from
// UID 0), lists the messages above the cursor, fetches their bodies in batches while the
// archive stores them, advances the cursor over every acknowledged UID, then applies the
// policy.
func (r *runner) pullFolder(ctx context.Context, ic *imapConn, l lease, folder string, fr *FolderReport, split int) error {
	ic.g.arm(r.o.CommandTimeout)
	st, err := ic.c.Select(folder, !r.mb.policy.Writes())
	ic.g.arm(0)
	if err != nil {
		if isClosed(ic.c) || ctx.Err() != nil {
			return ic.wrap("SELECT "+folder, err)
		}
		// Deleted or renamed since LIST: the next pass lists again.
		r.log.Warn("folder cannot be opened; skipped this pass", "folder", folder, "err", err)
		return nil
	}
	uv := st.UidValidity
	if uv == 0 {
		return fmt.Errorf("%w: folder %s has no UIDVALIDITY", ErrIMAP, folder)
	}
	cur, found, err := r.s.st.cursor(ctx, r.mb.Name, folder)
	if err != nil {
		return err
	}
	switch {
	case !found:
		if err := r.s.st.start(ctx, l, folder, uv); err != nil {
			return err
		}
		cur = cursor{UIDValidity: uv}
	case cur.UIDValidity != uv:
		r.log.Warn("UIDVALIDITY changed: fetching the folder again from its start (the archive keeps each message once)",
			"folder", folder, "old_uidvalidity", cur.UIDValidity, "old_uid", cur.UID, "new_uidvalidity", uv)
		if err := r.s.st.newEpoch(ctx, l, folder, cur, uv); err != nil {
			return err
		}
		r.s.m.resets.WithLabelValues(r.mb.Name).Inc()
		fr.Resets++
		cur = cursor{UIDValidity: uv}
	case st.UidNext != 0 && st.UidNext <= cur.UID:
		// UIDs went backwards under the same UIDVALIDITY (a server restored or rebuilt without
		// changing it, against RFC 3501): its new messages may carry UIDs at or below the
		// cursor. Treated as a new epoch of the same UIDVALIDITY, so that none is skipped.
		r.log.Warn("UIDNEXT is below the cursor under the same UIDVALIDITY (the server renumbered the folder): fetching it again from its start",
			"folder", folder, "uidvalidity", uv, "cursor", cur.UID, "uidnext", st.UidNext)
		if err := r.s.st.newEpoch(ctx, l, folder, cur, uv); err != nil {
			return err
		}
		r.s.m.resets.WithLabelValues(r.mb.Name).Inc()
		fr.Resets++
		cur = cursor{UIDValidity: uv}
	}
	fr.UIDValidity, fr.UID = uv, cur.UID
	if st.Messages > 0 && (st.UidNext == 0 || st.UidNext > cur.UID+1) {
		list, err := r.listNew(ic, cur.UID, st.UidNext, st.Messages)
		if err != nil {
			return err
		}
		if len(list) > 0 {
			if err := r.fetchAndStore(ctx, ic, l, folder, uv, cur.UID, list, fr, split); err != nil {
				return err
			}
		}
	}
	r.pulled(folder, uv, st.UidNext, st.Messages, fr.UID)
	if r.mb.policy.Writes() && fr.UID > 0 {
		return r.applyPolicy(ctx, ic, folder, fr.UID)
	}
	return nil
}

// listNew returns the UIDs (and sizes) above last and below uidNext (the folder's UIDNEXT when
// it was opened; 0 when the server did not say), ascending. The server answers `last+1:*` with
// its last message even when that is at or below last: such answers are dropped. So are
// messages that arrived since the folder was opened (the next pass takes them) and UIDs the
// server could not hold, so that the cursor never passes a UID the folder has not reached.
func (r *runner) listNew(ic *imapConn, last, uidNext, messages uint32) ([]msgInfo, error) {
	set := new(imap.SeqSet)
	set.AddRange(last+1, 0)
	return r.sizes(ic, set, last, uidNext, int(messages))
}

// sizes runs UID FETCH set (UID RFC822.SIZE) and returns the distinct answers above last and
// below below (0: no bound), ascending. A server that answers about more than limit messages
// (the folder's size, or the UIDs asked for) is out of protocol: ErrIMAP.
func (r *runner) sizes(ic *imapConn, set *imap.SeqSet, last, below uint32, limit int) ([]msgInfo, error) {
	ic.g.arm(r.o.CommandTimeout + time.Duration(int64(limit)*80/r.o.MinRate)*time.Second)
	defer ic.g.arm(0)
	ch := make(chan *imap.Message, 256)
	done := make(chan error, 1)
	go func() { done <- ic.c.UidFetch(set, []imap.FetchItem{imap.FetchUid, imap.FetchRFC822Size}, ch) }()
	var list []msgInfo
	seen := map[uint32]bool{}
	over := false
	for m := range ch { // drained to its end: go-imap blocks until it is
		if m.Uid <= last || seen[m.Uid] || (below > 0 && m.Uid >= below) || over {
			continue
		}
		if len(list) == limit {
			over = true
			continue
		}
		seen[m.Uid] = true
		list = append(list, msgInfo{uid: m.Uid, size: int64(m.Size)})
	}
	if err := <-done; err != nil {
		return nil, ic.wrap("UID FETCH (RFC822.SIZE)", err)
	}
	if over {
		return nil, fmt.Errorf("%w: UID FETCH (RFC822.SIZE): the server answered about more than the %d messages it holds", ErrIMAP, limit)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].uid < list[j].uid })
	return list, nil
}

// job is one fetched message on its way to the archive.
type job struct {
	uid    uint32
	date   time.Time
	raw    []byte
	weight int64
}

// fetchAndStore fetches the bodies of list in batches (bounded by BatchMessages and BatchBytes,
// with a read deadline scaled to their size) and hands each message to Concurrency workers
// calling the archive; at most WindowBytes wait unacknowledged. The cursor follows the
// acknowledgements: it moves to the highest UID below which every message was acknowledged
// (stored, or refused and dead-lettered), written as it moves and once more at the end.
func (r *runner) fetchAndStore(ctx context.Context, ic *imapConn, l lease, folder string, uv, last uint32, list []msgInfo, fr *FolderReport, split int) error {
	tr := newTracker(last, list)
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var frMu sync.Mutex
	workers, windowBytes := max(1, r.o.Concurrency/split), max(1, r.o.WindowBytes/int64(split))
	window := &byteWindow{semaphore.NewWeighted(windowBytes), windowBytes}

	// The cursor writer: at most one write in flight; acknowledgements never wait for it.
	kick := make(chan struct{}, 1)
	flushed := make(chan struct{})
	ending := make(chan struct{}) // closed once every message is acknowledged or given up
	written := last
	flush := func(ctx context.Context) error {
		c := tr.cursor()
		if c <= written {
			return nil
		}
		if err := r.s.st.advance(ctx, l, folder, uv, c); err != nil {
			return err
		}
		written = c
		return nil
	}
	go func() {
		defer close(flushed)
		var last time.Time
		for range kick {
			// Coalesced and spaced: PostgreSQL serves the archive's commits meanwhile.
			if wait := r.o.CursorInterval - time.Since(last); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-t.C:
				case <-ending: // the last write follows at once
				case <-wctx.Done():
				}
				t.Stop()
			}
			last = time.Now()
			if err := flush(wctx); err != nil {
				if errors.Is(err, ErrLeaseLost) {
					cancel(err)
					return
				}
				if wctx.Err() == nil {
					r.log.Warn("cursor not written; retrying with the next acknowledgement", "folder", folder, "err", err)
				}
			}
		}
	}()
	ack := func(uid uint32) {
		r.lag.Set(tr.ack(uid).Seconds())
		select {
		case kick <- struct{}{}:
		default:
		}
	}

	jobs := make(chan *job)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				ok := r.storeOne(wctx, l, folder, uv, j, fr, &frMu)
				j.raw = nil
				window.Release(j.weight)
				if ok {
					ack(j.uid)
				}
			}
		}()
	}

	ferr := r.fetchBodies(wctx, ic, l, folder, uv, list, tr, window, jobs, ack, fr, &frMu)
	close(jobs)
	wg.Wait()
	close(ending)
	close(kick)
	<-flushed
	// The last write, even when ctx ended (shutdown): whatever was acknowledged is kept. It is
	// fenced by the lease, which is released only after this returns.
	fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), r.o.CommandTimeout)
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = flush(fctx); err == nil || errors.Is(err, ErrLeaseLost) {
			break
		}
		sleep(fctx, time.Second)
	}
	fcancel()
	fr.UID = written
	r.lag.Set(0)
	if c := context.Cause(wctx); c != nil && errors.Is(c, ErrLeaseLost) {
		return c
	}
	if ferr != nil {
		return ferr
	}
	if err != nil {
		return err
	}
	if ctx.Err() == nil && written < tr.end() {
		return fmt.Errorf("ingest: folder %s: cursor at %d, short of %d", folder, written, tr.end())
	}
	return ctx.Err()
}

// fetchBodies runs the UID FETCH commands of list in batches and queues each message on jobs.
func (r *runner) fetchBodies(ctx context.Context, ic *imapConn, l lease, folder string, uv uint32, list []msgInfo,
	tr *tracker, window *byteWindow, jobs chan<- *job, ack func(uint32), fr *FolderReport, frMu *sync.Mutex) error {
	for i := 0; i < len(list); {
		if list[i].size > r.o.MaxMessageSize {
			if err := r.refuseOversized(ctx, ic, l, folder, uv, list[i], fr, frMu); err != nil {
				return err
			}
			ack(list[i].uid)
			i++
			continue
		}
		j := i
		var n int64
		for j < len(list) && j-i < r.o.BatchMessages && list[j].size <= r.o.MaxMessageSize && (j == i || n+list[j].size <= r.o.BatchBytes) {
			n += list[j].size
			j++
		}
		batch := list[i:j]
		i = j
		if err := r.fetchBatch(ctx, ic, folder, batch, n, tr, window, jobs, ack, fr, frMu); err != nil {
			return err
		}
	}
	return nil
}

// fetchBatch fetches one batch of bodies. Its read deadline is CommandTimeout plus the batch's
// bytes at MinRate, not counting the time spent waiting for room in the window.
func (r *runner) fetchBatch(ctx context.Context, ic *imapConn, folder string, batch []msgInfo, n int64,
	tr *tracker, window *byteWindow, jobs chan<- *job, ack func(uint32), fr *FolderReport, frMu *sync.Mutex) error {
	set := new(imap.SeqSet)
	want := make(map[uint32]int64, len(batch)) // UID -> size listed
	for _, m := range batch {
		set.AddNum(m.uid)
		want[m.uid] = m.size
	}
	budget := r.o.CommandTimeout + time.Duration(float64(n)/float64(r.o.MinRate)*float64(time.Second))
	deadline := time.Now().Add(budget)
	ic.g.arm(budget)
	defer ic.g.arm(0)
	ch := make(chan *imap.Message, 1)
	done := make(chan error, 1)
	go func() {
		done <- ic.c.UidFetch(set, []imap.FetchItem{imap.FetchUid, imap.FetchInternalDate, bodySection.FetchItem()}, ch)
	}()
	abort := func(err error) error {
		// The connection's state is unknown: close it, so the command ends and ch is closed.
		ic.g.Conn.Close()
		for range ch {
		}
		<-done
		return err
	}
	for m := range ch {
		listed, ok := want[m.Uid]
		if !ok {
			continue // an answer about another message (flags changed, ...), or one answered twice
		}
		lit := m.GetBody(bodySection)
		if lit == nil {
			return abort(fmt.Errorf("%w: folder %s: UID %d: FETCH answered without the body", ErrIMAP, folder, m.Uid))
		}
		raw, err := literalBytes(lit)
		if err != nil {
			return abort(fmt.Errorf("%w: folder %s: UID %d: %w", ErrIMAP, folder, m.Uid, err))
		}
		if len(raw) == 0 && listed > 0 {
			// NIL or nothing for a message of many bytes: the server failed to read it.
			return abort(fmt.Errorf("%w: folder %s: UID %d: the server returned no bytes of a message of %d", ErrIMAP, folder, m.Uid, listed))
		}
		delete(want, m.Uid)
		r.fetched.Inc()
		r.bytes.Add(float64(len(raw)))
		frMu.Lock()
		fr.Fetched++
		frMu.Unlock()
		// Waiting for room is not transfer time: no deadline meanwhile.
		left := time.Until(deadline)
		ic.g.arm(0)
		w := min(int64(len(raw)), window.size)
		if err := window.Acquire(ctx, w); err != nil {
			return abort(err)
		}
		deadline = time.Now().Add(left)
		ic.g.arm(left)
		tr.fetched(m.Uid, m.InternalDate)
		select {
		case jobs <- &job{uid: m.Uid, date: m.InternalDate, raw: raw, weight: w}:
		case <-ctx.Done():
			window.Release(w)
			return abort(ctx.Err())
		}
	}
	if err := <-done; err != nil {
		return ic.wrap("UID FETCH "+folder, err)
	}
	if len(want) == 0 {
		return nil
	}
	// Asked for and not answered: expunged meanwhile (UID FETCH of an explicit set is silent
	// about UIDs that no longer exist), and then nothing is left to archive of them. Asked
	// again: one the server still lists is not passed over (the pass fails and is retried).
	missing := new(imap.SeqSet)
	for uid := range want {
		missing.AddNum(uid)
	}
	still, err := r.sizes(ic, missing, 0, 0, len(want))
	if err != nil {
		return err
	}
	if len(still) > 0 {
		return fmt.Errorf("%w: folder %s: the server did not return the body of UID %d, which it still holds", ErrIMAP, folder, still[0].uid)
	}
	for uid := range want {
		r.log.Info("message expunged before it could be fetched", "folder", folder, "uid", uid)
		ack(uid)
	}
	return nil
}

// byteWindow bounds the bytes fetched and not yet acknowledged; one message always fits.
type byteWindow struct {
	*semaphore.Weighted
	size int64
}

// literalBytes returns a literal's bytes without copying them when go-imap read them into a
// buffer (it does: one allocation of exactly the announced size).
func literalBytes(lit imap.Literal) ([]byte, error) {
	if b, ok := lit.(*bytes.Buffer); ok {
		return b.Bytes(), nil
	}
	return io.ReadAll(lit)
}

// storeOne stores one message, retrying with backoff while the archive is unavailable (the
// cursor waits meanwhile). A refusal is written to the dead-letter table. It returns true once
// the message is acknowledged, false when ctx ended first.
func (r *runner) storeOne(ctx context.Context, l lease, folder string, uv uint32, j *job, fr *FolderReport, frMu *sync.Mutex) bool {
	src := Source{Mailbox: r.mb.Name, Folder: folder, UIDValidity: uv, UID: j.uid, InternalDate: j.date}
	backoff := 100 * time.Millisecond
	warned := false
	for {
		rec, err := r.s.cfg.Archiver.Store(ctx, j.raw, src)
		switch {
		case err == nil:
			r.archived.Inc()
			frMu.Lock()
			if rec.New {
				fr.New++
			} else {
				fr.Already++
			}
			frMu.Unlock()
			if rec.New {
				r.newMsgs.Inc()
			}
			return true
		case errors.Is(err, ErrRefused):
			d := DeadLetter{Mailbox: r.mb.Name, Folder: folder, UIDValidity: uv, UID: j.uid, InternalDate: j.date,
				SHA256: sha256.Sum256(j.raw), Size: int64(len(j.raw)), Reason: err.Error()}
			if !r.recordDeadLetter(ctx, l, d) {
				return false
			}
			frMu.Lock()
			fr.Refused++
			frMu.Unlock()
			return true
		case ctx.Err() != nil:
			return false
		}
		if !warned {
			r.log.Warn("archive cannot take the message; retrying (the cursor waits)", "folder", folder, "uid", j.uid, "err", err)
			warned = true
		}
		if !sleep(ctx, jitter(backoff)) {
			return false
		}
		backoff = min(2*backoff, r.o.StoreBackoffMax)
	}
}

// recordDeadLetter writes d, retrying while PostgreSQL is unavailable; false when ctx ended or
// the lease was lost first.
func (r *runner) recordDeadLetter(ctx context.Context, l lease, d DeadLetter) bool {
	backoff := 100 * time.Millisecond
	for {
		err := r.s.st.deadLetter(ctx, l, d)
		if err == nil {
			r.refused.Inc()
			r.log.Warn("archive refused a message: dead letter written, the folder goes on", "folder", d.Folder,
				"uid", d.UID, "sha256", fmt.Sprintf("%x", d.SHA256), "size", d.Size, "reason", d.Reason)
			return true
		}
		if errors.Is(err, ErrLeaseLost) || ctx.Err() != nil {
			return false
		}
		if !sleep(ctx, jitter(backoff)) {
			return false
		}
		backoff = min(2*backoff, r.o.StoreBackoffMax)
	}
}

// refuseOversized hashes a message over MaxMessageSize piece by piece (BODY.PEEK[]<offset.length>,
// never all of it in memory) and writes it to the dead-letter table.
func (r *runner) refuseOversized(ctx context.Context, ic *imapConn, l lease, folder string, uv uint32, m msgInfo, fr *FolderReport, frMu *sync.Mutex) error {
	const piece = 8 << 20
	h := sha256.New()
	var size int64
	var date time.Time
	for off := int64(0); ; off += piece {
		if off > m.size+piece {
			// A server that keeps sending full pieces past the size it announced.
			return fmt.Errorf("%w: folder %s: UID %d: more than the %d bytes announced", ErrIMAP, folder, m.uid, m.size)
		}
		sec := &imap.BodySectionName{Peek: true, Partial: []int{int(off), piece}}
		set := new(imap.SeqSet)
		set.AddNum(m.uid)
		ic.g.arm(r.o.CommandTimeout + time.Duration(piece/r.o.MinRate)*time.Second)
		ch := make(chan *imap.Message, 1)
		done := make(chan error, 1)
		go func() {
			done <- ic.c.UidFetch(set, []imap.FetchItem{imap.FetchUid, imap.FetchInternalDate, sec.FetchItem()}, ch)
		}()
		var got []byte
		var n int
		for msg := range ch {
			if msg.Uid != m.uid {
				continue
			}
			date = msg.InternalDate
			if lit := msg.GetBody(sec); lit != nil {
				b, err := literalBytes(lit)
				if err != nil {
					return fmt.Errorf("%w: %w", ErrIMAP, err)
				}
				got, n = b, len(b)
			}
		}
		ic.g.arm(0)
		if err := <-done; err != nil {
			return ic.wrap("UID FETCH (partial)", err)
		}
		h.Write(got)
		size += int64(n)
		if n < piece {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	r.fetched.Inc()
	r.bytes.Add(float64(size))
	var sum [32]byte
	h.Sum(sum[:0])
	d := DeadLetter{Mailbox: r.mb.Name, Folder: folder, UIDValidity: uv, UID: m.uid, InternalDate: date, SHA256: sum, Size: size,
		Reason: fmt.Sprintf("ingest: message of %d bytes is over the limit of %d bytes", size, r.o.MaxMessageSize)}
	if !r.recordDeadLetter(ctx, l, d) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: mailbox %s", ErrLeaseLost, r.mb.Name)
	}
	frMu.Lock()
	fr.Fetched++
	fr.Refused++
	frMu.Unlock()
	return nil
}

// tracker follows the acknowledgements of one folder pass: the cursor is the highest UID below
// which every listed message was acknowledged.
type tracker struct {
	mu       sync.Mutex
	base     uint32
	uids     []uint32
	idx      map[uint32]int
	done     []bool
	next     int
	inflight map[uint32]time.Time
}

func newTracker(base uint32, list []msgInfo) *tracker {
	t := &tracker{base: base, uids: make([]uint32, len(list)), idx: make(map[uint32]int, len(list)),
		done: make([]bool, len(list)), inflight: map[uint32]time.Time{}}
	for i, m := range list {
		t.uids[i] = m.uid
		t.idx[m.uid] = i
	}
	return t
}

// fetched notes a message fetched and not yet acknowledged (for the lag).
func (t *tracker) fetched(uid uint32, date time.Time) {
	t.mu.Lock()
	t.inflight[uid] = date
	t.mu.Unlock()
}

// ack marks uid acknowledged; it returns the lag: the age of the oldest message still waiting.
func (t *tracker) ack(uid uint32) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	if i, ok := t.idx[uid]; ok {
		t.done[i] = true
	}
	delete(t.inflight, uid)
	for t.next < len(t.done) && t.done[t.next] {
		t.next++
	}
	var oldest time.Time
	for _, d := range t.inflight {
		if !d.IsZero() && (oldest.IsZero() || d.Before(oldest)) {
			oldest = d
		}
	}
	if oldest.IsZero() {
		return 0
	}
	return max(time.Since(oldest), 0)
}

// cursor returns the highest UID up to which every message is acknowledged.
func (t *tracker) cursor() uint32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.next == 0 {
		return t.base
	}
	return t.uids[t.next-1]
}

// end is the last listed UID.
func (t *tracker) end() uint32 {
	if len(t.uids) == 0 {
		return t.base
	}
	return t.uids[len(t.uids)-1]
}

package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/emersion/go-imap"
	"github.com/emersion/go-imap/client"
	"github.com/prometheus/client_golang/prometheus"
)

// runner pulls one mailbox.
type runner struct {
	s   *Service
	mb  *Mailbox
	o   *Options
	log *slog.Logger

	fetched, archived, newMsgs, refused, bytes prometheus.Counter
	lag                                        prometheus.Gauge

	second *imapConn // the mailbox's second connection, when one is open

	mu    sync.Mutex
	known map[string]folderState // the wanted folders as their latest pull left them
}

// folderState is what a folder's latest pull saw: its UIDVALIDITY, the UID below which every
// message was listed, and how many messages it held. A STATUS answer that differs means the
// folder has news.
type folderState struct {
	uidValidity, last, messages uint32
}

func (r *runner) closeSecond() {
	if r.second != nil {
		r.second.close()
		r.second = nil
	}
}

func (s *Service) runner(mb *Mailbox) *runner {
	l := mb.Name
	return &runner{s: s, mb: mb, o: s.o, log: s.log.With("mailbox", mb.Name),
		fetched: s.m.fetched.WithLabelValues(l), archived: s.m.archived.WithLabelValues(l),
		newMsgs: s.m.newMsgs.WithLabelValues(l), refused: s.m.refused.WithLabelValues(l),
		bytes: s.m.bytes.WithLabelValues(l), lag: s.m.lag.WithLabelValues(l)}
}

// holdLease acquires the mailbox's lease (waiting while another replica holds it, up to
// maxWait; 0 waits until ctx ends), then keeps renewing it. The returned context is cancelled
// when the lease is lost (or could not be renewed before it would expire) or ctx ends; release
// gives the lease up.
func (r *runner) holdLease(ctx context.Context, maxWait time.Duration) (lctx context.Context, l lease, release func(), err error) {
	ttl := r.o.LeaseTTL
	start := time.Now()
	logged := false
	for {
		t0 := time.Now()
		var ok bool
		var heldBy string
		l, ok, heldBy, err = r.s.st.acquire(ctx, r.mb.Name, r.s.replica, ttl)
		if err == nil && ok {
			lctx, cancel := context.WithCancelCause(ctx)
			done := make(chan struct{})
			r.s.m.leaseHeld.WithLabelValues(r.mb.Name).Set(1)
			r.log.Info("lease acquired", "replica", r.s.replica, "token", l.token)
			go r.keepLease(lctx, cancel, l, t0, done)
			return lctx, l, func() {
				cancel(nil)
				<-done
				if r.s.crashed.Load() {
					return
				}
				rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer rcancel()
				r.s.st.release(rctx, l)
				r.s.m.leaseHeld.WithLabelValues(r.mb.Name).Set(0)
			}, nil
		}
		if err != nil && ctx.Err() != nil {
			return nil, lease{}, nil, ctx.Err()
		}
		if err == nil && !logged {
			r.log.Info("lease held by another replica; waiting", "holder", heldBy)
			logged = true
		}
		if maxWait > 0 && time.Since(start) > maxWait {
			if err != nil {
				return nil, lease{}, nil, err
			}
			return nil, lease{}, nil, fmt.Errorf("lease held by replica %s", heldBy)
		}
		if !sleep(ctx, ttl/4+rand.N(ttl/8+1)) {
			return nil, lease{}, nil, ctx.Err()
		}
	}
}

// keepLease renews l every TTL/3. When a renewal fails and the lease would expire (as of the
// last renewal sent, less a margin) before the next one could succeed, it cancels the pulling:
// another replica may take the mailbox over once the lease expired, and by then this one must
// have stopped.
func (r *runner) keepLease(ctx context.Context, cancel context.CancelCauseFunc, l lease, lastSent time.Time, done chan struct{}) {
	defer close(done)
	ttl := r.o.LeaseTTL
	valid := lastSent.Add(ttl - ttl/5)
	t := time.NewTicker(ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sent := time.Now()
		rctx, rcancel := context.WithDeadline(ctx, valid)
		err := r.s.st.renew(rctx, l, ttl)
		rcancel()
		switch {
		case err == nil:
			valid = sent.Add(ttl - ttl/5)
		case errors.Is(err, ErrLeaseLost):
			r.log.Warn("lease lost", "err", err)
			r.s.m.leaseHeld.WithLabelValues(r.mb.Name).Set(0)
			cancel(err)
			return
		default:
			if time.Now().Add(ttl / 3).After(valid) {
				r.log.Warn("lease could not be renewed in time; stopping", "err", err)
				r.s.m.leaseHeld.WithLabelValues(r.mb.Name).Set(0)
				cancel(fmt.Errorf("%w: %s: %w", ErrLeaseLost, r.mb.Name, err))
				return
			}
		}
	}
}

// connect logs in to the mailbox.
func (r *runner) connect(ctx context.Context) (*imapConn, error) {
	pass, err := r.mb.password(r.s.cfg.LookupEnv)
	if err != nil {
		return nil, err
	}
	ic, err := dial(ctx, r.mb, pass, r.o)
	if errors.Is(err, ErrAuth) {
		r.s.m.authFailures.WithLabelValues(r.mb.Name).Inc()
	}
	if err != nil {
		return nil, err
	}
	go func() {
		// go-imap blocks on an unread update; keep the channel drained.
		for {
			select {
			case <-ic.c.LoggedOut():
				return
			case u := <-ic.upd:
				if _, ok := u.(*client.MailboxUpdate); ok {
					select {
					case ic.changedCh() <- struct{}{}:
					default:
					}
				}
			}
		}
	}()
	return ic, nil
}

// once pulls every folder to its end, reconnecting (at most OnceAttempts connections) when the
// connection breaks. Authentication and TLS failures end it at once.
func (r *runner) once(ctx context.Context) ([]FolderReport, error) {
	lctx, l, release, err := r.holdLease(ctx, 2*r.o.LeaseTTL)
	if err != nil {
		return nil, err
	}
	defer release()
	reports := map[string]*FolderReport{}
	backoff := r.o.BackoffMin
	var last error
	for attempt := 1; attempt <= r.o.OnceAttempts; attempt++ {
		if attempt > 1 {
			r.s.m.reconnects.WithLabelValues(r.mb.Name).Inc()
			r.log.Warn("reconnecting", "attempt", attempt, "err", last)
			if !sleep(lctx, jitter(backoff)) {
				break
			}
			backoff = min(2*backoff, r.o.BackoffMax)
		}
		last = r.pass(lctx, l, reports)
		if last == nil || errors.Is(last, ErrAuth) || errors.Is(last, ErrTLS) || errors.Is(last, ErrConfig) ||
			errors.Is(last, ErrLeaseLost) || lctx.Err() != nil {
			break
		}
	}
	if c := context.Cause(lctx); last == nil && c != nil && ctx.Err() == nil {
		last = c
	}
	out := make([]FolderReport, 0, len(reports))
	for _, fr := range reports {
		out = append(out, *fr)
	}
	return out, last
}

// run pulls the mailbox until ctx ends.
func (r *runner) run(ctx context.Context) {
	backoff := r.o.BackoffMin
	for ctx.Err() == nil {
		lctx, l, release, err := r.holdLease(ctx, 0)
		if err != nil {
			if ctx.Err() == nil {
				r.log.Error("lease", "err", err)
				sleep(ctx, jitter(backoff))
				backoff = min(2*backoff, r.o.BackoffMax)
			}
			continue
		}
		for lctx.Err() == nil {
			t0 := time.Now()
			err := r.serve(lctx, l)
			if lctx.Err() != nil {
				break
			}
			if time.Since(t0) > r.o.BackoffMax {
				backoff = r.o.BackoffMin // it served a while: this is a new failure, not a repeated one
			}
			wait := jitter(backoff)
			backoff = min(2*backoff, r.o.BackoffMax)
			if errors.Is(err, ErrAuth) || errors.Is(err, ErrTLS) || errors.Is(err, ErrConfig) {
				// Providers lock accounts and block addresses that retry logins fast.
				wait = r.o.AuthBackoff + rand.N(r.o.AuthBackoff/4+1)
			}
			r.log.Error("mailbox failed; reconnecting", "err", err, "in", wait.Round(time.Millisecond))
			r.s.m.reconnects.WithLabelValues(r.mb.Name).Inc()
			if !sleep(lctx, wait) {
				break
			}
		}
		release()
		if c := context.Cause(lctx); ctx.Err() == nil && errors.Is(c, ErrLeaseLost) {
			sleep(ctx, r.o.LeaseTTL)
		}
	}
}

// serve connects and pulls until the connection fails or ctx ends: a pass over every folder,
// then IDLE (or a poll interval) until something changes, a pass over what changed (every
// folder at least each FullPassInterval), and so on.
func (r *runner) serve(ctx context.Context, l lease) error {
	ic, err := r.connect(ctx)
	if err != nil {
		return err
	}
	defer ic.close()
	defer r.closeSecond()
	r.log.Info("connected", "server", r.mb.Addr(), "idle", ic.capable("IDLE"), "move", ic.capable("MOVE"),
		"uidplus", ic.capable("UIDPLUS"), "quota", ic.capable("QUOTA"))
	var only map[string]bool // the folders to pull; nil: every one
	var lastFull time.Time
	for {
		reports := map[string]*FolderReport{}
		if only == nil {
			lastFull = time.Now()
		}
		if err := r.passOn(ctx, ic, l, reports, only); err != nil {
			return err
		}
		for _, fr := range reports {
			if fr.Fetched > 0 {
				r.log.Info("pulled", "folder", fr.Folder, "fetched", fr.Fetched, "new", fr.New, "already", fr.Already,
					"refused", fr.Refused, "uidvalidity", fr.UIDValidity, "uid", fr.UID)
			}
		}
		if only, err = r.wait(ctx, ic, lastFull); err != nil {
			return err
		}
	}
}

// pass connects and pulls every folder once (for once).
func (r *runner) pass(ctx context.Context, l lease, reports map[string]*FolderReport) error {
	ic, err := r.connect(ctx)
	if err != nil {
		return err
	}
	defer ic.close()
	defer r.closeSecond()
	return r.passOn(ctx, ic, l, reports, nil)
}

// passOn pulls every wanted folder (of only, when not nil) to its end, adding to reports, then
// reads the quota. With several folders it pulls two at a time, on ic and on a second connection
// (at most two per mailbox), each with half of the mailbox's Store calls and window, so that one
// folder's pipeline fills while another drains.
func (r *runner) passOn(ctx context.Context, ic *imapConn, l lease, reports map[string]*FolderReport, only map[string]bool) error {
	names, err := ic.listFolders()
	if err != nil {
		return err
	}
	var folders []string
	for _, n := range names {
		if r.mb.wantFolder(n) && (only == nil || only[n]) {
			folders = append(folders, n)
			if reports[n] == nil {
				reports[n] = &FolderReport{Mailbox: r.mb.Name, Folder: n}
			}
		}
	}
	sort.Strings(folders)
	if only == nil {
		r.forgetOthers(folders) // deleted, renamed or no longer wanted
	}
	conns := []*imapConn{ic}
	if len(folders) > 1 && !r.o.OneConnection {
		if r.second == nil || isClosed(r.second.c) {
			if r.second != nil {
				r.second.close()
				r.second = nil
			}
			c2, err := r.connect(ctx)
			switch {
			case err == nil:
				r.second = c2
			case errors.Is(err, ErrAuth) || errors.Is(err, ErrTLS):
				return err // the credentials or the certificate changed: back off, don't retry logins
			case ctx.Err() == nil:
				r.log.Warn("second connection refused; pulling one folder at a time", "err", err)
			}
		}
		if r.second != nil {
			conns = append(conns, r.second)
		}
	}
	pctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	queue := make(chan string, len(folders))
	for _, f := range folders {
		queue <- f
	}
	close(queue)
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range queue {
				if pctx.Err() != nil {
					return
				}
				if err := r.pullFolder(pctx, c, l, f, reports[f], len(conns)); err != nil {
					cancel(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := context.Cause(pctx); err != nil && ctx.Err() == nil {
		return err
	}
	r.checkQuota(ic)
	return ctx.Err()
}

// checkQuota reads the mailbox's quota, exposes it and warns from QuotaWarn of a limit.
func (r *runner) checkQuota(ic *imapConn) {
	qs, err := ic.quota()
	if err != nil {
		r.log.Warn("quota", "err", err)
		return
	}
	for _, q := range qs {
		r.s.m.quotaUsage.WithLabelValues(r.mb.Name, q.Resource).Set(float64(q.Usage))
		r.s.m.quotaLimit.WithLabelValues(r.mb.Name, q.Resource).Set(float64(q.Limit))
		if q.Limit > 0 && float64(q.Usage) >= r.o.QuotaWarn*float64(q.Limit) {
			r.log.Warn("mailbox nearly full: a full PEC mailbox refuses mail", "resource", q.Resource,
				"usage", q.Usage, "limit", q.Limit, "percent", fmt.Sprintf("%.0f", 100*float64(q.Usage)/float64(q.Limit)))
		}
	}
}

// wait returns when folders may have changed, and which (nil: every folder). Where the server
// offers IDLE it idles on INBOX (or the first wanted folder when INBOX is not wanted) and wakes
// when mail arrives there; every StatusInterval it stops idling to run a STATUS check of the
// other wanted folders (UIDVALIDITY, UIDNEXT, MESSAGES: one short command each) and returns
// the folders whose answer differs from what their latest pull saw, or nil when the list of
// folders changed; a full pass is due each FullPassInterval (after_archive policies age, the
// quota is read). Without IDLE it waits PollInterval and asks for a full pass.
func (r *runner) wait(ctx context.Context, ic *imapConn, lastFull time.Time) (map[string]bool, error) {
	if !ic.capable("IDLE") {
		if !sleep(ctx, r.o.PollInterval) {
			return nil, ctx.Err()
		}
		return nil, nil
	}
	idle, ok := r.idleFolder()
	if !ok {
		if !sleep(ctx, r.o.StatusInterval) {
			return nil, ctx.Err()
		}
		return nil, nil
	}
	for {
		select { // forget updates seen before: the pass or check just made covered them
		case <-ic.changedCh():
		default:
		}
		ic.g.arm(r.o.CommandTimeout)
		st, err := ic.c.Select(idle, true)
		ic.g.arm(0)
		if err != nil {
			return nil, ic.wrap("EXAMINE "+idle, err)
		}
		if r.changed(idle, st.UidValidity, st.UidNext, st.Messages) {
			return map[string]bool{idle: true}, nil // mail arrived since it was pulled
		}
		full := time.Until(lastFull.Add(r.o.FullPassInterval))
		if full <= 0 {
			return nil, nil
		}
		woke, err := r.idle(ctx, ic, min(r.o.StatusInterval, r.o.IdleRestart, full), st.Messages)
		if err != nil || woke {
			return map[string]bool{idle: true}, err
		}
		if time.Until(lastFull.Add(r.o.FullPassInterval)) <= 0 {
			return nil, nil
		}
		changed, all, err := r.statusCheck(ic, idle)
		if err != nil || all {
			return nil, err
		}
		if len(changed) > 0 {
			return changed, nil
		}
	}
}

// idle runs IDLE on the selected folder for at most span; woke is true when the server told of
// a change: a message count (EXISTS) other than messages, the count on opening it. (The EXISTS
// of the EXAMINE itself reaches the update channel too, possibly after IDLE began.)
func (r *runner) idle(ctx context.Context, ic *imapConn, span time.Duration, messages uint32) (woke bool, err error) {
	ic.g.arm(span + r.o.CommandTimeout)
	defer ic.g.arm(0)
	stop := make(chan struct{})
	done := make(chan error, 1)
	ic.g.expectContinuation() // the server's "+ idling"
	go func() { done <- ic.c.Idle(stop, &client.IdleOptions{LogoutTimeout: r.o.IdleRestart}) }()
	t := time.NewTimer(span)
	defer t.Stop()
wait:
	for {
		select {
		case <-ctx.Done():
			break wait
		case <-ic.changedCh():
			if mb := ic.c.Mailbox(); mb == nil || mb.Messages != messages {
				woke = true
				break wait
			}
		case <-t.C:
			break wait
		case err := <-done:
			return false, ic.wrap("IDLE", err)
		}
	}
	close(stop)
	ic.g.arm(r.o.CommandTimeout)
	if err := <-done; err != nil {
		return false, ic.wrap("IDLE", err)
	}
	return woke, ctx.Err()
}

// statusCheck lists the folders and asks STATUS of every wanted one but skip (the folder IDLE
// watches, which is selected). It returns the folders whose answer differs from what their
// latest pull saw; all is true when a wanted folder appeared or disappeared.
func (r *runner) statusCheck(ic *imapConn, skip string) (changed map[string]bool, all bool, err error) {
	names, err := ic.listFolders()
	if err != nil {
		return nil, false, err
	}
	r.mu.Lock()
	n := 0
	for _, name := range names {
		if r.mb.wantFolder(name) {
			n++
			if _, ok := r.known[name]; !ok {
				all = true
			}
		}
	}
	all = all || n != len(r.known)
	r.mu.Unlock()
	if all {
		r.log.Info("folders added or removed: pulling every folder")
		return nil, true, nil
	}
	ic.g.arm(r.o.CommandTimeout)
	defer ic.g.arm(0)
	changed = map[string]bool{}
	for _, name := range names {
		if name == skip || !r.mb.wantFolder(name) {
			continue
		}
		st, err := ic.c.Status(name, []imap.StatusItem{imap.StatusUidValidity, imap.StatusUidNext, imap.StatusMessages})
		if err != nil {
			if isClosed(ic.c) {
				return nil, false, ic.wrap("STATUS "+name, err)
			}
			r.log.Warn("STATUS refused; pulling the folder", "folder", name, "err", err)
			changed[name] = true
			continue
		}
		if r.changed(name, st.UidValidity, st.UidNext, st.Messages) {
			changed[name] = true
		}
	}
	if len(changed) > 0 {
		r.log.Info("STATUS check: news in folders", "folders", len(changed))
	}
	return changed, false, nil
}

// idleFolder returns the folder IDLE watches: INBOX when it is wanted, else the first wanted
// folder; false when the latest pass found none.
func (r *runner) idleFolder() (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.known["INBOX"]; ok {
		return "INBOX", true
	}
	names := make([]string, 0, len(r.known))
	for n := range r.known {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) == 0 {
		return "", false
	}
	return names[0], true
}

// pulled records what a pull of folder saw on opening it and where its cursor ended.
func (r *runner) pulled(folder string, uidValidity, uidNext, messages, cursor uint32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.known == nil {
		r.known = map[string]folderState{}
	}
	// Every UID below the UIDNEXT seen on opening was listed (and archived, or expunged).
	r.known[folder] = folderState{uidValidity: uidValidity, last: max(cursor, uidNext-min(uidNext, 1)), messages: messages}
}

// changed reports whether a folder's UIDVALIDITY, UIDNEXT and MESSAGES (as EXAMINE or STATUS
// answered them) show news since its latest pull: another epoch, mail beyond what it listed, a
// UIDNEXT gone backwards (which the pull treats as a new epoch), or, where the server gives no
// UIDNEXT, another message count. A folder never pulled has news.
func (r *runner) changed(folder string, uidValidity, uidNext, messages uint32) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	k, ok := r.known[folder]
	switch {
	case !ok || uidValidity != k.uidValidity:
		return true
	case uidNext != 0:
		return uidNext != k.last+1
	}
	return messages != k.messages
}

// forgetOthers drops what is known of folders not in wanted.
func (r *runner) forgetOthers(wanted []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	keep := make(map[string]bool, len(wanted))
	for _, n := range wanted {
		keep[n] = true
	}
	for n := range r.known {
		if !keep[n] {
			delete(r.known, n)
		}
	}
}

// sleep waits d or until ctx ends; false when ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// jitter returns a duration between d/2 and d.
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

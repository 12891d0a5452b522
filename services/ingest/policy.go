package ingest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/emersion/go-imap"
)

// applyPolicy applies the mailbox's after_archive policy to the messages of the selected folder
// at or below the cursor (every one acknowledged) whose INTERNALDATE is older than the policy's
// days. Each candidate is fetched again and hashed, and only a message whose exact SHA-256 the
// archive confirms holding (Archiver.Lookup) is moved or expunged: with MOVE where the server
// offers it, else COPY, \Deleted and UID EXPUNGE of exactly those UIDs (UIDPLUS). Without MOVE
// or UIDPLUS nothing is removed (a plain EXPUNGE would also remove what other clients flagged).
func (r *runner) applyPolicy(ctx context.Context, ic *imapConn, folder string, upto uint32) error {
	p := r.mb.policy
	if p.Action == Move && folder == p.Folder {
		return nil
	}
	move := ic.capable("MOVE")
	uidplus := ic.capable("UIDPLUS")
	if !uidplus && !(p.Action == Move && move) {
		r.log.Warn("after_archive needs MOVE or UIDPLUS; the server has neither, nothing is removed", "policy", p.String())
		return nil
	}
	crit := imap.NewSearchCriteria()
	crit.Uid = new(imap.SeqSet)
	crit.Uid.AddRange(1, upto)
	if p.Days > 0 {
		crit.Before = time.Now().AddDate(0, 0, -p.Days)
	}
	ic.g.arm(r.o.CommandTimeout)
	uids, err := ic.c.UidSearch(crit)
	ic.g.arm(0)
	if err != nil {
		return ic.wrap("UID SEARCH "+folder, err)
	}
	if len(uids) == 0 {
		return nil
	}
	set := new(imap.SeqSet)
	set.AddNum(uids...)
	list, err := r.sizes(ic, set, 0, upto+1, len(uids))
	if err != nil {
		return err
	}
	var confirmed []uint32
	for i := 0; i < len(list); {
		j := i
		var n int64
		for j < len(list) && j-i < r.o.BatchMessages && (j == i || n+list[j].size <= r.o.BatchBytes) {
			n += list[j].size
			j++
		}
		ok, err := r.confirmArchived(ctx, ic, folder, list[i:j], n, upto)
		if err != nil {
			return err
		}
		confirmed = append(confirmed, ok...)
		i = j
	}
	if len(confirmed) == 0 {
		return nil
	}
	done := new(imap.SeqSet)
	done.AddNum(confirmed...)
	ic.g.arm(r.o.CommandTimeout)
	defer ic.g.arm(0)
	action := "expunge"
	switch {
	case p.Action == Move && move:
		action = "move"
		if err := r.ensureFolder(ic, p.Folder); err != nil {
			return err
		}
		if err := ic.c.UidMove(done, p.Folder); err != nil {
			return ic.wrap("UID MOVE", err)
		}
	default:
		if p.Action == Move {
			action = "move"
			if err := r.ensureFolder(ic, p.Folder); err != nil {
				return err
			}
			if err := ic.c.UidCopy(done, p.Folder); err != nil {
				return ic.wrap("UID COPY", err)
			}
		}
		if err := ic.c.UidStore(done, imap.FormatFlagsOp(imap.AddFlags, true), []interface{}{imap.DeletedFlag}, nil); err != nil {
			return ic.wrap("UID STORE", err)
		}
		st, err := ic.c.Execute(uidExpunge{done}, nil)
		if err == nil {
			err = st.Err()
		}
		if err != nil {
			return ic.wrap("UID EXPUNGE", err)
		}
	}
	r.s.m.moved.WithLabelValues(r.mb.Name, action).Add(float64(len(confirmed)))
	r.log.Info("after_archive applied", "folder", folder, "action", action, "policy", p.String(), "messages", len(confirmed))
	return nil
}

// confirmArchived fetches a batch of candidates again, hashes each and returns the UIDs whose
// exact bytes the archive holds.
func (r *runner) confirmArchived(ctx context.Context, ic *imapConn, folder string, batch []msgInfo, n int64, upto uint32) ([]uint32, error) {
	set := new(imap.SeqSet)
	for _, m := range batch {
		set.AddNum(m.uid)
	}
	ic.g.arm(r.o.CommandTimeout + time.Duration(float64(n)/float64(r.o.MinRate)*float64(time.Second)))
	ch := make(chan *imap.Message, 1)
	done := make(chan error, 1)
	go func() {
		done <- ic.c.UidFetch(set, []imap.FetchItem{imap.FetchUid, bodySection.FetchItem()}, ch)
	}()
	type cand struct {
		uid uint32
		sum [32]byte
	}
	var cands []cand
	for m := range ch {
		if m.Uid == 0 || m.Uid > upto || !set.Contains(m.Uid) {
			continue
		}
		lit := m.GetBody(bodySection)
		if lit == nil {
			continue
		}
		raw, err := literalBytes(lit)
		if err != nil {
			continue
		}
		cands = append(cands, cand{m.Uid, sha256.Sum256(raw)})
	}
	ic.g.arm(0)
	if err := <-done; err != nil {
		return nil, ic.wrap("UID FETCH "+folder, err)
	}
	var ok []uint32
	for _, c := range cands {
		rec, err := r.s.cfg.Archiver.Lookup(ctx, c.sum)
		switch {
		case err == nil && rec.SHA256 == c.sum:
			ok = append(ok, c.uid)
		case err == nil || errors.Is(err, ErrNotArchived):
			reason := "a different record"
			if err != nil {
				reason = err.Error()
			}
			r.log.Warn("after_archive: the archive does not hold this message; it stays in the mailbox",
				"folder", folder, "uid", c.uid, "sha256", fmt.Sprintf("%x", c.sum), "reason", reason)
		default:
			// Unknown: keep everything not yet confirmed, try again next pass.
			r.log.Warn("after_archive: archive look-up failed; nothing more removed this pass", "folder", folder, "err", err)
			return ok, nil
		}
	}
	return ok, nil
}

// ensureFolder creates the policy's target folder when it does not exist.
func (r *runner) ensureFolder(ic *imapConn, name string) error {
	st, err := ic.c.Status(name, []imap.StatusItem{imap.StatusUidValidity})
	if err == nil && st != nil {
		return nil
	}
	if isClosed(ic.c) {
		return ic.wrap("STATUS "+name, err)
	}
	if err := ic.c.Create(name); err != nil {
		return ic.wrap("CREATE "+name, err)
	}
	return nil
}

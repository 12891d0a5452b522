package query

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/pecarchive/pecarchive/evidence/verdict"
	"github.com/pecarchive/pecarchive/services/archive/catalog"
	"github.com/pecarchive/pecarchive/services/archive/reader"
)

// Selector says which messages to prove: by the original's Message-ID, by PEC id, or by sender
// and/or recipient and the time they were sent. Exactly one way.
type Selector struct {
	MsgID string
	PECID string
	// Sender, Recipient, Since and Until select by parties (at least a sender or a recipient).
	Sender, Recipient string
	Since, Until      time.Time
}

// String is the selector as recorded in the access log.
func (s Selector) String() string {
	switch {
	case s.MsgID != "":
		return "msgid=" + s.MsgID
	case s.PECID != "":
		return "pec-id=" + s.PECID
	}
	var parts []string
	if s.Sender != "" {
		parts = append(parts, "sender="+s.Sender)
	}
	if s.Recipient != "" {
		parts = append(parts, "recipient="+s.Recipient)
	}
	if !s.Since.IsZero() {
		parts = append(parts, "since="+s.Since.UTC().Format(time.RFC3339Nano))
	}
	if !s.Until.IsZero() {
		parts = append(parts, "until="+s.Until.UTC().Format(time.RFC3339Nano))
	}
	return strings.Join(parts, " ")
}

func (s Selector) check() error {
	n := 0
	for _, set := range []bool{s.MsgID != "", s.PECID != "", s.Sender != "" || s.Recipient != ""} {
		if set {
			n++
		}
	}
	switch {
	case n != 1:
		return invalid("give one selector: a msgid, a PEC id, or a sender and/or recipient")
	case len(s.MsgID) > catalog.MaxID || len(s.PECID) > catalog.MaxID || len(s.Sender) > catalog.MaxID || len(s.Recipient) > catalog.MaxID:
		return invalid("a selector is over %d bytes", catalog.MaxID)
	case (s.MsgID != "" || s.PECID != "") && (!s.Since.IsZero() || !s.Until.IsZero()):
		return invalid("a time range goes with a sender or a recipient")
	case !s.Since.IsZero() && !s.Until.IsZero() && !s.Since.Before(s.Until):
		return invalid("since must be before until")
	}
	return nil
}

// ProveRequest asks for a page of answers.
type ProveRequest struct {
	Selector Selector
	// PageSize bounds the messages of the page (0: DefaultProvePageSize; at most
	// MaxProvePageSize).
	PageSize int
	// PageToken continues a previous answer (its NextPageToken).
	PageToken string
}

// Checkpoint is a signed checkpoint of the log.
type Checkpoint struct {
	Origin string
	Size   uint64
	Root   []byte
	Signed []byte // the signed note as published; nil before the first checkpoint
}

// Receipt is one receipt behind an answer, with its inclusion proof against the answer's
// checkpoint (nil when the leaf is newer than it).
type Receipt struct {
	catalog.Message
	Proof [][]byte
}

// RecipientAnswer is the answer for one recipient.
type RecipientAnswer struct {
	Address                      string
	Verdict                      verdict.Verdict
	ExplanationIT, ExplanationEN string
	// At is the daticert time of the deciding receipt (zero when none).
	At time.Time
	// Deciding is the SHA-256 of the receipt the verdict rests on (zero when none).
	Deciding [32]byte
	// Receipts about this recipient, valid or not, oldest first.
	Receipts []*Receipt
	// Conflicting are the SHA-256s of valid receipts that contradict each other.
	Conflicting [][32]byte
}

// MessageAnswer is the answer for one message.
type MessageAnswer struct {
	MsgID, PECID, Subject, Sender string
	// SentAt is the acceptance's daticert time, else the original's Date (zero when unknown).
	SentAt time.Time
	// SHA256 is the original's, else its transport envelope's (zero when the archive holds
	// neither).
	SHA256     [32]byte
	Recipients []RecipientAnswer
}

// Answer is what ProveDelivery returns.
type Answer struct {
	Checkpoint Checkpoint
	// Messages newest first.
	Messages []MessageAnswer
	// NextPageToken continues the answer; empty on its last page.
	NextPageToken string
}

// Prove answers for the messages req selects, after recording the read as who calling method.
func (s *Service) Prove(ctx context.Context, who Caller, method string, req ProveRequest) (*Answer, error) {
	sel := req.Selector
	if err := sel.check(); err != nil {
		return nil, err
	}
	sel.MsgID, sel.PECID = catalog.MsgID(sel.MsgID), catalog.MsgID(sel.PECID)
	if err := sel.check(); err != nil { // "<>" normalises to nothing
		return nil, err
	}
	size, err := pageSize(req.PageSize, DefaultProvePageSize, MaxProvePageSize)
	if err != nil {
		return nil, err
	}
	key := fmt.Sprintf("prove %s %d", sel, size)
	msgids, next, err := s.msgids(ctx, sel, size, key, req.PageToken)
	if err != nil {
		return nil, err
	}
	ans := &Answer{NextPageToken: next}
	// The checkpoint first: every proof of the answer is against it.
	if ans.Checkpoint, err = s.latestCheckpoint(ctx); err != nil && !isNotFound(err) {
		return nil, err
	}
	var returned [][32]byte
	var proved []*Receipt
	for _, id := range msgids {
		rows, err := s.rd.Messages(ctx, reader.Selector{MsgID: id}, catalog.MaxLimit)
		if err != nil {
			return nil, err
		}
		ms, sums, rs := answersFor(id, rows, sel.PECID)
		ans.Messages = append(ans.Messages, ms...)
		returned = append(returned, sums...)
		proved = append(proved, rs...)
	}
	if sel.PECID != "" {
		// Several originals may share a PEC id only in theory; newest first all the same.
		sort.SliceStable(ans.Messages, func(i, j int) bool { return ans.Messages[i].SentAt.After(ans.Messages[j].SentAt) })
	}
	// What the answer returns is known: record the read while the proofs are read (they change
	// nothing of it). The answer leaves only if both succeed.
	recorded := make(chan error, 1)
	go func() { recorded <- s.record(ctx, who, method, sel.String(), returned) }()
	perr := s.prove(ctx, ans.Checkpoint.Size, proved)
	if err := <-recorded; err != nil {
		return nil, err
	}
	if perr != nil {
		return nil, perr
	}
	return ans, nil
}

// latestCheckpoint returns the latest checkpoint, read again once it is older than
// Config.CheckpointTTL.
func (s *Service) latestCheckpoint(ctx context.Context) (Checkpoint, error) {
	if c := s.cp.Load(); c != nil && time.Since(c.at) < s.cfg.CheckpointTTL {
		return c.cp, nil
	}
	at := time.Now()
	cp, err := s.Checkpoint(ctx)
	if err != nil {
		return Checkpoint{}, err
	}
	s.cp.Store(&cachedCheckpoint{cp: cp, at: at})
	return cp, nil
}

// prove fills in the inclusion proofs of the receipts whose leaves the checkpoint of size covers,
// with one query.
func (s *Service) prove(ctx context.Context, size uint64, rs []*Receipt) error {
	var idx []uint64
	var covered []*Receipt
	for _, r := range rs {
		if r.LeafIndex < size {
			idx = append(idx, r.LeafIndex)
			covered = append(covered, r)
		}
	}
	if len(idx) == 0 {
		return nil
	}
	proofs, err := s.rd.InclusionProofs(ctx, idx, size)
	if err != nil {
		return err
	}
	for i, r := range covered {
		r.Proof = proofs[i]
	}
	return nil
}

// msgids resolves the selector to the msgids of one page, newest first, and the token of the
// next page.
func (s *Service) msgids(ctx context.Context, sel Selector, size int, key, token string) ([]string, string, error) {
	var pos position
	if token != "" {
		p, err := decodeToken(key, token)
		if err != nil {
			return nil, "", fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		pos = p
	}
	switch {
	case sel.MsgID != "":
		if token != "" {
			return nil, "", nil
		}
		return []string{sel.MsgID}, "", nil
	case sel.PECID != "":
		rows, err := s.rd.Messages(ctx, reader.Selector{PECID: sel.PECID}, catalog.MaxLimit)
		if err != nil {
			return nil, "", err
		}
		// Distinct msgids, the most recently received first.
		latest := map[string]time.Time{}
		for _, m := range rows {
			if k := catalog.ConversationKey(&m); k != "" && m.ReceivedAt.After(latest[k]) {
				latest[k] = m.ReceivedAt
			}
		}
		ids := make([]string, 0, len(latest))
		for k := range latest {
			ids = append(ids, k)
		}
		sort.Slice(ids, func(i, j int) bool {
			if !latest[ids[i]].Equal(latest[ids[j]]) {
				return latest[ids[i]].After(latest[ids[j]])
			}
			return ids[i] > ids[j]
		})
		off := int(pos.offset)
		if off > len(ids) {
			off = len(ids)
		}
		ids = ids[off:]
		if len(ids) > size {
			return ids[:size], encodeToken(key, position{offset: uint32(off + size)}), nil
		}
		return ids, "", nil
	}
	q := catalog.ConversationQuery{Sender: sel.Sender, Recipient: sel.Recipient, Since: sel.Since, Until: sel.Until, Limit: size + 1}
	if token != "" {
		q.After = &catalog.Conversation{MsgID: string(pos.key), SentAt: pos.at}
	}
	qctx, cancel := context.WithTimeout(ctx, s.cfg.SearchTimeout)
	defer cancel()
	cs, err := s.rd.Conversations(qctx, q)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(cs) > size {
		cs = cs[:size]
		last := cs[len(cs)-1]
		next = encodeToken(key, position{at: last.SentAt, key: []byte(last.MsgID)})
	}
	ids := make([]string, len(cs))
	for i, c := range cs {
		ids[i] = c.MsgID
	}
	return ids, next, nil
}

// toVerdict describes a catalog row for the verdict rule.
func toVerdict(m *catalog.Message) verdict.Message {
	return verdict.Message{SHA256: m.SHA256, Kind: m.Kind, MsgID: catalog.ConversationKey(m), PECID: m.PECID, ReceiptType: m.ReceiptType,
		Errore: m.Errore, ErroreEsteso: m.ErroreEsteso, Consegna: m.Consegna, Recipients: m.Recipients,
		Provider: m.Provider, DaticertTime: m.DaticertTime, SignedAt: m.Verdict.SignedAt,
		Valid: m.Verdict.Valid, Trusted: m.Verdict.Trusted, Reasons: m.Verdict.Reasons}
}

// answersFor decides for the message msgid from its catalog rows (the original and its copies,
// envelopes and receipts, oldest first) with verdict.Conversation, the rule an offline verifier
// of an evidence bundle applies again: one answer per sending the rows prove, newest first, or
// one answer when they prove at most one; with only set, just the answer for that PEC id (when
// the rows prove it). It returns the answers, the SHA-256s they carry (for the access record,
// each once) and their receipts (for their proofs).
func answersFor(msgid string, rows []catalog.Message, only string) ([]MessageAnswer, [][32]byte, []*Receipt) {
	var out []MessageAnswer
	var sums [][32]byte
	var all []*Receipt
	add := func(s [32]byte) {
		if !slices.Contains(sums, s) {
			sums = append(sums, s)
		}
	}
	for _, a := range verdict.Conversation(msgid, verdictRows(rows), only) {
		ans := MessageAnswer{MsgID: a.MsgID, PECID: a.PECID, Subject: a.Subject, Sender: a.Sender, SentAt: a.SentAt}
		if a.Original >= 0 {
			ans.SHA256 = rows[a.Original].SHA256
			add(ans.SHA256)
		}
		receipts := make([]*Receipt, len(a.Receipts))
		for j, i := range a.Receipts {
			receipts[j] = &Receipt{Message: rows[i]}
			add(rows[i].SHA256)
		}
		for _, r := range a.Recipients {
			ra := RecipientAnswer{Address: r.Address, Verdict: r.Verdict, ExplanationIT: r.ExplanationIT, ExplanationEN: r.ExplanationEN, At: r.At}
			if r.Deciding >= 0 {
				ra.Deciding = receipts[r.Deciding].SHA256
			}
			for _, i := range r.Receipts {
				ra.Receipts = append(ra.Receipts, receipts[i])
			}
			for _, i := range r.Conflicts {
				ra.Conflicting = append(ra.Conflicting, receipts[i].SHA256)
			}
			ans.Recipients = append(ans.Recipients, ra)
		}
		out = append(out, ans)
		all = append(all, receipts...)
	}
	return out, sums, all
}

// verdictRows describes catalog rows for verdict.Conversation.
func verdictRows(rows []catalog.Message) []verdict.Row {
	vrows := make([]verdict.Row, len(rows))
	for i := range rows {
		m := &rows[i]
		vrows[i] = verdict.Row{Message: toVerdict(m), MessageID: m.MessageID, Subject: m.Subject, Sender: m.Sender, HeaderDate: m.HeaderDate}
	}
	return vrows
}

func isNotFound(err error) bool { return errors.Is(err, reader.ErrNotFound) }

package verdict

import (
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/pecarchive/pecarchive/pec"
)

// Row is one stored message of a conversation (the original, its copies, its transport envelopes
// and its receipts): the fields of [Message], whose MsgID is the conversation key (the catalog's
// ref_msgid), and what the answer shows of it.
type Row struct {
	Message
	// MessageID is the message's own Message-ID, without angle brackets.
	MessageID string
	// Subject is the Subject header, Sender the daticert mittente (else the From address).
	Subject, Sender string
	// HeaderDate is the Date header (zero when unknown).
	HeaderDate time.Time
}

// Answer is the answer about one sending of a message: what it was, and per recipient the
// verdict.
type Answer struct {
	MsgID, PECID, Subject, Sender string
	// SentAt is the acceptance's daticert time (a counting acceptance's when there is one), else
	// the original's Date (zero when unknown).
	SentAt time.Time
	// Original is the index in the rows of the original as sent, else of its transport envelope,
	// else of a copy of it (such as the postacert.eml of a complete delivery receipt); -1 when
	// there is none.
	Original int
	// Receipts are the indices in the rows of the sending's receipts, in row order. The receipt
	// indices of Result (Deciding, Receipts, Conflicts, Failed, Ignored) index this list.
	Receipts []int
	Result
}

// Conversation answers for the message msgid from the stored rows of its conversation, oldest
// first (by the time the archive received them, then SHA-256): one answer per sending the rows
// prove, newest first, or one answer when they prove at most one; with only set, just the answer
// for that PEC id (when the rows prove it). A Message-ID is chosen by the sender's mail client and
// may be sent again, or reused by someone else; the sender's provider gives each sending its own
// PEC id, which its receipts repeat, so a receipt of one sending never proves another. The query
// service answers with it from the catalog and an offline verifier of an evidence bundle again
// from the bundle's re-verified messages, so both reach the same answers from the same rows.
func Conversation(msgid string, rows []Row, only string) []Answer {
	msgid = NormMsgID(msgid)
	ids := sendings(rows)
	if len(ids) == 0 {
		ids = []string{""}
	}
	if only != "" && slices.Contains(ids, only) {
		ids = []string{only}
	}
	var out []Answer
	for _, id := range ids {
		a := sending(msgid, id, rows)
		if a.Original < 0 && len(a.Receipts) == 0 {
			continue // nothing of it (a race with nothing: rows are never deleted)
		}
		out = append(out, a)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].SentAt.After(out[j].SentAt) })
	return out
}

func counts(r *Row) bool { return Counts(&r.Message) }

// sendings returns the PEC ids of the sendings the rows prove: the identificativi of the
// counting acceptances, transport envelopes and receipts, in the order of the rows.
func sendings(rows []Row) []string {
	var ids []string
	for i := range rows {
		r := &rows[i]
		if r.Kind != pec.KindNotPEC && r.PECID != "" && counts(r) && !slices.Contains(ids, r.PECID) {
			ids = append(ids, r.PECID)
		}
	}
	return ids
}

// sending answers for the sending pecID of the message msgid (any sending when pecID is empty).
// Counting envelopes, acceptances and receipts of other sendings are left to their own answers;
// rows that do not count are listed wherever their msgid puts them (they never decide, and what
// they claim of their sending is not to be believed).
func sending(msgid, pecID string, rows []Row) Answer {
	ans := Answer{MsgID: msgid, PECID: pecID, Original: -1}
	sent, envelope, copyOf, acceptance := -1, -1, -1, -1
	var vms []Message
	for i := range rows {
		r := &rows[i]
		if pecID != "" && r.Kind != pec.KindNotPEC && r.PECID != pecID && counts(r) {
			continue // another sending's
		}
		switch {
		case r.Kind == pec.KindNotPEC && r.MessageID == msgid && sent < 0:
			sent = i
		case r.Kind == pec.KindNotPEC && copyOf < 0:
			copyOf = i
		case r.Kind == pec.KindPostaCertificata && envelope < 0:
			envelope = i
		case r.Kind.IsReceipt():
			ans.Receipts = append(ans.Receipts, i)
			vms = append(vms, r.Message)
			if r.Kind == pec.KindAccettazione && (acceptance < 0 || !counts(&rows[acceptance]) && counts(r)) {
				acceptance = i
			}
		}
	}
	for _, i := range []int{sent, envelope, copyOf} {
		if i >= 0 {
			ans.Original = i
			break
		}
	}
	var recipients []string
	if ans.Original >= 0 {
		o := &rows[ans.Original]
		recipients = o.Recipients
		ans.Subject, ans.Sender = subjectOf(o), o.Sender
		if o.Kind == pec.KindNotPEC {
			ans.SentAt = o.HeaderDate
		}
	}
	// The PEC id, sender and sending time of the acceptance (a counting one if any).
	if acceptance >= 0 {
		a := &rows[acceptance]
		ans.SentAt = a.DaticertTime
		if ans.PECID == "" {
			ans.PECID = a.PECID
		}
		if ans.Sender == "" {
			ans.Sender = a.Sender
		}
		if ans.Subject == "" {
			ans.Subject = subjectOf(a)
		}
	}
	for _, i := range ans.Receipts {
		r := &rows[i]
		if ans.PECID == "" {
			ans.PECID = r.PECID
		}
		if ans.Sender == "" {
			ans.Sender = r.Sender
		}
		if ans.Subject == "" {
			ans.Subject = subjectOf(r)
		}
	}
	if ans.PECID == "" && envelope >= 0 {
		ans.PECID = rows[envelope].PECID
	}
	ans.Result = Decide(Original{MsgID: msgid, PECID: pecID, Recipients: recipients}, vms)
	return ans
}

// subjectOf returns the subject of the original a message is or is about: a PEC message's
// subject is "TIPO: subject".
func subjectOf(r *Row) string {
	if r.Kind == pec.KindNotPEC {
		return r.Subject
	}
	if _, rest, ok := strings.Cut(r.Subject, ": "); ok {
		return rest
	}
	return r.Subject
}

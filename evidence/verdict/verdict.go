// Package verdict owns the rule that answers "was this PEC message delivered to this recipient?"
// from the message's receipts, and says why in Italian and in English. It is pure: no database,
// no network, no clock. Every message is described by plain fields ([Message]) that anyone can
// re-derive from the raw bytes with packages pec and pec/smime ([FromPEC]), so the query service
// answers with it from the catalog and an offline verifier of an evidence bundle reaches the
// same answer from the re-parsed, re-verified messages.
//
// # The rule
//
// A receipt counts only when it refers to the message asked about and its signature is valid
// and trusted as of its signing time with no reason against it beyond warnings ([Counts]). A
// receipt refers to the message when its daticert msgid is the original's Message-ID and, once
// the sending is known ([Original].PECID: the identificativo the sender's provider gave it, which
// every receipt of that sending repeats), its identificativo is that one: a Message-ID is chosen
// by the sender's mail client and may be reused, by mistake or on purpose, and a receipt of
// another sending with the same Message-ID proves nothing about this one. Per recipient, the
// receipts about that recipient decide, strongest first:
//
//   - [Delivered]: a counting delivery receipt (avvenuta-consegna) whose consegna names that very
//     recipient. Nothing else makes a recipient delivered: not a receipt that fails
//     verification (forged, tampered, signed by a rogue or untrusted certificate, expired when
//     signed), whatever it claims, nor a receipt about another message or another recipient.
//   - [NotDelivered]: a counting non-delivery notice (errore-consegna) for the recipient.
//   - [NotAccepted]: a counting non-acceptance (non-accettazione) of the message.
//   - [Warned]: a counting non-delivery warning (preavviso-errore-consegna: not delivered within
//     12 hours).
//   - [AcceptedOnly]: a counting acceptance (accettazione) listing the recipient, and nothing
//     stronger.
//   - [Unverified]: receipts about the recipient exist but none counts; the answer says why.
//   - [Pending]: no receipt about the recipient at all.
//
// The deciding receipt is the earliest (by daticert time, then SHA-256) of the strongest class.
// Counting receipts that contradict each other for one recipient (a delivery and a non-delivery,
// a delivery and a non-acceptance, an acceptance and a non-acceptance) are all listed in
// [Recipient.Conflicts] and the explanation says so; the stronger class still decides. Receipts
// that fail verification are listed, never decide, and the explanation names the strongest of
// them with its reasons when it claimed more than what decided.
package verdict

import (
	"bytes"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/pecarchive/pecarchive/pec"
	"github.com/pecarchive/pecarchive/pec/smime"
)

// Verdict is the answer for one recipient.
type Verdict string

// Verdicts, strongest first.
const (
	Delivered    Verdict = "DELIVERED"
	NotDelivered Verdict = "NOT_DELIVERED"
	NotAccepted  Verdict = "NOT_ACCEPTED"
	Warned       Verdict = "WARNED"
	AcceptedOnly Verdict = "ACCEPTED_ONLY"
	Unverified   Verdict = "UNVERIFIED"
	Pending      Verdict = "PENDING"
)

// Verdicts lists every verdict, strongest first.
var Verdicts = []Verdict{Delivered, NotDelivered, NotAccepted, Warned, AcceptedOnly, Unverified, Pending}

// Message describes one PEC message (an original, its transport envelope, or a receipt) by
// plain fields, as stored in the catalog or as re-derived from the raw bytes ([FromPEC]).
type Message struct {
	SHA256 [32]byte
	Kind   pec.Kind // the daticert tipo, "anomalia" or "not-pec"
	// MsgID is the Message-ID of the original the message refers to: for a receipt or an
	// envelope its daticert msgid (else its X-Riferimento-Message-ID); for an original, its own.
	// Angle brackets and surrounding space are ignored.
	MsgID string
	// PECID is the daticert identificativo: the PEC id the sender's provider gave the sending
	// the receipt is about (empty for an original). Compared like MsgID.
	PECID        string
	ReceiptType  pec.ReceiptType
	Errore       pec.ErrorCode
	ErroreEsteso string
	// Consegna is the daticert consegna: the recipient a delivery, non-delivery or warning is
	// about.
	Consegna string
	// Recipients are the daticert destinatari (for an original, its To and Cc). Addresses are
	// compared case-insensitively.
	Recipients []string
	// Provider is the daticert gestore-emittente.
	Provider string
	// DaticertTime is the daticert data (zero when unknown); SignedAt the CMS signing time.
	DaticertTime, SignedAt time.Time
	// Valid: the CMS signature matches the exact signed bytes. Trusted: the signer chains to a
	// trust anchor as of the signing time and fits the PEC profile (see pec/smime).
	Valid, Trusted bool
	// Reasons are the verification reasons (pec/smime Reason values).
	Reasons []string
}

// Original is the message asked about: its Message-ID and the recipients it was sent to (the
// To and Cc of the original, or the destinatari of its transport envelope; may be empty when
// neither is stored, then the receipts name the recipients).
type Original struct {
	MsgID string
	// PECID, when known, is the identificativo the sender's provider gave this sending (from a
	// counting acceptance or transport envelope): a counting receipt with another identificativo
	// is about another sending of the same Message-ID and is ignored. A receipt that does not
	// count is listed all the same (its identificativo is no more believable than the rest of
	// it, and it never decides). Empty: the Message-ID alone says what a receipt is about.
	PECID      string
	Recipients []string
}

// Recipient is the answer for one recipient.
type Recipient struct {
	Address string // lower case
	Verdict Verdict
	// ExplanationIT and ExplanationEN say in one sentence what decided and why.
	ExplanationIT, ExplanationEN string
	// Deciding is the index (in the receipts given to [Decide]) of the receipt the verdict
	// rests on, -1 for Unverified and Pending.
	Deciding int
	// At is the daticert time of the deciding receipt (zero when none).
	At time.Time
	// Receipts are the indices of every receipt about this recipient, counting or not, in the
	// order given.
	Receipts []int
	// Conflicts are the indices of the counting receipts about this recipient that contradict
	// one another (empty when they agree).
	Conflicts []int
	// Failed are the indices of the receipts about this recipient that do not count because
	// their signature fails verification.
	Failed []int
}

// Ignored is a receipt that [Decide] did not consider, and why.
type Ignored struct {
	Index  int
	Reason string // IgnoredOtherMessage or IgnoredOtherSending
}

// Reasons of [Ignored].
const (
	IgnoredOtherMessage = "refers to another message"
	IgnoredOtherSending = "refers to another sending of the same Message-ID"
)

// Result is the answer of [Decide].
type Result struct {
	// Recipients in order: the original's recipients as given, then the others the receipts
	// name, sorted.
	Recipients []Recipient
	// Ignored are receipts about another message.
	Ignored []Ignored
}

// class orders the kinds of receipt by what they prove.
type class int

const (
	classNone          class = iota
	classAcceptance          // accettazione
	classWarning             // preavviso-errore-consegna
	classNonAcceptance       // non-accettazione
	classNonDelivery         // errore-consegna
	classDelivery            // avvenuta-consegna
	classInformative         // presa-in-carico, rilevazione-virus: listed, never deciding
)

func classOf(k pec.Kind) class {
	switch k {
	case pec.KindAccettazione:
		return classAcceptance
	case pec.KindPreavvisoErroreConsegna:
		return classWarning
	case pec.KindNonAccettazione:
		return classNonAcceptance
	case pec.KindErroreConsegna:
		return classNonDelivery
	case pec.KindAvvenutaConsegna:
		return classDelivery
	case pec.KindPresaInCarico, pec.KindRilevazioneVirus:
		return classInformative
	}
	return classNone
}

// rank is the strength of a class when deciding (higher wins).
var rank = map[class]int{classAcceptance: 1, classWarning: 2, classNonAcceptance: 3, classNonDelivery: 4, classDelivery: 5}

var verdictOf = map[class]Verdict{classAcceptance: AcceptedOnly, classWarning: Warned, classNonAcceptance: NotAccepted,
	classNonDelivery: NotDelivered, classDelivery: Delivered}

// contradicts reports whether counting receipts of classes a and b cannot both be true of one
// recipient.
func contradicts(a, b class) bool {
	pair := func(x, y class) bool { return a == x && b == y || a == y && b == x }
	return pair(classDelivery, classNonDelivery) || pair(classDelivery, classNonAcceptance) || pair(classAcceptance, classNonAcceptance)
}

// Counts reports whether m's signature may support a verdict: valid and trusted, with no reason
// against it but warnings (a verifier reporting Trusted with, say, "expired" among the reasons
// is not believed).
func Counts(m *Message) bool {
	if !m.Valid || !m.Trusted {
		return false
	}
	for _, r := range m.Reasons {
		if !smime.IsWarning(r) {
			return false
		}
	}
	return true
}

// NormMsgID normalises a Message-ID for comparison: surrounding space and every enclosing pair of
// angle brackets removed.
func NormMsgID(s string) string {
	s = strings.TrimSpace(s)
	for len(s) >= 2 && s[0] == '<' && s[len(s)-1] == '>' {
		s = strings.TrimSpace(s[1 : len(s)-1])
	}
	return s
}

// NormAddr normalises an address for comparison: surrounding space and an enclosing pair of
// angle brackets removed, lower case.
func NormAddr(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && s[0] == '<' && s[len(s)-1] == '>' {
		s = strings.TrimSpace(s[1 : len(s)-1])
	}
	return strings.ToLower(s)
}

// about returns the recipients receipt m is about.
func about(m *Message, c class) []string {
	switch c {
	case classDelivery:
		// Only the recipient it names: a delivery receipt without consegna proves nothing about
		// anyone.
		if a := NormAddr(m.Consegna); a != "" {
			return []string{a}
		}
		return nil
	case classNonDelivery, classWarning, classInformative:
		if a := NormAddr(m.Consegna); a != "" {
			return []string{a}
		}
	}
	var out []string
	for _, r := range m.Recipients {
		if a := NormAddr(r); a != "" && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// Decide answers for every recipient of orig from receipts (see the package documentation).
// Messages that are not receipts (originals, envelopes, anomalies) among receipts are skipped;
// receipts about another message are reported in Result.Ignored.
func Decide(orig Original, receipts []Message) Result {
	msgid, pecID := NormMsgID(orig.MsgID), NormMsgID(orig.PECID)
	var res Result
	var order []string
	byAddr := map[string]*Recipient{}
	add := func(a string) *Recipient {
		if r, ok := byAddr[a]; ok {
			return r
		}
		r := &Recipient{Address: a, Deciding: -1}
		byAddr[a] = r
		order = append(order, a)
		return r
	}
	for _, r := range orig.Recipients {
		if a := NormAddr(r); a != "" {
			add(a)
		}
	}
	known := len(order)
	for i := range receipts {
		m := &receipts[i]
		c := classOf(m.Kind)
		if c == classNone {
			continue
		}
		if NormMsgID(m.MsgID) != msgid || msgid == "" {
			res.Ignored = append(res.Ignored, Ignored{Index: i, Reason: IgnoredOtherMessage})
			continue
		}
		if pecID != "" && NormMsgID(m.PECID) != pecID && Counts(m) {
			res.Ignored = append(res.Ignored, Ignored{Index: i, Reason: IgnoredOtherSending})
			continue
		}
		for _, a := range about(m, c) {
			r := add(a)
			r.Receipts = append(r.Receipts, i)
		}
	}
	// Recipients only the receipts name come after the original's, sorted.
	sort.Strings(order[known:])
	for _, a := range order {
		r := byAddr[a]
		decide(r, receipts)
		res.Recipients = append(res.Recipients, *r)
	}
	return res
}

// earlier orders receipts within a class: earliest daticert time first (unknown last), then by
// SHA-256.
func earlier(a, b *Message) bool {
	switch {
	case a.DaticertTime.IsZero() != b.DaticertTime.IsZero():
		return !a.DaticertTime.IsZero()
	case !a.DaticertTime.Equal(b.DaticertTime):
		return a.DaticertTime.Before(b.DaticertTime)
	}
	return bytes.Compare(a.SHA256[:], b.SHA256[:]) < 0
}

// decide fills r's verdict from the receipts listed in r.Receipts.
func decide(r *Recipient, receipts []Message) {
	best := map[class]int{}       // class -> deciding index among counting receipts
	failedBest := map[class]int{} // class -> earliest failing receipt
	for _, i := range r.Receipts {
		m := &receipts[i]
		c := classOf(m.Kind)
		if c == classInformative {
			continue
		}
		target := best
		if !Counts(m) {
			r.Failed = append(r.Failed, i)
			target = failedBest
		}
		if j, ok := target[c]; !ok || earlier(m, &receipts[j]) {
			target[c] = i
		}
	}
	// The strongest counting class decides.
	top := classNone
	for c := range best {
		if rank[c] > rank[top] {
			top = c
		}
	}
	if top != classNone {
		r.Deciding = best[top]
		r.Verdict = verdictOf[top]
		r.At = receipts[r.Deciding].DaticertTime
	} else if len(r.Failed) > 0 {
		r.Verdict = Unverified
	} else {
		r.Verdict = Pending
	}
	// Contradictions among the counting receipts.
	var counting []int
	for _, i := range r.Receipts {
		if c := classOf(receipts[i].Kind); c != classInformative && Counts(&receipts[i]) {
			counting = append(counting, i)
		}
	}
	for _, i := range counting {
		for _, j := range counting {
			if contradicts(classOf(receipts[i].Kind), classOf(receipts[j].Kind)) {
				r.Conflicts = append(r.Conflicts, i)
				break
			}
		}
	}
	// The strongest failing receipt above what decided is named in the explanation.
	failed := -1
	for c, i := range failedBest {
		if rank[c] > rank[top] && (failed < 0 || rank[c] > rank[classOf(receipts[failed].Kind)]) {
			failed = i
		}
	}
	r.ExplanationIT, r.ExplanationEN = explain(r, receipts, failed)
}

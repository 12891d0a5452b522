package evidence

import (
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pecarchive/pecarchive/pec"
	"github.com/pecarchive/pecarchive/pec/smime"
)

// The catalog's normalisation of what it records (services/archive/catalog, Message.Normalize):
// the record in a bundle is normalised, so what the bytes show is normalised the same way before
// the two are compared. These must stay equal to the catalog's.
const (
	maxText = 4096 // bytes of one text field
	maxID   = 998  // bytes of a message id or an address
	maxList = 1000 // entries of a list
)

// clean makes s valid UTF-8 without NUL, at most max bytes (cut at a rune boundary).
func clean(s string, max int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "")
	}
	if len(s) > max {
		i := max
		for i > 0 && !utf8.RuneStart(s[i]) {
			i--
		}
		s = s[:i]
	}
	return s
}

func normAddr(s string) string { return strings.TrimSpace(clean(strings.ToLower(s), maxID)) }

func normID(s string) string {
	s = strings.TrimSpace(clean(s, maxID))
	for len(s) >= 2 && s[0] == '<' && s[len(s)-1] == '>' {
		s = strings.TrimSpace(s[1 : len(s)-1])
	}
	return s
}

// refMsgID is the catalog's correlation key: the Message-ID of the original a message is, is a
// copy of, or is about.
func refMsgID(kind pec.Kind, messageID, origMsgID, xRiferimento string) string {
	if kind == pec.KindNotPEC {
		if x := normID(xRiferimento); x != "" {
			return x
		}
		return normID(messageID)
	}
	if o := normID(origMsgID); o != "" {
		return o
	}
	return normID(xRiferimento)
}

// shown is what a message's bytes show, in the record's terms.
type shown struct {
	kind, messageID, pecID, origMsgID, xRif, refMsgID string
	sender, from                                      string
	recipients, recipientTypes                        []string
	subject, provider                                 string
	daticertTime, headerDate                          time.Time
	receiptType, errore, erroreEsteso, consegna       string
	postacert                                         string
}

// describe returns what the parsed message shows, described and normalised as the archive
// catalogues it.
func describe(pm *pec.Message, postacert [32]byte) shown {
	h := &pm.Headers
	s := shown{
		kind: string(pm.Kind), messageID: normID(h.MessageID), xRif: normID(h.XRiferimentoMessageID),
		from: normAddr(h.From), sender: h.From, subject: clean(h.Subject, maxText), headerDate: h.Date,
		receiptType: clean(string(pm.ReceiptType()), 32), postacert: optHex(postacert),
	}
	if s.kind == "" {
		s.kind = string(pec.KindNotPEC)
	}
	if d := pm.Daticert; d != nil {
		s.pecID = normID(d.Identificativo)
		s.origMsgID = normID(d.MsgID)
		if d.Mittente != "" {
			s.sender = d.Mittente
		}
		for _, r := range d.Destinatari {
			s.recipients = append(s.recipients, r.Address)
			s.recipientTypes = append(s.recipientTypes, string(r.Type))
		}
		s.provider = clean(d.GestoreEmittente, maxText)
		s.daticertTime = d.Data
		s.errore = clean(string(d.Errore), 32)
		s.erroreEsteso = clean(d.ErroreEsteso, maxText)
		s.consegna = normAddr(d.Consegna)
	}
	if pm.Daticert == nil && !pec.Kind(s.kind).IsReceipt() {
		for _, l := range [][]string{h.To, h.Cc} {
			for _, r := range l {
				s.recipients = append(s.recipients, r)
				s.recipientTypes = append(s.recipientTypes, "")
			}
		}
	}
	s.sender = normAddr(s.sender)
	if len(s.recipients) > maxList {
		s.recipients, s.recipientTypes = s.recipients[:maxList], s.recipientTypes[:maxList]
	}
	for i := range s.recipients {
		s.recipients[i] = normAddr(s.recipients[i])
		s.recipientTypes[i] = clean(s.recipientTypes[i], 32)
	}
	s.refMsgID = refMsgID(pec.Kind(s.kind), s.messageID, s.origMsgID, s.xRif)
	return s
}

// compareRecord returns a sentence for every field where the record differs from what the
// parsed message shows.
func compareRecord(rec *Record, pm *pec.Message, postacert [32]byte) []string {
	s := describe(pm, postacert)
	var out []string
	str := func(field, claimed, got string) {
		if claimed != got {
			out = append(out, fmt.Sprintf("%s: the record says %.200q, the message shows %.200q", field, claimed, got))
		}
	}
	list := func(field string, claimed, got []string) {
		if !slices.Equal(claimed, got) && !(len(claimed) == 0 && len(got) == 0) {
			out = append(out, fmt.Sprintf("%s: the record says %.300q, the message shows %.300q", field, claimed, got))
		}
	}
	tm := func(field, claimed string, got time.Time, zone bool) {
		t, err := parseTime(claimed)
		if err != nil {
			out = append(out, fmt.Sprintf("%s: %v", field, err))
			return
		}
		got = got.Truncate(time.Microsecond)
		_, off1 := t.Zone()
		_, off2 := got.Zone()
		if !t.Equal(got) || zone && !t.IsZero() && off1 != off2 {
			out = append(out, fmt.Sprintf("%s: the record says %q, the message shows %q", field, claimed, FormatTime(got)))
		}
	}
	str("kind", rec.Kind, s.kind)
	str("message_id", rec.MessageID, s.messageID)
	str("pec_id", rec.PECID, s.pecID)
	str("orig_msgid", rec.OrigMsgID, s.origMsgID)
	str("x_riferimento", rec.XRiferimento, s.xRif)
	str("ref_msgid", rec.RefMsgID, s.refMsgID)
	str("sender", rec.Sender, s.sender)
	str("from", rec.From, s.from)
	list("recipients", rec.Recipients, s.recipients)
	list("recipient_types", rec.RecipientTypes, s.recipientTypes)
	str("subject", rec.Subject, s.subject)
	str("provider", rec.Provider, s.provider)
	tm("daticert_time", rec.DaticertTime, s.daticertTime, true)
	tm("header_date", rec.HeaderDate, s.headerDate, false)
	str("receipt_type", rec.ReceiptType, s.receiptType)
	str("errore", rec.Errore, s.errore)
	str("errore_esteso", rec.ErroreEsteso, s.erroreEsteso)
	str("consegna", rec.Consegna, s.consegna)
	str("postacert_sha256", rec.PostacertSHA256, s.postacert)
	return out
}

// NewRecord describes a message as the archive records it (the catalog's description, normalised):
// pm is the parsed message, vd the verdict on its signature and receivedAt when the archive
// received it. Problems are the parse problems. It is what the verifier compares a bundle's
// records with, and what tools and tests that build bundles outside the archive use.
func NewRecord(pm *pec.Message, vd *smime.Verdict, receivedAt time.Time) Record {
	var post [32]byte
	if len(pm.Postacert) > 0 {
		post = sha256.Sum256(pm.Postacert)
	}
	s := describe(pm, post)
	r := Record{
		Kind: s.kind, MessageID: s.messageID, PECID: s.pecID, OrigMsgID: s.origMsgID, XRiferimento: s.xRif,
		RefMsgID: s.refMsgID, Sender: s.sender, From: s.from, Recipients: s.recipients, RecipientTypes: s.recipientTypes,
		Subject: s.subject, Provider: s.provider, DaticertTime: FormatTime(s.daticertTime.Truncate(time.Microsecond)),
		HeaderDate: FormatTime(s.headerDate.Truncate(time.Microsecond)), ReceiptType: s.receiptType, Errore: s.errore,
		ErroreEsteso: s.erroreEsteso, Consegna: s.consegna, PostacertSHA256: s.postacert,
		ReceivedAt: FormatTime(receivedAt.Truncate(time.Microsecond)),
	}
	for _, p := range pm.Problems {
		r.Problems = append(r.Problems, clean(p.Error(), 1024))
	}
	if vd != nil {
		r.Signature = Signature{
			Present: vd.Present, Valid: vd.Valid, Trusted: vd.Trusted, Digest: vd.Digest, Signer: clean(vd.Signer, maxText),
			SignerEmail: normAddr(vd.SignerEmail), Provider: clean(vd.Provider, maxText),
			SignedAt:   FormatTime(vd.SignedAt.Truncate(time.Microsecond)),
			VerifiedAt: FormatTime(vd.VerifiedAt.Truncate(time.Microsecond)),
			Reasons:    slices.Clone(vd.Reasons), Details: slices.Clone(vd.Details),
		}
		if vd.Present {
			if der := vd.ChainDER(); len(der) > 0 {
				r.ChainSHA256 = hexSum(ChainID(der))
			}
			r.AnchorsSHA256 = vd.AnchorSetID
		}
	}
	return r.nonNil()
}

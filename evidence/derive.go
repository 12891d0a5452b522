package evidence

import (
	"slices"
	"strings"
	"time"

	"github.com/pecarchive/pecarchive/evidence/verdict"
	"github.com/pecarchive/pecarchive/pec"
	"github.com/pecarchive/pecarchive/record"
)

// DeriveDeliveries derives the claims about the sent message msgid from the records of the
// messages of its conversation among msgs (those whose own Message-ID or correlation key,
// ref_msgid, is msgid), oldest first, by verdict.Conversation: the rule the query service answers
// with from the same records in the catalog. There is one claim per sending of the Message-ID
// (per PEC id), newest first. The verifier derives every delivery again with it, each message
// counting only as far as its signature verified.
func DeriveDeliveries(msgid string, msgs []Message) []Delivery {
	key := record.MsgID(msgid)
	type row struct {
		r        verdict.Row
		sum      string
		received time.Time
	}
	var rows []row
	for i := range msgs {
		rec := &msgs[i].Record
		if key == "" || record.MsgID(rec.MessageID) != key && rec.RefMsgID != key {
			continue
		}
		received, _ := parseTime(rec.ReceivedAt)
		rows = append(rows, row{rowOf(&msgs[i]), msgs[i].SHA256, received})
	}
	slices.SortStableFunc(rows, func(a, b row) int {
		if c := a.received.Compare(b.received); c != 0 {
			return c
		}
		return strings.Compare(a.sum, b.sum)
	})
	vrows := make([]verdict.Row, len(rows))
	for i := range rows {
		vrows[i] = rows[i].r
	}
	out := []Delivery{}
	for _, a := range verdict.Conversation(key, vrows, "") {
		out = append(out, DeliveryOf(&a, func(i int) string { return rows[i].sum }))
	}
	return out
}

// DeliveryOf is the claim of an answer of verdict.Conversation in the bundle's terms: sum(i) is
// the SHA-256 (lower-case hex) of the row i of the rows the answer was derived from. The query
// service makes a bundle's claims with it, and DeriveDeliveries derives them again with it.
func DeliveryOf(a *verdict.Answer, sum func(i int) string) Delivery {
	d := Delivery{MsgID: a.MsgID, PECID: a.PECID, Subject: a.Subject, Sender: a.Sender, SentAt: FormatTime(a.SentAt),
		Recipients: []Recipient{}}
	if a.Original >= 0 {
		d.SHA256 = sum(a.Original)
	}
	receipt := func(i int) string { return sum(a.Receipts[i]) }
	for _, g := range a.Recipients {
		r := Recipient{Address: g.Address, Verdict: string(g.Verdict), ExplanationIT: g.ExplanationIT,
			ExplanationEN: g.ExplanationEN, At: FormatTime(g.At), Receipts: []string{}, Conflicts: []string{}}
		if g.Deciding >= 0 {
			r.Deciding = receipt(g.Deciding)
		}
		for _, j := range g.Receipts {
			r.Receipts = append(r.Receipts, receipt(j))
		}
		for _, j := range g.Conflicts {
			r.Conflicts = append(r.Conflicts, receipt(j))
		}
		d.Recipients = append(d.Recipients, r)
	}
	return d
}

// rowOf describes a bundled message for the verdict rule by its record.
func rowOf(msg *Message) verdict.Row {
	rec := &msg.Record
	sum, _ := parseSum(msg.SHA256)
	daticert, _ := parseTime(rec.DaticertTime)
	signed, _ := parseTime(rec.Signature.SignedAt)
	date, _ := parseTime(rec.HeaderDate)
	key := rec.RefMsgID
	if key == "" {
		key = record.RefMsgID(pec.Kind(rec.Kind), rec.MessageID, rec.OrigMsgID, rec.XRiferimento)
	}
	return verdict.Row{
		Message: verdict.Message{SHA256: sum, Kind: pec.Kind(rec.Kind), MsgID: key, PECID: rec.PECID, ReceiptType: pec.ReceiptType(rec.ReceiptType),
			Errore: pec.ErrorCode(rec.Errore), ErroreEsteso: rec.ErroreEsteso, Consegna: rec.Consegna, Recipients: rec.Recipients,
			Provider: rec.Provider, DaticertTime: daticert, SignedAt: signed,
			Valid: rec.Signature.Valid, Trusted: rec.Signature.Trusted, Reasons: rec.Signature.Reasons},
		MessageID: rec.MessageID, Subject: rec.Subject, Sender: rec.Sender, HeaderDate: date,
	}
}

package evidence

import (
	"fmt"
	"slices"
	"time"

	"github.com/pecarchive/pecarchive/pec"
	"github.com/pecarchive/pecarchive/record"
)

// Source is where the archive first found a message: the source its catalog/v2 leaf covers.
type Source struct {
	Mailbox      string `json:"mailbox"`
	Folder       string `json:"folder"`
	UIDValidity  uint32 `json:"uidvalidity"`
	UID          uint32 `json:"uid"`
	InternalDate string `json:"internal_date"`
	Path         string `json:"path"`
	// Parent is the SHA-256 of the message this one was extracted from, "" when none.
	Parent    string `json:"parent"`
	FirstSeen string `json:"first_seen"`
}

// RecordOf is the bundle's form of a record of package record (the catalog's row).
func RecordOf(m *record.Message) Record {
	v := &m.Verdict
	r := Record{
		Kind: string(m.Kind), MessageID: m.MessageID, PECID: m.PECID, OrigMsgID: m.OrigMsgID, XRiferimento: m.XRiferimento,
		RefMsgID: m.RefMsgID, Sender: m.Sender, From: m.From, Recipients: m.Recipients, RecipientTypes: m.RecipientTypes,
		Subject: m.Subject, Provider: m.Provider, DaticertTime: FormatTime(m.DaticertTime),
		HeaderDate: FormatTime(m.HeaderDate), ReceiptType: string(m.ReceiptType), Errore: string(m.Errore),
		ErroreEsteso: m.ErroreEsteso, Consegna: m.Consegna,
		Signature: Signature{Present: v.Present, Valid: v.Valid, Trusted: v.Trusted, Digest: v.Digest, Signer: v.Signer,
			SignerEmail: v.SignerEmail, Provider: v.Provider, SignedAt: FormatTime(v.SignedAt),
			VerifiedAt: FormatTime(v.VerifiedAt), Reasons: v.Reasons, Details: v.Details},
		Problems: m.Problems, ChainSHA256: optHex(m.ChainSHA256), AnchorsSHA256: optHex(m.AnchorsSHA256),
		PostacertSHA256: optHex(m.PostacertSHA256), ReceivedAt: FormatTime(m.ReceivedAt),
	}
	return r.nonNil()
}

// SourceOf is the bundle's form of a source of package record.
func SourceOf(s *record.Source) Source {
	return Source{Mailbox: s.Mailbox, Folder: s.Folder, UIDValidity: s.UIDValidity, UID: s.UID,
		InternalDate: FormatTime(s.InternalDate), Path: s.Path, Parent: optHex(s.Parent), FirstSeen: FormatTime(s.FirstSeen)}
}

// message is the record back in the form of package record, with the message's SHA-256 and
// size.
func (r *Record) message(sum [32]byte, size int64) (record.Message, error) {
	m := record.Message{SHA256: sum, Size: size, Kind: pec.Kind(r.Kind), MessageID: r.MessageID, PECID: r.PECID,
		OrigMsgID: r.OrigMsgID, XRiferimento: r.XRiferimento, RefMsgID: r.RefMsgID, Sender: r.Sender, From: r.From,
		Recipients: slices.Clone(r.Recipients), RecipientTypes: slices.Clone(r.RecipientTypes), Subject: r.Subject,
		Provider: r.Provider, ReceiptType: pec.ReceiptType(r.ReceiptType), Errore: pec.ErrorCode(r.Errore),
		ErroreEsteso: r.ErroreEsteso, Consegna: r.Consegna, Problems: slices.Clone(r.Problems)}
	s := &r.Signature
	m.Verdict = record.Verdict{Present: s.Present, Valid: s.Valid, Trusted: s.Trusted, Digest: s.Digest, Signer: s.Signer,
		SignerEmail: s.SignerEmail, Provider: s.Provider, Reasons: slices.Clone(s.Reasons), Details: slices.Clone(s.Details)}
	var err error
	times := []struct {
		name string
		s    string
		dst  *time.Time
	}{{"daticert_time", r.DaticertTime, &m.DaticertTime}, {"header_date", r.HeaderDate, &m.HeaderDate},
		{"signed_at", s.SignedAt, &m.Verdict.SignedAt}, {"verified_at", s.VerifiedAt, &m.Verdict.VerifiedAt},
		{"received_at", r.ReceivedAt, &m.ReceivedAt}}
	for _, t := range times {
		if *t.dst, err = parseTime(t.s); err != nil {
			return m, fmt.Errorf("%s: %v", t.name, err)
		}
	}
	sums := []struct {
		name string
		s    string
		dst  *[32]byte
	}{{"chain_sha256", r.ChainSHA256, &m.ChainSHA256}, {"anchors_sha256", r.AnchorsSHA256, &m.AnchorsSHA256},
		{"postacert_sha256", r.PostacertSHA256, &m.PostacertSHA256}}
	for _, x := range sums {
		if *x.dst, err = optSum(x.s); err != nil {
			return m, fmt.Errorf("%s: %v", x.name, err)
		}
	}
	return m, nil
}

// source is the source back in the form of package record.
func (s *Source) source() (record.Source, error) {
	out := record.Source{Mailbox: s.Mailbox, Folder: s.Folder, UIDValidity: s.UIDValidity, UID: s.UID, Path: s.Path}
	var err error
	if out.InternalDate, err = parseTime(s.InternalDate); err != nil {
		return out, fmt.Errorf("internal_date: %v", err)
	}
	if out.FirstSeen, err = parseTime(s.FirstSeen); err != nil {
		return out, fmt.Errorf("first_seen: %v", err)
	}
	if out.Parent, err = optSum(s.Parent); err != nil {
		return out, fmt.Errorf("parent: %v", err)
	}
	return out, nil
}

// compareRecord returns a sentence for every field, except the signature's, where the record
// differs from the description the verifier made of the bytes (record.Describe): both are
// normalised first. The parse problems are diagnostics of the parser's version, not claims: a
// difference there is returned apart, as a note.
func compareRecord(claimed, got *record.Message) (diffs []string, note string) {
	c, g := *claimed, *got
	c.Normalize()
	g.Normalize()
	str := func(field, a, b string) {
		if a != b {
			diffs = append(diffs, fmt.Sprintf("%s: the record says %.200q, the message shows %.200q", field, a, b))
		}
	}
	list := func(field string, a, b []string) {
		if !slices.Equal(a, b) && !(len(a) == 0 && len(b) == 0) {
			diffs = append(diffs, fmt.Sprintf("%s: the record says %.300q, the message shows %.300q", field, a, b))
		}
	}
	tm := func(field string, a, b time.Time, zone bool) {
		_, oa := a.Zone()
		_, ob := b.Zone()
		if !a.Equal(b) || zone && !a.IsZero() && oa != ob {
			diffs = append(diffs, fmt.Sprintf("%s: the record says %q, the message shows %q", field, FormatTime(a), FormatTime(b)))
		}
	}
	if c.Size != g.Size {
		diffs = append(diffs, fmt.Sprintf("size: the record says %d, the message has %d bytes", c.Size, g.Size))
	}
	str("kind", string(c.Kind), string(g.Kind))
	str("message_id", c.MessageID, g.MessageID)
	str("pec_id", c.PECID, g.PECID)
	str("orig_msgid", c.OrigMsgID, g.OrigMsgID)
	str("x_riferimento", c.XRiferimento, g.XRiferimento)
	str("ref_msgid", c.RefMsgID, g.RefMsgID)
	str("sender", c.Sender, g.Sender)
	str("from", c.From, g.From)
	list("recipients", c.Recipients, g.Recipients)
	list("recipient_types", c.RecipientTypes, g.RecipientTypes)
	str("subject", c.Subject, g.Subject)
	str("provider", c.Provider, g.Provider)
	tm("daticert_time", c.DaticertTime, g.DaticertTime, true)
	tm("header_date", c.HeaderDate, g.HeaderDate, false)
	str("receipt_type", string(c.ReceiptType), string(g.ReceiptType))
	str("errore", string(c.Errore), string(g.Errore))
	str("errore_esteso", c.ErroreEsteso, g.ErroreEsteso)
	str("consegna", c.Consegna, g.Consegna)
	str("postacert_sha256", optHex(c.PostacertSHA256), optHex(g.PostacertSHA256))
	if !slices.Equal(c.Problems, g.Problems) && !(len(c.Problems) == 0 && len(g.Problems) == 0) {
		note = fmt.Sprintf("the parse problems the record lists (%d) differ from this verifier's (%d): %.300q", len(c.Problems), len(g.Problems), g.Problems)
	}
	return diffs, note
}

package record

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"time"
)

// Field is one evidence field of a messages row, named as its column, with its value written out
// for a report.
type Field struct{ Name, Value string }

// Fields returns the evidence fields of m as written out for a report (text quoted, times in
// RFC 3339, the daticert time in its own zone, hashes in hex), in column order, and received_at
// and blob_version last. Two rows have the same fields exactly when their values are equal.
func (m *Message) Fields() []Field {
	q := strconv.Quote
	list := func(l []string) string { return fmt.Sprintf("%q", l) }
	tm := func(t time.Time, utc bool) string {
		switch {
		case t.IsZero():
			return ""
		case utc:
			return t.UTC().Format(time.RFC3339Nano)
		}
		return t.Format(time.RFC3339Nano)
	}
	sum := func(s [32]byte) string {
		if s == ([32]byte{}) {
			return ""
		}
		return hex.EncodeToString(s[:])
	}
	return []Field{
		{"size", strconv.FormatInt(m.Size, 10)},
		{"kind", q(string(m.Kind))},
		{"message_id", q(m.MessageID)},
		{"pec_id", q(m.PECID)},
		{"orig_msgid", q(m.OrigMsgID)},
		{"x_riferimento", q(m.XRiferimento)},
		{"ref_msgid", q(m.RefMsgID)},
		{"sender", q(m.Sender)},
		{"from_addr", q(m.From)},
		{"recipients", list(m.Recipients)},
		{"recipient_types", list(m.RecipientTypes)},
		{"subject", q(m.Subject)},
		{"provider", q(m.Provider)},
		{"daticert_time", tm(m.DaticertTime, false)},
		{"header_date", tm(m.HeaderDate, true)},
		{"receipt_type", q(string(m.ReceiptType))},
		{"errore", q(string(m.Errore))},
		{"errore_esteso", q(m.ErroreEsteso)},
		{"consegna", q(m.Consegna)},
		{"sig_present", strconv.FormatBool(m.Verdict.Present)},
		{"sig_valid", strconv.FormatBool(m.Verdict.Valid)},
		{"sig_trusted", strconv.FormatBool(m.Verdict.Trusted)},
		{"digest_alg", q(m.Verdict.Digest)},
		{"signer", q(m.Verdict.Signer)},
		{"signer_email", q(m.Verdict.SignerEmail)},
		{"index_provider", q(m.Verdict.Provider)},
		{"signed_at", tm(m.Verdict.SignedAt, true)},
		{"verified_at", tm(m.Verdict.VerifiedAt, true)},
		{"reasons", list(m.Verdict.Reasons)},
		{"reason_details", list(m.Verdict.Details)},
		{"problems", list(m.Problems)},
		{"chain_sha256", sum(m.ChainSHA256)},
		{"anchors_sha256", sum(m.AnchorsSHA256)},
		{"postacert_sha256", sum(m.PostacertSHA256)},
		{"received_at", tm(m.ReceivedAt, true)},
		{"blob_version", q(m.BlobVersion)},
	}
}

// DiffFields names each field in which got differs from m: its name, got's value and, in
// parentheses, how and m's value (`recipients ["a@x"] (the row says ["b@x"])` for how "the row
// says"). Fields named in skip are left out.
func DiffFields(m, got *Message, how string, skip ...string) []string {
	a, b := m.Fields(), got.Fields()
	var out []string
next:
	for i := range a {
		for _, s := range skip {
			if a[i].Name == s {
				continue next
			}
		}
		if a[i].Value != b[i].Value {
			out = append(out, fmt.Sprintf("%s %s (%s %s)", a[i].Name, b[i].Value, how, a[i].Value))
		}
	}
	return out
}

// NonCanonical names the fields of the stored row m that are not as the archive writes them:
// those [Message.Normalize] would change (an address not in lower case, a message id with angle
// brackets or spaces, a correlation key not derived, a list of recipient types shorter than the
// recipients, ...), each with the stored and the canonical value. The evidence digests are
// computed over the normalised row, so such a row still matches its leaf while its stored
// values, which look-ups and links compare as they are, differ from what the leaf commits to:
// only an edit makes one. It returns nil for a canonical row.
func (m *Message) NonCanonical() []string {
	c := *m
	c.Normalize()
	return DiffFields(&c, m, "the archive writes")
}

package catalog

import (
	"fmt"
	"slices"
	"time"
)

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
	var out []string
	str := func(name, stored, canonical string) {
		if stored != canonical {
			out = append(out, fmt.Sprintf("%s %q (the archive writes %q)", name, stored, canonical))
		}
	}
	list := func(name string, stored, canonical []string) {
		if !slices.Equal(stored, canonical) {
			out = append(out, fmt.Sprintf("%s %q (the archive writes %q)", name, stored, canonical))
		}
	}
	tm := func(name string, stored, canonical time.Time) {
		if !stored.Equal(canonical) {
			out = append(out, fmt.Sprintf("%s %s (the archive writes %s)", name,
				stored.UTC().Format(time.RFC3339Nano), canonical.UTC().Format(time.RFC3339Nano)))
		}
	}
	str("kind", string(m.Kind), string(c.Kind))
	str("message_id", m.MessageID, c.MessageID)
	str("pec_id", m.PECID, c.PECID)
	str("orig_msgid", m.OrigMsgID, c.OrigMsgID)
	str("x_riferimento", m.XRiferimento, c.XRiferimento)
	str("ref_msgid", m.RefMsgID, c.RefMsgID)
	str("sender", m.Sender, c.Sender)
	str("from_addr", m.From, c.From)
	list("recipients", m.Recipients, c.Recipients)
	list("recipient_types", m.RecipientTypes, c.RecipientTypes)
	str("subject", m.Subject, c.Subject)
	str("provider", m.Provider, c.Provider)
	tm("daticert_time", m.DaticertTime, c.DaticertTime)
	tm("header_date", m.HeaderDate, c.HeaderDate)
	str("receipt_type", string(m.ReceiptType), string(c.ReceiptType))
	str("errore", string(m.Errore), string(c.Errore))
	str("errore_esteso", m.ErroreEsteso, c.ErroreEsteso)
	str("consegna", m.Consegna, c.Consegna)
	str("digest_alg", m.Verdict.Digest, c.Verdict.Digest)
	str("signer", m.Verdict.Signer, c.Verdict.Signer)
	str("signer_email", m.Verdict.SignerEmail, c.Verdict.SignerEmail)
	str("index_provider", m.Verdict.Provider, c.Verdict.Provider)
	tm("signed_at", m.Verdict.SignedAt, c.Verdict.SignedAt)
	tm("verified_at", m.Verdict.VerifiedAt, c.Verdict.VerifiedAt)
	list("reasons", m.Verdict.Reasons, c.Verdict.Reasons)
	list("reason_details", m.Verdict.Details, c.Verdict.Details)
	list("problems", m.Problems, c.Problems)
	tm("received_at", m.ReceivedAt, c.ReceivedAt)
	str("blob_version", m.BlobVersion, c.BlobVersion)
	return out
}

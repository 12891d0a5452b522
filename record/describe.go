package record

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/pecarchive/pecarchive/pec"
	"github.com/pecarchive/pecarchive/pec/smime"
)

// ProblemParseRefused prefixes the problem recorded when the parser refuses a message whole.
const ProblemParseRefused = "archive: parser refused the message: "

// Describe returns the record of the raw message whose SHA-256 is sum and size its length, as
// the archive makes it when it stores it: pm is what pec.Parse made of the bytes (nil when
// nothing), parseErr Parse's error, and v the verdict on its signature (nil when not verified).
// The archive describes every message it stores with it, and the offline verifier of evidence
// bundles describes a bundle's messages again with it to compare with their records. The
// result is not normalised ([Message.Normalize]); LeafIndex, ReceivedAt, ContainedIn and
// BlobVersion are unset.
func Describe(sum [32]byte, size int64, pm *pec.Message, parseErr error, v *smime.Verdict) Message {
	m := Message{SHA256: sum, Size: size, Kind: pec.KindNotPEC}
	if pm == nil {
		pm = &pec.Message{Kind: pec.KindNotPEC}
	}
	if parseErr != nil {
		m.Problems = append(m.Problems, ProblemParseRefused+parseErr.Error())
	}
	for _, p := range pm.Problems {
		m.Problems = append(m.Problems, p.Error())
	}
	h := &pm.Headers
	if pm.Kind != "" {
		m.Kind = pm.Kind
	}
	m.MessageID = h.MessageID
	m.XRiferimento = h.XRiferimentoMessageID
	m.From = h.From
	m.Sender = h.From
	m.Subject = h.Subject
	m.HeaderDate = h.Date
	m.ReceiptType = pm.ReceiptType()
	if d := pm.Daticert; d != nil {
		m.PECID = d.Identificativo
		m.OrigMsgID = d.MsgID
		if d.Mittente != "" {
			m.Sender = d.Mittente
		}
		for _, r := range d.Destinatari {
			m.Recipients = append(m.Recipients, r.Address)
			m.RecipientTypes = append(m.RecipientTypes, string(r.Type))
		}
		m.Provider = d.GestoreEmittente
		m.DaticertTime = d.Data
		m.Errore = d.Errore
		m.ErroreEsteso = d.ErroreEsteso
		m.Consegna = d.Consegna
	}
	// Without daticert, the header recipients, except for receipts: those are addressed to the
	// sender, not to the recipients they are about.
	if pm.Daticert == nil && !m.Kind.IsReceipt() {
		for _, l := range [][]string{h.To, h.Cc} {
			for _, r := range l {
				m.Recipients = append(m.Recipients, r)
				m.RecipientTypes = append(m.RecipientTypes, "")
			}
		}
	}
	m.RefMsgID = RefMsgID(m.Kind, m.MessageID, m.OrigMsgID, m.XRiferimento)
	if v != nil {
		m.Verdict = Verdict{
			Present: v.Present, Valid: v.Valid, Trusted: v.Trusted, Digest: v.Digest,
			Signer: v.Signer, SignerEmail: v.SignerEmail, Provider: v.Provider,
			SignedAt: v.SignedAt, VerifiedAt: v.VerifiedAt,
			Reasons: append([]string{}, v.Reasons...), Details: append([]string{}, v.Details...),
		}
		if v.Present {
			if der := v.ChainDER(); len(der) > 0 {
				m.ChainSHA256 = ChainID(der)
			}
			if id, err := hex.DecodeString(v.AnchorSetID); err == nil && len(id) == 32 {
				copy(m.AnchorsSHA256[:], id)
			}
		}
	}
	if len(pm.Postacert) > 0 {
		m.PostacertSHA256 = sha256.Sum256(pm.Postacert)
	}
	return m
}

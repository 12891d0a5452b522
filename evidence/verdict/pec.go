package verdict

import (
	"github.com/pecarchive/pecarchive/pec"
	"github.com/pecarchive/pecarchive/pec/smime"
)

// FromPEC describes a parsed message and its verification (as of its signing time) by the plain
// fields of [Message]; sum is the SHA-256 of its exact raw bytes. pm may be nil (input that did
// not parse): the result is then a message of kind not-pec that never counts.
func FromPEC(sum [32]byte, pm *pec.Message, v *smime.Verdict) Message {
	m := Message{SHA256: sum, Kind: pec.KindNotPEC}
	if v != nil {
		m.Valid, m.Trusted, m.SignedAt = v.Valid, v.Trusted, v.SignedAt
		m.Reasons = append([]string(nil), v.Reasons...)
	}
	if pm == nil {
		return m
	}
	if pm.Kind != "" {
		m.Kind = pm.Kind
	}
	h := &pm.Headers
	m.ReceiptType = pm.ReceiptType()
	if d := pm.Daticert; d != nil {
		m.MsgID, m.PECID = d.MsgID, d.Identificativo
		m.Errore, m.ErroreEsteso, m.Consegna = d.Errore, d.ErroreEsteso, d.Consegna
		m.Provider, m.DaticertTime = d.GestoreEmittente, d.Data
		for _, r := range d.Destinatari {
			m.Recipients = append(m.Recipients, r.Address)
		}
	}
	if m.MsgID == "" {
		m.MsgID = h.XRiferimentoMessageID
	}
	if m.Kind == pec.KindNotPEC {
		// An original: its own Message-ID, its To and Cc.
		if m.MsgID == "" {
			m.MsgID = h.MessageID
		}
		m.Recipients = append(append(m.Recipients, h.To...), h.Cc...)
	}
	return m
}

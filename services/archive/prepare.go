package archive

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/pecarchive/pecarchive/pec"
	"github.com/pecarchive/pecarchive/pec/smime"
	"github.com/pecarchive/pecarchive/services/archive/catalog"
)

// item is one message of a request: parsed, verified, its blob stored.
type item struct {
	sum     [32]byte
	src     catalog.Source
	msg     catalog.Message // prepared only; LeafIndex and ReceivedAt set by the committer
	chain   catalog.CertSet
	raw     []byte // until the blob is stored
	inner   []byte // postacert.eml to store as a message of its own
	isInner bool
}

// Problems the archive itself adds to a record.
const (
	ProblemParseRefused = "archive: parser refused the message: "
)

// prepare parses and verifies raw (never trusting the caller) and describes it for the catalog.
// Unparseable or unverifiable input is described all the same, with problems and reasons.
func (a *Archive) prepare(ctx context.Context, sum [32]byte, raw []byte, received time.Time) item {
	p := Prepare(ctx, sum, raw, PrepareOptions{Verifier: a.verifier, Parse: &a.parse, ReceivedAt: received, NoPostacert: a.cfg.NoPostacert})
	return item{sum: sum, raw: raw, msg: p.Message, chain: p.Chain, inner: p.Postacert}
}

// PrepareOptions are the settings of [Prepare].
type PrepareOptions struct {
	// Verifier verifies the signature (required).
	Verifier *smime.Verifier
	// Parse are the options of pec.Parse (nil: its defaults).
	Parse *pec.Options
	// ReceivedAt bounds the verification time: when the message was received.
	ReceivedAt time.Time
	// NoPostacert: do not return the postacert.eml of a complete delivery receipt.
	NoPostacert bool
}

// Prepared is what the archive makes of a message's bytes before it stores them.
type Prepared struct {
	// Message has every evidence field (SHA256, Size, the parsed fields, the verdict, the
	// chain and anchor set used); LeafIndex, ReceivedAt, ContainedIn and BlobVersion are unset.
	Message catalog.Message
	// Chain is the signer's certificate chain, when there is a signature.
	Chain catalog.CertSet
	// Postacert is the postacert.eml of a complete delivery receipt, which the archive catalogues
	// as a message of its own; nil otherwise.
	Postacert []byte
}

// Prepare parses and verifies raw, whose SHA-256 is sum, as the archive does when it stores it
// (never trusting the caller) and describes it for the catalog: Store calls it, and the audit
// (--deep) calls it again on every stored blob to compare with the catalog. Unparseable or
// unverifiable input is described all the same, with problems and reasons.
func Prepare(ctx context.Context, sum [32]byte, raw []byte, o PrepareOptions) Prepared {
	var out Prepared
	m := catalog.Message{SHA256: sum, Size: int64(len(raw)), Kind: pec.KindNotPEC}
	pm, err := pec.Parse(raw, o.Parse)
	if pm == nil {
		pm = &pec.Message{Kind: pec.KindNotPEC}
	}
	if err != nil {
		m.Problems = append(m.Problems, ProblemParseRefused+err.Error())
	}
	for _, p := range pm.Problems {
		m.Problems = append(m.Problems, p.Error())
	}
	describe(&m, pm)

	v := o.Verifier.VerifyMessage(ctx, pm, &smime.VerifyOptions{ReceivedAt: o.ReceivedAt})
	m.Verdict = catalog.Verdict{
		Present: v.Present, Valid: v.Valid, Trusted: v.Trusted, Digest: v.Digest,
		Signer: v.Signer, SignerEmail: v.SignerEmail, Provider: v.Provider,
		SignedAt: v.SignedAt, VerifiedAt: v.VerifiedAt,
		Reasons: append([]string{}, v.Reasons...), Details: append([]string{}, v.Details...),
	}
	if v.Present {
		if der := v.ChainDER(); len(der) > 0 {
			out.Chain = catalog.ChainSet(der)
			m.ChainSHA256 = out.Chain.SHA256
		}
		if id, err := hex.DecodeString(v.AnchorSetID); err == nil && len(id) == 32 {
			copy(m.AnchorsSHA256[:], id)
		}
	}
	if len(pm.Postacert) > 0 {
		m.PostacertSHA256 = sha256.Sum256(pm.Postacert)
		// The postacert.eml of a complete delivery receipt is the original as the recipient got
		// it: keep it as a message of its own, linked to its receipts and deliveries. (A breve
		// receipt's is not the original: its attachments are replaced by hashes.)
		if !o.NoPostacert && pm.Kind == pec.KindAvvenutaConsegna && pm.ReceiptType() == pec.ReceiptCompleta {
			out.Postacert = pm.Postacert
		}
	}
	out.Message = m
	return out
}

// describe fills the catalog fields of m from the parsed message.
func describe(m *catalog.Message, pm *pec.Message) {
	h := &pm.Headers
	m.Kind = pm.Kind
	if m.Kind == "" {
		m.Kind = pec.KindNotPEC
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
	m.RefMsgID = catalog.RefMsgID(m.Kind, m.MessageID, m.OrigMsgID, m.XRiferimento)
}

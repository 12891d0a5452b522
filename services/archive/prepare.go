package archive

import (
	"context"
	"time"

	"github.com/pecarchive/pecarchive/pec"
	"github.com/pecarchive/pecarchive/pec/smime"
	"github.com/pecarchive/pecarchive/record"
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
	ProblemParseRefused = record.ProblemParseRefused
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
// (never trusting the caller) and describes it for the catalog (record.Describe, which the
// offline bundle verifier uses too): Store calls it, and the audit (--deep) calls it again on
// every stored blob to compare with the catalog. Unparseable or unverifiable input is described
// all the same, with problems and reasons.
func Prepare(ctx context.Context, sum [32]byte, raw []byte, o PrepareOptions) Prepared {
	var out Prepared
	pm, err := pec.Parse(raw, o.Parse)
	if pm == nil {
		pm = &pec.Message{Kind: pec.KindNotPEC}
	}
	v := o.Verifier.VerifyMessage(ctx, pm, &smime.VerifyOptions{ReceivedAt: o.ReceivedAt})
	out.Message = record.Describe(sum, int64(len(raw)), pm, err, &v)
	if der := v.ChainDER(); v.Present && len(der) > 0 {
		out.Chain = catalog.ChainSet(der)
	}
	// The postacert.eml of a complete delivery receipt is the original as the recipient got it:
	// keep it as a message of its own, linked to its receipts and deliveries. (A breve receipt's
	// is not the original: its attachments are replaced by hashes.)
	if len(pm.Postacert) > 0 && !o.NoPostacert && pm.Kind == pec.KindAvvenutaConsegna && pm.ReceiptType() == pec.ReceiptCompleta {
		out.Postacert = pm.Postacert
	}
	return out
}

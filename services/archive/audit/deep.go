package audit

import (
	"context"
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pecarchive/pecarchive/pec/smime"
	"github.com/pecarchive/pecarchive/services/archive"
	"github.com/pecarchive/pecarchive/services/archive/catalog"
)

// The --deep audit: every row against its blob. The blob's bytes (already read and hashed by
// blobsOfRows) are parsed and verified again with the archive's own code (archive.Prepare), as
// of the time the archive verified them (the row's verified_at bounds the verification as the
// receipt time bounded it then) and with the trust anchors it used (the row's anchor set, from
// trust_anchor_sets, whose hash certSets checks), and the result must have the row's evidence
// fields. A row that passes has exactly what the archive makes of its bytes, so everything
// derived from it is derived from the bytes too.
//
// An anchor set is the archive's word only: whoever can write to the catalog can store a set
// holding a CA of their own, with rows of messages that CA signed, all consistent with their
// leaves if appended with them. So the audit trusts a set's certificates only as far as its own
// anchors (Config.Verifier's, else pec/smime's built-in ones) hold them: a set with others is
// named (anchors-untrusted) and its rows are verified again without those, so a message trusted
// only through them is named too (row-not-from-blob).

// deepVerifier is the verifier of one anchor set.
type deepVerifier struct {
	v *smime.Verifier
	// reduced: the set holds certificates the audit does not trust, and v has only the others
	// (so its anchor set is not the row's).
	reduced bool
}

// auditAnchors returns the trust anchors of the audit itself.
func (a *auditor) auditAnchors() *smime.TrustStore {
	if a.cfg.Verifier != nil {
		return a.cfg.Verifier.Anchors()
	}
	return smime.DefaultTrustStore()
}

// verifierFor returns the verifier of the anchor set sum (zero: the configured one), made once.
func (a *auditor) verifierFor(ctx context.Context, sum [32]byte) (deepVerifier, error) {
	a.deepMu.Lock()
	defer a.deepMu.Unlock()
	if v, ok := a.verifiers[sum]; ok {
		return v, nil
	}
	var index *smime.ProviderIndex
	if a.cfg.Verifier != nil {
		index = a.cfg.Verifier.Index()
	}
	var dv deepVerifier
	var err error
	switch {
	case sum == [32]byte{} && a.cfg.Verifier != nil:
		dv.v = a.cfg.Verifier
	case sum == [32]byte{}:
		dv.v, err = smime.New(smime.Config{})
	default:
		var set catalog.CertSet
		set, err = a.cat.Anchors(ctx, sum)
		if err != nil {
			return deepVerifier{}, err
		}
		trusted := a.auditAnchors()
		var certs []*x509.Certificate
		var untrusted []string
		for _, der := range set.Certs {
			c, perr := x509.ParseCertificate(der)
			if perr != nil {
				return deepVerifier{}, fmt.Errorf("anchor set %x: %w", sum[:8], perr)
			}
			if !trusted.Contains(c) {
				untrusted = append(untrusted, fmt.Sprintf("%q", c.Subject.String()))
				continue
			}
			certs = append(certs, c)
		}
		if len(untrusted) > 0 {
			dv.reduced = true
			a.add(Finding{Kind: AnchorsUntrusted, SHA256: sum, LeafIndex: -1,
				Detail: fmt.Sprintf("the anchor set holds %d of %d certificates the audit's trust anchors do not: %s; "+
					"the messages verified with it are verified again without them (if the archive trusted them then, give them to the audit: PECARCHIVE_TRUST)",
					len(untrusted), len(set.Certs), strings.Join(untrusted, ", "))})
		}
		dv.v, err = smime.New(smime.Config{Anchors: smime.NewTrustStore(certs...), Index: index})
	}
	if err != nil {
		return deepVerifier{}, err
	}
	if a.verifiers == nil {
		a.verifiers = map[[32]byte]deepVerifier{}
	}
	a.verifiers[sum] = dv
	return dv, nil
}

// reparse parses and verifies raw, the bytes of the row m, again and compares.
func (a *auditor) reparse(ctx context.Context, m *catalog.Message, raw []byte) {
	dv, err := a.verifierFor(ctx, m.AnchorsSHA256)
	if err != nil {
		a.add(Finding{Kind: RowNotFromBlob, SHA256: m.SHA256, LeafIndex: int64(m.LeafIndex),
			Detail: "cannot verify again with the message's trust anchors: " + err.Error()})
		return
	}
	received := m.Verdict.VerifiedAt
	if received.IsZero() {
		received = m.ReceivedAt
	}
	p := archive.Prepare(ctx, m.SHA256, raw, archive.PrepareOptions{Verifier: dv.v, Parse: a.cfg.ParseOptions, ReceivedAt: received})
	got := p.Message
	if m.AnchorsSHA256 == ([32]byte{}) || dv.reduced {
		// The archive keeps the reference only to the anchor set it stored; a reduced set is
		// named on its own, and what matters of each row is the verdict it gives.
		got.AnchorsSHA256 = m.AnchorsSHA256
	}
	a.mu.Lock()
	a.rep.Reparsed++
	a.mu.Unlock()
	if got.EvidenceDigest() == m.EvidenceDigest() {
		return
	}
	a.add(Finding{Kind: RowNotFromBlob, SHA256: m.SHA256, LeafIndex: int64(m.LeafIndex),
		Detail: "parsing and verifying the blob again gives " + diffMessages(m, &got)})
}

// diffMessages names the evidence fields in which got differs from the row m.
func diffMessages(m, got *catalog.Message) string {
	a, b := *m, *got
	a.Normalize()
	b.Normalize()
	var d []string
	field := func(name string, x, y any) {
		if fmt.Sprint(x) != fmt.Sprint(y) {
			d = append(d, fmt.Sprintf("%s %q (the row says %q)", name, fmt.Sprint(y), fmt.Sprint(x)))
		}
	}
	tm := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	field("kind", a.Kind, b.Kind)
	field("message_id", a.MessageID, b.MessageID)
	field("pec_id", a.PECID, b.PECID)
	field("msgid", a.OrigMsgID, b.OrigMsgID)
	field("x_riferimento", a.XRiferimento, b.XRiferimento)
	field("sender", a.Sender, b.Sender)
	field("from", a.From, b.From)
	field("recipients", a.Recipients, b.Recipients)
	field("recipient_types", a.RecipientTypes, b.RecipientTypes)
	field("subject", a.Subject, b.Subject)
	field("provider", a.Provider, b.Provider)
	field("daticert_time", tm(a.DaticertTime), tm(b.DaticertTime))
	field("header_date", tm(a.HeaderDate), tm(b.HeaderDate))
	field("receipt_type", a.ReceiptType, b.ReceiptType)
	field("errore", a.Errore, b.Errore)
	field("errore_esteso", a.ErroreEsteso, b.ErroreEsteso)
	field("consegna", a.Consegna, b.Consegna)
	field("signature present/valid/trusted", []bool{a.Verdict.Present, a.Verdict.Valid, a.Verdict.Trusted},
		[]bool{b.Verdict.Present, b.Verdict.Valid, b.Verdict.Trusted})
	field("digest", a.Verdict.Digest, b.Verdict.Digest)
	field("signer", a.Verdict.Signer, b.Verdict.Signer)
	field("signer_email", a.Verdict.SignerEmail, b.Verdict.SignerEmail)
	field("index_provider", a.Verdict.Provider, b.Verdict.Provider)
	field("signed_at", tm(a.Verdict.SignedAt), tm(b.Verdict.SignedAt))
	field("verified_at", tm(a.Verdict.VerifiedAt), tm(b.Verdict.VerifiedAt))
	field("reasons", a.Verdict.Reasons, b.Verdict.Reasons)
	if !slices.Equal(a.Verdict.Details, b.Verdict.Details) {
		d = append(d, "other reason details")
	}
	field("problems", a.Problems, b.Problems)
	field("chain", fmt.Sprintf("%x", a.ChainSHA256), fmt.Sprintf("%x", b.ChainSHA256))
	field("anchors", fmt.Sprintf("%x", a.AnchorsSHA256), fmt.Sprintf("%x", b.AnchorsSHA256))
	field("postacert", fmt.Sprintf("%x", a.PostacertSHA256), fmt.Sprintf("%x", b.PostacertSHA256))
	field("size", a.Size, b.Size)
	if len(d) == 0 {
		return "other evidence fields"
	}
	return strings.Join(d, ", ")
}

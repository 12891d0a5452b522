package audit

import (
	"context"
	"crypto/x509"
	"fmt"
	"strings"

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

// diffMessages names the evidence fields in which got, what the blob gives, differs from the row
// m, both normalised as the digest sees them.
func diffMessages(m, got *catalog.Message) string {
	a, b := *m, *got
	a.Normalize()
	b.Normalize()
	d := catalog.DiffFields(&a, &b, "the row says", "received_at", "blob_version")
	if len(d) == 0 {
		return "other evidence fields"
	}
	return strings.Join(d, ", ")
}

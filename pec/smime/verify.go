package smime

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/pecarchive/pecarchive/pec"
)

// Defaults of [Config].
const (
	DefaultMaxCMSSize = 64 << 20 // bytes of one CMS blob (opaque signatures carry the message)
	DefaultMaxCerts   = 32       // certificates in one CMS blob
	DefaultCacheSize  = 1024     // parsed certificates, and chain validations, kept
	DefaultSkew       = 5 * time.Minute
)

// Config configures a [Verifier]. The zero value verifies against the built-in anchors without a
// provider index.
type Config struct {
	// Anchors are the trust anchors; nil means DefaultTrustStore.
	Anchors *TrustStore
	// Index, when set, is checked for every signer: the certificate must be listed and the From
	// domain managed by its provider.
	Index *ProviderIndex
	// MaxCMSSize bounds the CMS blob; 0 means DefaultMaxCMSSize.
	MaxCMSSize int
	// MaxCerts bounds the certificates in one CMS blob; 0 means DefaultMaxCerts.
	MaxCerts int
	// CacheSize bounds the parsed-certificate cache and the chain cache (entries each); 0 means
	// DefaultCacheSize.
	CacheSize int
	// Now is the clock used only when no other time is known (no signingTime, no At, no
	// ReceivedAt); nil means time.Now.
	Now func() time.Time
}

// VerifyOptions set the verification time. A nil *VerifyOptions means: as of the CMS
// signingTime.
type VerifyOptions struct {
	// At overrides the verification time.
	At time.Time
	// ReceivedAt is when the message was received (for example the IMAP INTERNALDATE). A
	// signingTime later than ReceivedAt+Skew is suspicious: the verdict then carries
	// ReasonSignedAfterReceipt and the chain is validated at ReceivedAt (unless At is set).
	// Without a signingTime, the chain is validated at ReceivedAt.
	ReceivedAt time.Time
	// Skew is the clock skew allowed between signer and receiver; 0 means DefaultSkew.
	Skew time.Duration
}

// Verdict is the result of verifying one signature.
type Verdict struct {
	// Present: the message carries a signature.
	Present bool `json:"present"`
	// Valid: the CMS signature matches the exact signed bytes (messageDigest and signature value).
	Valid bool `json:"valid"`
	// Trusted: Valid, and the signer chains to a trust anchor as of VerifiedAt, its certificate
	// fits the PEC profile, its e-mail matches the From address, and the provider index (when
	// configured) lists it for the From domain. Only warnings (see IsWarning) may remain.
	Trusted bool `json:"trusted"`
	// Digest is the CMS digest algorithm: "sha1", "sha256", ... ("" when unknown).
	Digest string `json:"digest"`
	// Signer is the subject DN of the signer certificate (RFC 2253 form).
	Signer string `json:"signer"`
	// SignerEmail is the signer's rfc822Name (the one equal to From when there is one).
	SignerEmail string `json:"signer_email"`
	// Provider is the providerName of the index entry that lists the signer, when an index is used.
	Provider string `json:"provider,omitempty"`
	// SignedAt is the CMS signingTime (zero when absent).
	SignedAt time.Time `json:"signed_at"`
	// VerifiedAt is the time the chain was validated at.
	VerifiedAt time.Time `json:"verified_at"`
	// Reasons are machine-readable reasons (the Reason constants), sorted, never nil.
	Reasons []string `json:"reasons"`
	// Details are human-readable explanations for a report; their wording is not a contract.
	Details []string `json:"details,omitempty"`
	// AnchorSetID identifies the trust anchors used (TrustStore.ID).
	AnchorSetID string `json:"anchor_set_id"`
	// Chain is the validated chain, signer first and anchor last. When the chain does not
	// validate it is the best path found (signer first, possibly not ending at an anchor) so it
	// can still be kept as evidence. The certificates must not be modified.
	Chain []*x509.Certificate `json:"-"`
}

// ChainDER returns the DER of the chain certificates, signer first (the slices alias the
// certificates; do not modify them).
func (v *Verdict) ChainDER() [][]byte {
	out := make([][]byte, len(v.Chain))
	for i, c := range v.Chain {
		out[i] = c.Raw
	}
	return out
}

// ChainPEM returns the chain as PEM CERTIFICATE blocks, signer first.
func (v *Verdict) ChainPEM() []byte {
	var b bytes.Buffer
	for _, c := range v.Chain {
		pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

// Has reports whether the verdict carries reason.
func (v *Verdict) Has(reason string) bool { return slices.Contains(v.Reasons, reason) }

// Verifier verifies PEC signatures against fixed anchors (and optionally a provider index). It
// caches parsed certificates and chain validations and is safe for concurrent use.
type Verifier struct {
	anchors  *TrustStore
	index    *ProviderIndex
	maxCMS   int
	maxCerts int
	now      func() time.Time
	certs    *certCache
	chains   *chainCache
}

// New returns a Verifier.
func New(cfg Config) (*Verifier, error) {
	if cfg.MaxCMSSize < 0 || cfg.MaxCerts < 0 || cfg.CacheSize < 0 {
		return nil, errors.New("smime: negative limit in Config")
	}
	v := &Verifier{
		anchors:  cfg.Anchors.or(),
		index:    cfg.Index,
		maxCMS:   orDefault(cfg.MaxCMSSize, DefaultMaxCMSSize),
		maxCerts: orDefault(cfg.MaxCerts, DefaultMaxCerts),
		now:      cfg.Now,
	}
	if v.now == nil {
		v.now = time.Now
	}
	size := orDefault(cfg.CacheSize, DefaultCacheSize)
	v.certs = newCertCache(size)
	v.chains = newChainCache(size)
	return v, nil
}

func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// Anchors returns the verifier's trust anchors.
func (v *Verifier) Anchors() *TrustStore { return v.anchors }

// Index returns the verifier's provider index (nil when none).
func (v *Verifier) Index() *ProviderIndex { return v.index }

// VerifyMessage verifies the signature of a parsed PEC message against its From address. A
// message without a signature yields Present=false and ReasonNoSignature.
func (v *Verifier) VerifyMessage(ctx context.Context, m *pec.Message, opts *VerifyOptions) Verdict {
	if m == nil || m.Signature == nil {
		return v.Verify(ctx, nil, "", opts)
	}
	return v.Verify(ctx, m.Signature, m.Headers.From, opts)
}

// Verify verifies sig as a PEC provider signature; from is the message's From address (a bare
// address or a full header value). It never fails: every problem is a reason in the verdict.
func (v *Verifier) Verify(ctx context.Context, sig *pec.Signature, from string, opts *VerifyOptions) Verdict {
	vd, _ := v.verify(ctx, sig, from, opts, &pecPolicy)
	return vd
}

// policy says what a verification checks beyond the CMS signature.
type policy struct {
	pecProfile bool // PEC certificate profile, From address and provider index
	usage      []x509.ExtKeyUsage
	mode       byte // distinguishes chain cache entries
}

var (
	pecPolicy   = policy{pecProfile: true, usage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}, mode: 1}
	indexPolicy = policy{pecProfile: false, usage: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}, mode: 2}
)

// collector gathers reasons and details.
type collector struct {
	vd *Verdict
}

func (c collector) add(reason string) { c.vd.Reasons = append(c.vd.Reasons, reason) }

func (c collector) addf(reason, format string, args ...any) {
	c.vd.Reasons = append(c.vd.Reasons, reason)
	c.vd.Details = append(c.vd.Details, reason+": "+fmt.Sprintf(format, args...))
}

func (c collector) detail(format string, args ...any) {
	c.vd.Details = append(c.vd.Details, fmt.Sprintf(format, args...))
}

// verify is Verify with a policy; it also returns the signed content.
func (v *Verifier) verify(ctx context.Context, sig *pec.Signature, from string, opts *VerifyOptions, pol *policy) (vd Verdict, content []byte) {
	vd.AnchorSetID = v.anchors.id
	r := collector{&vd}
	defer func() { vd.finish() }()

	if sig == nil || len(sig.CMS) == 0 {
		r.add(ReasonNoSignature)
		return vd, nil
	}
	vd.Present = true
	if len(sig.CMS) > v.maxCMS {
		r.addf(ReasonMalformedCMS, "CMS blob of %d bytes is over the limit of %d", len(sig.CMS), v.maxCMS)
		return vd, nil
	}
	sd, err := parseCMS(sig.CMS, v.maxCerts)
	if err != nil {
		r.addf(ReasonMalformedCMS, "%v", err)
		return vd, nil
	}
	canonical := false
	switch {
	case sig.Form != pec.SignatureOpaque && sig.Content != nil:
		content, canonical = sig.Content, true
	case sd.hasEContent:
		content = sd.eContent
	default:
		r.addf(ReasonMalformedCMS, "no signed content: detached signature without the signed entity")
		return vd, nil
	}
	if len(sd.signers) == 0 {
		r.addf(ReasonMalformedCMS, "no SignerInfo")
		return vd, nil
	}
	if len(sd.signers) > 1 {
		r.addf(ReasonMultipleSigners, "%d signers; only the first is verified", len(sd.signers))
	}
	si := &sd.signers[0]

	// Certificates, through the cache.
	entries := make([]*certEntry, 0, len(sd.certs))
	for i, der := range sd.certs {
		if sd.parsed != nil {
			entries = append(entries, v.certs.getParsed(sd.parsed[i]))
			continue
		}
		e, err := v.certs.get(der)
		if err != nil {
			r.detail("certificate #%d in the CMS ignored: %v", i+1, err)
			continue
		}
		entries = append(entries, e)
	}
	signer := findSigner(entries, si)
	if signer == nil {
		r.addf(ReasonNoSignerCertificate, "no certificate in the CMS matches the SignerInfo")
	} else {
		vd.Signer = signer.subject
	}

	// Digest and signature value.
	dalg, ok := digestAlgs[string(si.digestAlg)]
	if !ok {
		r.addf(ReasonUnsupportedAlgorithm, "digest algorithm %s", oidString(si.digestAlg))
	} else {
		vd.Digest = dalg.name
		if dalg.hash == digestSHA1.hash {
			r.add(ReasonWeakDigestSHA1)
		}
		if sig.Form == pec.SignatureDetached || sig.Micalg != "" {
			checkMicalg(sig.Micalg, dalg.name, r)
		}
		if signer != nil {
			v.checkValue(sd, si, dalg, content, canonical, signer.cert, r)
		}
	}

	// Verification time.
	var o VerifyOptions
	if opts != nil {
		o = *opts
	}
	skew := o.Skew
	if skew <= 0 {
		skew = DefaultSkew
	}
	at := si.signingTime
	if si.hasSigningTime {
		vd.SignedAt = si.signingTime
		if !o.ReceivedAt.IsZero() && si.signingTime.After(o.ReceivedAt.Add(skew)) {
			r.addf(ReasonSignedAfterReceipt, "signingTime %s is after the receipt time %s",
				si.signingTime.Format(time.RFC3339), o.ReceivedAt.UTC().Format(time.RFC3339))
			at = o.ReceivedAt
		}
	} else {
		r.add(ReasonNoSigningTime)
		at = o.ReceivedAt
		if at.IsZero() && o.At.IsZero() {
			at = v.now()
		}
	}
	if !o.At.IsZero() {
		at = o.At
	}
	vd.VerifiedAt = at.UTC()

	if signer == nil {
		return vd, content
	}
	if err := ctx.Err(); err != nil {
		r.addf(ReasonCanceled, "%v", err)
	} else {
		others := make([]*certEntry, 0, len(entries))
		for _, e := range entries {
			if e != signer {
				others = append(others, e)
			}
		}
		vd.Chain = v.chainAt(signer, others, vd.VerifiedAt, pol, r)
	}
	if !pol.pecProfile {
		return vd, content
	}
	addr := normFrom(from)
	if addr == "" {
		r.detail("no From address to compare the signer's e-mail with")
	}
	vd.SignerEmail = profileReasons(signer.cert, addr, r.add)
	if v.index != nil {
		p, why := v.index.lookup(signer.sum1, signer.cert.Raw)
		if why != "" {
			r.addf(why, "signer certificate SHA-1 %x", signer.sum1)
		}
		if p != nil {
			vd.Provider = p.Name
			if dom := fromDomain(addr); !p.manages(dom) {
				r.addf(ReasonDomainNotManaged, "domain %q is not managed by %q", dom, p.Name)
			}
		}
	}
	return vd, content
}

// finish sorts and de-duplicates the reasons and sets Valid and Trusted.
func (vd *Verdict) finish() {
	slices.Sort(vd.Reasons)
	vd.Reasons = slices.Compact(vd.Reasons)
	if vd.Reasons == nil {
		vd.Reasons = []string{}
	}
	vd.Valid = vd.Present
	vd.Trusted = vd.Present
	for _, r := range vd.Reasons {
		if IsInvalidating(r) {
			vd.Valid = false
		}
		if !IsWarning(r) {
			vd.Trusted = false
		}
	}
	vd.Trusted = vd.Trusted && vd.Valid
}

func findSigner(entries []*certEntry, si *signerInfo) *certEntry {
	for _, e := range entries {
		if si.issuer != nil {
			if bytes.Equal(e.cert.RawIssuer, si.issuer) && e.cert.SerialNumber.Cmp(si.serial) == 0 {
				return e
			}
		} else if len(si.ski) > 0 && bytes.Equal(e.cert.SubjectKeyId, si.ski) {
			return e
		}
	}
	return nil
}

// checkMicalg compares the multipart/signed micalg parameter (possibly a list) with the digest.
func checkMicalg(micalg, digest string, r collector) {
	m := normMicalg(micalg)
	if m == "" || m == "unknown" {
		return
	}
	for _, one := range bytes.Split([]byte(m), []byte(",")) {
		if string(bytes.TrimSpace(one)) == digest {
			return
		}
	}
	r.addf(ReasonMicalgMismatch, "micalg %q, CMS digest %s", micalg, digest)
}

// checkValue checks messageDigest against the content and the signature value over the signed
// attributes (or over the content digest when there are none).
func (v *Verifier) checkValue(sd *signedData, si *signerInfo, dalg digestAlg, content []byte, canonical bool, cert *x509.Certificate, r collector) {
	sa, ok := sigAlgs[string(si.sigAlg)]
	if !ok {
		r.addf(ReasonUnsupportedAlgorithm, "signature algorithm %s", oidString(si.sigAlg))
	}
	h := dalg.hash.New()
	changed := false
	if canonical {
		changed = writeCanonical(h, content)
	} else {
		h.Write(content)
	}
	var buf [64]byte
	sum := h.Sum(buf[:0])
	rawSum := func() []byte {
		h.Reset()
		h.Write(content)
		return h.Sum(nil)
	}
	sigErr := func(err error) {
		switch {
		case err == nil:
		case errors.Is(err, errUnsupported):
			r.addf(ReasonUnsupportedAlgorithm, "signature algorithm %s with %s", oidString(si.sigAlg), dalg.name)
		default:
			r.addf(ReasonBadSignature, "signature value does not verify with the signer's public key")
		}
	}
	if si.attrs == nil {
		if !ok {
			return
		}
		err := checkSig(cert.PublicKey, sa, si.sigParams, dalg.hash, sum, si.signature)
		if errors.Is(err, errBadSig) && changed && checkSig(cert.PublicKey, sa, si.sigParams, dalg.hash, rawSum(), si.signature) == nil {
			r.addf(ReasonNonCanonicalContent, "the signature covers the signed entity as stored (bare LF), not its CRLF form")
			err = nil
		}
		sigErr(err)
		return
	}
	if !bytes.Equal(si.contentType, sd.eContentType) {
		r.addf(ReasonMalformedCMS, "contentType attribute %s differs from eContentType %s", oidString(si.contentType), oidString(sd.eContentType))
	}
	if !bytes.Equal(sum, si.messageDigest) {
		if changed && bytes.Equal(rawSum(), si.messageDigest) {
			r.addf(ReasonNonCanonicalContent, "messageDigest matches the signed entity as stored (bare LF), not its CRLF form")
		} else {
			r.addf(ReasonDigestMismatch, "messageDigest %x, digest of the signed content %x", si.messageDigest, sum)
		}
	}
	if !ok {
		return
	}
	h.Reset()
	h.Write(signedAttrsTag)
	h.Write(si.attrs[1:])
	sigErr(checkSig(cert.PublicKey, sa, si.sigParams, dalg.hash, h.Sum(buf[:0]), si.signature))
}

// chainAt validates the signer's chain at t, through the chain cache, and returns the chain
// (or, on failure, the best path found).
func (v *Verifier) chainAt(signer *certEntry, others []*certEntry, t time.Time, pol *policy, r collector) []*x509.Certificate {
	kh := sha256.New()
	kh.Write([]byte{pol.mode})
	kh.Write(signer.sum256[:])
	for _, e := range others {
		kh.Write(e.sum256[:])
	}
	var key [32]byte
	kh.Sum(key[:0])
	if e := v.chains.get(key); e != nil && e.covers(t) {
		return slices.Clone(e.chain)
	}
	v.chains.misses.Add(1)
	inter := x509.NewCertPool()
	for _, e := range others {
		inter.AddCert(e.cert)
	}
	chains, err := signer.cert.Verify(x509.VerifyOptions{
		Roots:         v.anchors.pool,
		Intermediates: inter,
		CurrentTime:   t,
		KeyUsages:     pol.usage,
	})
	if err == nil && len(chains) > 0 {
		best := chains[0]
		for _, c := range chains[1:] {
			if len(c) < len(best) {
				best = c
			}
		}
		nb, na := chainWindow(best)
		v.chains.put(key, &chainEntry{chain: best, notBefore: nb, notAfter: na})
		return slices.Clone(best)
	}
	if err == nil {
		err = errors.New("no chain")
	}
	reason, path := v.diagnose(signer.cert, others, t, err)
	r.addf(reason, "%v", err)
	return path
}

// diagnose classifies a chain validation error and finds the best path for the report.
func (v *Verifier) diagnose(leaf *x509.Certificate, others []*certEntry, t time.Time, err error) (string, []*x509.Certificate) {
	path, anchored := v.bestPath(leaf, others)
	var cie x509.CertificateInvalidError
	if errors.As(err, &cie) {
		switch cie.Reason {
		case x509.Expired:
			if cie.Cert != nil && t.Before(cie.Cert.NotBefore) {
				return ReasonNotYetValid, path
			}
			return ReasonExpired, path
		case x509.CANotAuthorizedForThisName, x509.NameConstraintsWithoutSANs,
			x509.UnconstrainedName, x509.TooManyConstraints:
			return ReasonNameConstraints, path
		case x509.IncompatibleUsage, x509.CANotAuthorizedForExtKeyUsage:
			return ReasonBadExtKeyUsage, path
		}
		return ReasonBadChain, path
	}
	var uae x509.UnknownAuthorityError
	if !errors.As(err, &uae) {
		return ReasonBadChain, path
	}
	if !anchored {
		return ReasonUntrusted, path
	}
	// A path to an anchor exists by names and signatures, yet no chain was built: a
	// certificate on it was out of its validity period, or failed another check.
	for _, c := range path {
		if t.Before(c.NotBefore) {
			return ReasonNotYetValid, path
		}
	}
	for _, c := range path {
		if t.After(c.NotAfter) {
			return ReasonExpired, path
		}
	}
	return ReasonBadChain, path
}

// bestPath walks from leaf towards an anchor by issuer name and signature, through the CMS
// certificates and the anchors; it reports whether the path ends at an anchor.
func (v *Verifier) bestPath(leaf *x509.Certificate, others []*certEntry) ([]*x509.Certificate, bool) {
	path := []*x509.Certificate{leaf}
	cur := leaf
	for len(path) < 10 {
		if v.anchors.Contains(cur) {
			return path, true
		}
		var next *x509.Certificate
		for _, a := range v.anchors.certs {
			if issuedBy(cur, a) {
				next = a
				break
			}
		}
		if next == nil {
			for _, e := range others {
				if !slices.Contains(path, e.cert) && issuedBy(cur, e.cert) {
					next = e.cert
					break
				}
			}
		}
		if next == nil {
			return path, false
		}
		path = append(path, next)
		cur = next
	}
	return path, false
}

// issuedBy reports whether parent's name and key match child's issuer (the signature check
// ignores CA flags, which Verify judges).
func issuedBy(child, parent *x509.Certificate) bool {
	if !bytes.Equal(child.RawIssuer, parent.RawSubject) {
		return false
	}
	err := parent.CheckSignature(child.SignatureAlgorithm, child.RawTBSCertificate, child.Signature)
	return err == nil || errors.Is(err, x509.InsecureAlgorithmError(child.SignatureAlgorithm))
}

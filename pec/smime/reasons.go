package smime

// Reasons are the machine-readable explanations carried by [Verdict.Reasons]. Their spelling is a
// contract: new reasons may be added, existing ones are never renamed.
//
// Reasons marked "warning" do not by themselves make a signature untrusted (see [IsWarning]);
// every other reason does. Reasons marked "invalid" also mean the CMS signature itself does not
// verify (Verdict.Valid is false).
const (
	// Signature and CMS structure.
	ReasonNoSignature          = "no-signature"          // invalid: the message carries no signature
	ReasonMalformedCMS         = "malformed-cms"         // invalid: the CMS blob cannot be parsed or is inconsistent
	ReasonBadSignature         = "bad-signature"         // invalid: the signature value does not verify with the signer's key
	ReasonDigestMismatch       = "digest-mismatch"       // invalid: messageDigest differs from the digest of the signed bytes
	ReasonUnsupportedAlgorithm = "unsupported-algorithm" // invalid: unknown or refused digest or signature algorithm
	ReasonNoSignerCertificate  = "no-signer-certificate" // invalid: the signer's certificate is not in the CMS
	ReasonMultipleSigners      = "multiple-signers"      // more than one SignerInfo; only the first is verified
	ReasonNoSigningTime        = "no-signing-time"       // warning: no signingTime attribute; verified at the given or current time
	ReasonWeakDigestSHA1       = "weak-digest-sha1"      // warning: the CMS digest is SHA-1 (still common in PEC)
	ReasonMicalgMismatch       = "micalg-mismatch"       // warning: the micalg parameter does not name the CMS digest
	ReasonSignedAfterReceipt   = "signed-after-receipt"  // warning: signingTime is after the receipt time (plus skew); verified at the receipt time
	ReasonNonCanonicalContent  = "non-canonical-content" // warning: the signature covers the signed entity as stored, not its CRLF form

	// Certificate chain, validated at the verification time.
	ReasonExpired           = "expired"             // a certificate of the chain had expired
	ReasonNotYetValid       = "not-yet-valid"       // a certificate of the chain was not yet valid
	ReasonUntrusted         = "untrusted"           // no chain to a trust anchor
	ReasonNameConstraints   = "name-constraints"    // a CA's name constraints do not permit the signer's names
	ReasonBadChain          = "bad-chain"           // any other chain failure (not a CA, path length, critical extensions, ...)
	ReasonBadExtKeyUsage    = "bad-ext-key-usage"   // the chain does not allow e-mail protection (extended key usage)
	ReasonCanceled          = "canceled"            // the context ended before the chain was validated
	ReasonBadKeyUsage       = "bad-key-usage"       // the signer certificate lacks the digitalSignature key usage
	ReasonIsCA              = "is-ca"               // the signer certificate is a CA certificate
	ReasonNoEmail           = "no-email"            // the signer certificate has no rfc822Name subjectAltName
	ReasonEmailMismatch     = "email-mismatch"      // no rfc822Name of the signer equals the From address
	ReasonBadPolicy         = "bad-policy"          // certificate policies present but none under 1.3.76.16.3.1
	ReasonNotInIndex        = "not-in-index"        // the signer certificate's SHA-1 is not in the provider index
	ReasonIndexCertMismatch = "index-cert-mismatch" // the index entry's certificate differs from the signer's
	ReasonDomainNotManaged  = "domain-not-managed"  // the From domain is not among the provider's managed domains
)

// warnings are the reasons that do not by themselves make a verdict untrusted.
var warnings = map[string]bool{
	ReasonNoSigningTime:       true,
	ReasonWeakDigestSHA1:      true,
	ReasonMicalgMismatch:      true,
	ReasonSignedAfterReceipt:  true,
	ReasonNonCanonicalContent: true,
}

// invalidating are the reasons that mean the CMS signature does not verify.
var invalidating = map[string]bool{
	ReasonNoSignature:          true,
	ReasonMalformedCMS:         true,
	ReasonBadSignature:         true,
	ReasonDigestMismatch:       true,
	ReasonUnsupportedAlgorithm: true,
	ReasonNoSignerCertificate:  true,
}

// IsWarning reports whether reason is informative only: a verdict whose reasons are all warnings
// is trusted.
func IsWarning(reason string) bool { return warnings[reason] }

// IsInvalidating reports whether reason means the CMS signature itself does not verify.
func IsInvalidating(reason string) bool { return invalidating[reason] }

// Package smime verifies the S/MIME (CMS, PKCS #7 SignedData) signatures of PEC messages the way
// a court expert would, and owns the trust material that verification needs.
//
// It owns:
//   - CMS verification over the exact signed bytes: detached multipart/signed (the signed entity is
//     canonicalised to CRLF on the fly, as OpenSSL does) and opaque application/pkcs7-mime
//     signed-data; SHA-1 and SHA-2 digests, RSA PKCS #1 v1.5, RSA-PSS and ECDSA signatures;
//   - verification as of a point in time (by default the CMS signingTime, bounded by the time the
//     message was received), with the certificate chain of the signer validated at that time;
//   - the PEC certificate profile (key usage, no CA, rfc822Name matching the From address, policy
//     under 1.3.76.16.3.1);
//   - trust anchors ([TrustStore]; the built-in default is AgID CA1 under Actalis Authentication
//     Root CA) and their stable identifier for archive snapshots ([TrustStore.ID]);
//   - the official provider index (IGPEC, RFC 6109 section 4.5) in LDIF form, plain or signed
//     ([LoadIndex], [ParseLDIF]).
//
// The result of a verification is a [Verdict]: whether a signature is present, whether it is valid
// (the CMS signature matches the exact signed bytes), whether it is trusted (chain, profile,
// e-mail and provider index all hold), and the machine-readable reasons why not (see the Reason
// constants). Verification never panics and bounds every input; hostile input yields a verdict
// with reasons, not an error.
//
// SHA-1 is accepted as a CMS digest (real PEC traffic still uses it) and reported with the
// non-fatal reason [ReasonWeakDigestSHA1]; nothing here re-enables SHA-1 certificate signatures in
// crypto/x509.
package smime

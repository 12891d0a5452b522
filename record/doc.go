// Package record owns what the archive records about one raw message, free of any database: the
// record itself ([Message], its signature [Verdict], its [Source]s), its normalisation (every
// text cleaned and bounded, addresses and message ids in one form, times to the microsecond),
// and the digests its transparency-log leaves carry: the catalog/v1 and catalog/v2 evidence
// digests, the digest of a source, the Extra field of message and source leaves, their parsing,
// and the checks of a leaf against a record. It also identifies signer chains and trust-anchor
// sets by the SHA-256 of their DER.
//
// The catalog (services/archive/catalog) stores these records in PostgreSQL and writes the
// leaves; the audit checks the stored rows against the leaves with this package, and the offline
// verifier of evidence bundles (package evidence) recomputes the digests of the records a bundle
// carries with it, so that a leaf proves a record however it travelled.
package record

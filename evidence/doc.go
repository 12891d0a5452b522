// Package evidence owns the pecarchive evidence bundle: the ZIP an auditor, a lawyer or a court
// expert takes away and checks offline, without trusting the archive, its database or its network.
// It owns the format (layout, manifest.json schema, ASiC manifest), the streaming writer
// ([Write]), the hostile-safe reader ([Open]), the offline verifier ([Verify]) and the printable
// statement (report.html). It depends on no database, object store or gRPC server: only on the
// public packages pec, pec/smime and tlog.
//
// # Layout
//
// A bundle is an ETSI ASiC-E container (EN 319 162-1, "ASiC extended"):
//
//	mimetype                         first entry, stored (no compression, no extra field), holding
//	                                 "application/vnd.etsi.asic-e+zip"
//	messages/<sha256>.eml            every message the bundle speaks of, byte-exact: originals,
//	                                 transport envelopes, receipts; named by the SHA-256 of its bytes
//	certs/chains/<sha256>.pem        signer chains (signer first) as the archive kept them; the name
//	                                 is the SHA-256 of the concatenated DER certificates
//	certs/anchors/<sha256>.pem       trust-anchor snapshots used by the verdicts; the name is the
//	                                 anchor-set ID (pec/smime TrustStore.ID)
//	checkpoint.txt                   the log's signed checkpoint (C2SP signed note) every proof is
//	                                 against
//	checkpoints/<size>.txt           earlier checkpoints the bundle cites, each with a consistency
//	                                 proof to checkpoint.txt in the manifest
//	log-public-key.txt               the log's public (note verifier) key
//	report.html                      the statement for people, Italian then English
//	manifest.json                    the machine contract (see [Manifest])
//	META-INF/ASiCManifest.xml        every data object above with its SHA-256, in the ETSI
//	                                 ASiCManifest schema
//
// Entries are written in that order; mimetype is the only one whose position matters. report.html
// lists the SHA-256 of every file written before it; manifest.json lists every file but itself
// and META-INF; the ASiC manifest lists every data object, manifest.json included. The ASiC
// manifest is not signed yet (an RFC 3161 timestamp over it is planned): it therefore carries no
// SigReference, which the ETSI schema requires once a signature or timestamp exists.
//
// # What the verifier checks
//
// [Verify] recomputes every hash (ASiC manifest, manifest.json's file list, message names, chain
// and anchor-set identifiers); recomputes each message's record digests with package record and
// checks them against its log leaf (a catalog/v2 leaf covers the record, received_at to the
// microsecond, and the first source), and the leaf's inclusion proof against the checkpoint;
// checks the checkpoint's signature (against the keys the caller gives, otherwise against the
// bundled key, which it reports as a warning); re-parses every message and describes it as the
// archive does (record.Describe) to compare with its record; re-verifies every signature as of
// its signing time with the bundled trust anchors only; derives every delivery claim again with
// the query service's rule (verdict.Conversation, [DeriveDeliveries]), each message counting
// only as far as its signature verified; checks the earlier checkpoints the bundle cites, and
// any the caller holds, as the archive's audit does (tlog.CheckAgainst); and checks that
// report.html is exactly what the manifest renders to. It names each failure precisely
// ([Failure]): which file, claim, proof or signature.
//
// A bundle is a selection of the archive: it proves what it holds, not that nothing was left
// out. Nor does it prove the manifest's CreatedAt, ExportedBy and Selectors: they are the
// exporter's statement. What an export held is recorded in the log (the access record of the
// export, with those fields and every SHA-256), a leaf written after the checkpoint the bundle
// proves against, where an auditor with access to the log can compare it.
//
// # Hostile bundles
//
// [Open] reads a bundle from an io.ReaderAt without extracting it and refuses, with a typed
// error ([FormatError]), anything a bundle written by [Write] never holds: unsafe or non-UTF-8
// names, names that collide after case folding and Unicode normalisation, symlinks, directories
// and other non-regular entries, encrypted entries, unknown compression methods, overlapping
// entries, more entries or bytes than the limits ([Limits]), declared sizes that deflate cannot
// produce, a mimetype entry that is not first and stored, and any layout that another ZIP reader
// could read otherwise ([ErrLayout]: bytes before, between or after the entries, an entry whose
// local header is missing from the central directory or names it otherwise, a data descriptor
// or zip64 end record that disagrees with the central directory) or that carries comments
// ([ErrComment]; the archive may carry the ASiC one). The bytes of an entry are counted as they
// are read, so a lying size is caught too. manifest.json is decoded strictly: valid
// UTF-8, no duplicate or unknown keys, bounded depth.
package evidence

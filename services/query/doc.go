// Package query owns the query service (pecarchive.query.v1.EvidenceService): it answers "was
// this notice delivered to this member, and when?" with the verdict of package evidence/verdict,
// the receipts behind it and their inclusion proofs against one signed checkpoint; it serves the
// exact bytes of archived messages, searches the catalog, hands out the log's checkpoints and
// proofs, and exports evidence bundles (package evidence) that an auditor checks offline.
//
// It is read-only and stateless: it reads the catalog, the blobs and the transparency log through
// the evidence reader (services/archive/reader), never through the archive, and it needs no
// write access to PostgreSQL (in tests it reads as the role pecarchive_query, which may only
// SELECT). Every read of evidence (ProveDelivery, GetMessage, SearchMessages,
// ExportEvidenceBundle) is recorded before the answer leaves: who, which RPC, what selector,
// which messages the answer carries. The record goes through the archive, the single writer
// ([Recorder]: the archive's RecordAccess RPC, or the archive itself in-process), which commits
// it as a row and a leaf of the same transparency log, so that access history cannot be
// rewritten either. A read that cannot be recorded is refused (fail closed).
//
// [Service] is the Go API (the in-process `pecarchive prove` calls it through [Server]'s
// handlers); [Server] puts it behind gRPC with authentication and the role table of
// [DefaultPolicy], health checking and reflection. The handlers are the only place where errors
// become gRPC status codes, with messages that say nothing of the storage behind.
package query

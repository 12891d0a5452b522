// Package tlog owns the public, offline side of the pecarchive transparency log: the leaf
// encoding, RFC 6962 hashing, signed checkpoints (C2SP tlog-checkpoint signed notes with
// Ed25519 keys) and verification of inclusion and consistency proofs. It is everything an
// auditor needs to check the log without a database; the PostgreSQL-backed log that produces
// leaves, proofs and checkpoints lives in services/archive/merklelog.
//
// # Tree
//
// The log is an append-only Merkle tree as defined by RFC 6962 section 2.1 with SHA-256:
//
//	leaf hash     = SHA-256(0x00 || leaf data)
//	interior hash = SHA-256(0x01 || left || right)
//	empty tree    = SHA-256("")
//
// Leaf data is the encoding of a [Leaf] (see [Leaf.Marshal]).
//
// # Checkpoints
//
// A checkpoint is a signed note (golang.org/x/mod/sumdb/note) whose text is, per C2SP
// tlog-checkpoint:
//
//	<origin>\n
//	<tree size in decimal, no leading zeros>\n
//	<root hash, standard base64 with padding>\n
//
// followed by a blank line and one or more signature lines. The log signs with an Ed25519 note key
// whose name is the origin; keys use the note package's string formats ("PRIVATE+KEY+<name>+…"
// for the secret key, "<name>+<hash>+<base64>" for the public verifier key). A log that rotated
// its key is checked with all its keys ([ParseVerifierKeys], [VerifyCheckpointAny]).
//
// # Append-only
//
// [CheckAgainst] is the one check of a signed checkpoint against a log: signed by the log's key,
// not larger than the log ([ErrRollback]), and extended by it ([ErrFork]). The archive makes it
// before it signs, its audit for every checkpoint kept on write-once storage or held outside,
// and an offline verifier with a bundled proof.
package tlog

import "errors"

var (
	// ErrInvalidLeaf reports leaf data that is not a valid, canonical leaf encoding.
	ErrInvalidLeaf = errors.New("tlog: invalid leaf")
	// ErrInvalidCheckpoint reports a checkpoint that is malformed, not canonical, or not signed
	// by the expected key.
	ErrInvalidCheckpoint = errors.New("tlog: invalid checkpoint")
	// ErrInvalidProof reports an inclusion or consistency proof that does not verify.
	ErrInvalidProof = errors.New("tlog: invalid proof")
	// ErrInvalidKey reports a malformed signer or verifier key.
	ErrInvalidKey = errors.New("tlog: invalid key")
)

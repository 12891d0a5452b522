package grpcserver

import (
	"context"
	"errors"
	"time"

	"github.com/pecarchive/pecarchive/pec"
)

// This file mirrors the shapes of package archive (services/archive) that the server needs,
// following the contract in the project brief, until that package lands; then these become
// aliases of archive.Source, archive.Record and its sentinel errors.

// Source says where a message was found (archive.Source).
type Source struct {
	Mailbox, Folder string
	UIDValidity     uint32
	UID             uint32
	InternalDate    time.Time
	Path            string
}

// Verdict is the signature verification outcome stored with a record.
type Verdict struct {
	Present, Valid, Trusted bool
	Digest                  string
	Signer, SignerEmail     string
	SignedAt, VerifiedAt    time.Time
	Reasons                 []string
}

// Record is what the archive stored for one message (archive.Record).
type Record struct {
	SHA256      [32]byte
	Size        int64
	Kind        pec.Kind
	ReceiptType pec.ReceiptType
	Verdict     Verdict
	LeafIndex   uint64
	New         bool
	Problems    []string
}

// Errors the archive core returns (archive.ErrInvalid, archive.ErrUnavailable, not found).
var (
	ErrInvalid     = errors.New("archive: invalid input")
	ErrUnavailable = errors.New("archive: unavailable")
	ErrNotFound    = errors.New("archive: not found")
)

// Archive is what the server needs of the archive core (*archive.Archive).
type Archive interface {
	// Store archives raw (see archive.Archive.Store).
	Store(ctx context.Context, raw []byte, src Source) (Record, error)
	// Get returns the record of the message with the given SHA-256, or an error wrapping
	// ErrNotFound.
	Get(ctx context.Context, sum [32]byte) (Record, error)
}

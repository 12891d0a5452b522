package grpcserver

import (
	"context"
	"io"

	"github.com/pecarchive/pecarchive/services/archive"
	"github.com/pecarchive/pecarchive/services/archive/catalog"
	"github.com/pecarchive/pecarchive/services/archive/reader"
)

// Archive is what the server needs of the archive core, the single writer; *archive.Archive
// implements it. Errors wrapping archive.ErrInvalid, ErrNotFound, ErrUnavailable, ErrClosed and
// ErrIntegrity map to InvalidArgument, NotFound, Unavailable, Unavailable and DataLoss.
type Archive interface {
	// Store archives raw (see archive.Archive.Store).
	Store(ctx context.Context, raw []byte, src archive.Source) (archive.Record, error)
	// RecordAccess records a read of evidence (see archive.Archive.RecordAccess).
	RecordAccess(ctx context.Context, acc catalog.Access) (catalog.Access, error)
}

var _ Archive = (*archive.Archive)(nil)

// Reader is what the server reads records and the log through; *reader.Reader implements it.
// Errors wrapping reader.ErrInvalid, ErrNotFound, ErrOutOfRange, ErrIntegrity, ErrSchema and
// ErrUnavailable map to InvalidArgument, NotFound, OutOfRange, DataLoss, FailedPrecondition and
// Unavailable.
type Reader interface {
	// Get returns the record of the message with the given SHA-256, with its sources.
	Get(ctx context.Context, sum [32]byte) (reader.Record, error)
	Checkpoint(ctx context.Context) (signed []byte, err error)
	InclusionProof(ctx context.Context, index, size uint64) ([][]byte, error)
	ConsistencyProof(ctx context.Context, from, to uint64) ([][]byte, error)
	LeafData(ctx context.Context, index uint64) ([]byte, error)
	// OpenMessage returns the exact bytes of a catalogued message, checked against its SHA-256
	// at EOF (GetRecord with verify_blob).
	OpenMessage(ctx context.Context, m *catalog.Message) (io.ReadCloser, error)
}

var _ Reader = (*reader.Reader)(nil)

package grpcserver

import (
	"context"

	"github.com/pecarchive/pecarchive/services/archive"
)

// Archive is what the server needs of the archive core; *archive.Archive implements it. Errors
// wrapping archive.ErrInvalid, ErrNotFound, ErrUnavailable, ErrClosed and ErrIntegrity map to
// InvalidArgument, NotFound, Unavailable, Unavailable and DataLoss.
type Archive interface {
	// Store archives raw (see archive.Archive.Store).
	Store(ctx context.Context, raw []byte, src archive.Source) (archive.Record, error)
	// Get returns the record of the message with the given SHA-256, with its sources, or an
	// error wrapping archive.ErrNotFound.
	Get(ctx context.Context, sum [32]byte) (archive.Record, error)
}

var _ Archive = (*archive.Archive)(nil)

package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	archivev1 "github.com/pecarchive/pecarchive/gen/pecarchive/archive/v1"
	"github.com/pecarchive/pecarchive/services/archive/archiveclient"
)

// Errors of an [Archiver]; use errors.Is.
var (
	// ErrRefused: the archive refused the message for good (empty, over its size limit, bytes
	// that disagree with what was declared). Retrying the same bytes fails the same way; the
	// message belongs in the dead-letter table.
	ErrRefused = errors.New("ingest: refused by the archive")
	// ErrUnavailable: the archive (or one of its stores) is unreachable or failed; nothing was
	// acknowledged. Storing is idempotent by SHA-256, so retry later.
	ErrUnavailable = errors.New("ingest: archive unavailable")
	// ErrNotArchived: the archive holds no message with that SHA-256.
	ErrNotArchived = errors.New("ingest: not archived")
)

// Source says where a message was found: an IMAP folder message, or a file (Path).
type Source struct {
	Mailbox, Folder string
	UIDValidity     uint32
	UID             uint32
	InternalDate    time.Time // zero when unknown
	Path            string
}

// Stored is the archive's acknowledgement of one message: it is durable and committed.
type Stored struct {
	SHA256    [32]byte
	Size      int64
	New       bool // false when the archive already held these bytes
	LeafIndex uint64
	Kind      string // the inspect contract's kind: a daticert tipo, "anomalia" or "not-pec"
	// Valid and Trusted are the archive's own verdict on the signature.
	Valid, Trusted bool
	Problems       []string
}

// Archiver is what ingest needs of the archive, the single writer of the evidence store: its
// Store (idempotent by SHA-256; returns only once the message is durable and committed) and its
// record look-up. [NewRemote] reaches a running archive over gRPC; `pecarchive` also provides an
// in-process one on the same interface. Errors wrap [ErrRefused], [ErrUnavailable] or
// [ErrNotArchived] where they apply.
type Archiver interface {
	Store(ctx context.Context, raw []byte, src Source) (Stored, error)
	Lookup(ctx context.Context, sum [32]byte) (Stored, error)
}

// Remote is an [Archiver] over the archive's gRPC API (package archiveclient).
type Remote struct {
	client archivev1.ArchiveServiceClient
	opts   *archiveclient.Options
}

// NewRemote returns an Archiver calling client; opts tune the retries of Store (nil: defaults).
func NewRemote(client archivev1.ArchiveServiceClient, opts *archiveclient.Options) *Remote {
	return &Remote{client: client, opts: opts}
}

// Store implements [Archiver].
func (r *Remote) Store(ctx context.Context, raw []byte, src Source) (Stored, error) {
	ps := &archivev1.Source{Mailbox: src.Mailbox, Folder: src.Folder, UidValidity: src.UIDValidity, Uid: src.UID, Path: src.Path}
	if !src.InternalDate.IsZero() {
		ps.InternalDate = timestamppb.New(src.InternalDate)
	}
	rec, err := archiveclient.StoreBytes(ctx, r.client, raw, ps, r.opts)
	if err != nil {
		return Stored{}, remoteErr("store", err)
	}
	return storedFromProto(rec), nil
}

// Lookup implements [Archiver] with GetRecord and verify_blob: the archive reads the message's
// bytes back and re-hashes them before it answers, as the in-process archiver does. A blob that
// is missing or altered (DATA_LOSS), or an archive too old to check it (blob_verified false),
// is ErrNotArchived: nothing is removed from a mailbox on the catalog row alone.
func (r *Remote) Lookup(ctx context.Context, sum [32]byte) (Stored, error) {
	resp, err := r.client.GetRecord(ctx, &archivev1.GetRecordRequest{Sha256: sum[:], VerifyBlob: true})
	if status.Code(err) == codes.DataLoss {
		return Stored{}, fmt.Errorf("%w: look up: %x is catalogued but its blob is missing or altered: %w", ErrNotArchived, sum[:8], err)
	}
	if err != nil {
		return Stored{}, remoteErr("look up", err)
	}
	if !resp.GetBlobVerified() {
		return Stored{}, fmt.Errorf("%w: look up: the archive did not confirm the blob of %x (a server without verify_blob)", ErrNotArchived, sum[:8])
	}
	return storedFromProto(resp.GetRecord()), nil
}

// remoteErr sorts a gRPC error of the archive into this package's kinds.
func remoteErr(op string, err error) error {
	if errors.Is(err, archiveclient.ErrMismatch) {
		return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
	}
	switch status.Code(err) {
	case codes.InvalidArgument, codes.ResourceExhausted, codes.DataLoss:
		return fmt.Errorf("%w: %s: %w", ErrRefused, op, err)
	case codes.NotFound:
		return fmt.Errorf("%w: %s: %w", ErrNotArchived, op, err)
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.Aborted, codes.Unknown:
		return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
	}
	return fmt.Errorf("ingest: %s: %w", op, err)
}

func storedFromProto(r *archivev1.Record) Stored {
	var s Stored
	copy(s.SHA256[:], r.GetSha256())
	s.Size = r.GetSize()
	s.New = r.GetNew()
	s.LeafIndex = r.GetLeafIndex()
	s.Kind = r.GetKind()
	s.Valid = r.GetVerdict().GetValid()
	s.Trusted = r.GetVerdict().GetTrusted()
	s.Problems = r.GetProblems()
	return s
}

package grpcserver

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	archivev1 "github.com/pecarchive/pecarchive/gen/pecarchive/archive/v1"
	"github.com/pecarchive/pecarchive/internal/auth"
	"github.com/pecarchive/pecarchive/services/archive"
	"github.com/pecarchive/pecarchive/services/archive/catalog"
	"github.com/pecarchive/pecarchive/services/archive/reader"
)

// GetRecord returns the record of one message.
func (s *Service) GetRecord(ctx context.Context, req *archivev1.GetRecordRequest) (*archivev1.GetRecordResponse, error) {
	if len(req.GetSha256()) != sha256.Size {
		return nil, status.Errorf(codes.InvalidArgument, "grpcserver: sha256 has %d bytes, want %d", len(req.GetSha256()), sha256.Size)
	}
	if s.reader == nil {
		return nil, errNoReader
	}
	rec, err := s.reader.Get(ctx, [sha256.Size]byte(req.GetSha256()))
	if err != nil {
		return nil, statusError(ctx, "get record", err)
	}
	resp := &archivev1.GetRecordResponse{Record: recordToProto(archive.Record{Message: rec.Message, Reasons: rec.Verdict.Reasons, Sources: rec.Sources})}
	if req.GetVerifyBlob() {
		if err := s.verifyBlob(ctx, &rec.Message); err != nil {
			return nil, err
		}
		resp.BlobVerified = true
	}
	return resp, nil
}

// GetCheckpoint returns the latest signed checkpoint.
func (s *Service) GetCheckpoint(ctx context.Context, _ *archivev1.GetCheckpointRequest) (*archivev1.GetCheckpointResponse, error) {
	if s.reader == nil {
		return nil, errNoReader
	}
	signed, err := s.reader.Checkpoint(ctx)
	if err != nil {
		return nil, statusError(ctx, "checkpoint", err)
	}
	return &archivev1.GetCheckpointResponse{Checkpoint: signed}, nil
}

// GetInclusionProof returns an inclusion proof and the leaf it is for.
func (s *Service) GetInclusionProof(ctx context.Context, req *archivev1.GetInclusionProofRequest) (*archivev1.GetInclusionProofResponse, error) {
	if s.reader == nil {
		return nil, errNoReader
	}
	index, size := req.GetLeafIndex(), req.GetTreeSize()
	if index >= size {
		return nil, status.Errorf(codes.InvalidArgument, "grpcserver: leaf_index %d is not below tree_size %d", index, size)
	}
	proof, err := s.reader.InclusionProof(ctx, index, size)
	if err != nil {
		return nil, statusError(ctx, "inclusion proof", err)
	}
	leaf, err := s.reader.LeafData(ctx, index)
	if err != nil {
		return nil, statusError(ctx, "leaf data", err)
	}
	return &archivev1.GetInclusionProofResponse{LeafIndex: index, TreeSize: size, Hashes: proof, LeafData: leaf}, nil
}

// GetConsistencyProof returns a consistency proof between two tree sizes.
func (s *Service) GetConsistencyProof(ctx context.Context, req *archivev1.GetConsistencyProofRequest) (*archivev1.GetConsistencyProofResponse, error) {
	if s.reader == nil {
		return nil, errNoReader
	}
	from, to := req.GetFromSize(), req.GetToSize()
	if from > to {
		return nil, status.Errorf(codes.InvalidArgument, "grpcserver: from_size %d is over to_size %d", from, to)
	}
	proof, err := s.reader.ConsistencyProof(ctx, from, to)
	if err != nil {
		return nil, statusError(ctx, "consistency proof", err)
	}
	return &archivev1.GetConsistencyProofResponse{FromSize: from, ToSize: to, Hashes: proof}, nil
}

var errNoReader = status.Error(codes.Unimplemented, "grpcserver: this server does not serve records or the transparency log")

// statusError is the one place where errors of the archive and the reader, sorted into kinds
// where they arose, become gRPC status codes. When the RPC's own context is done the code says
// so (Canceled, DeadlineExceeded); otherwise the kind decides, and any other timeout (one of a
// backing store, not the caller's) is Unavailable: retry. Unknown errors are Internal.
func statusError(ctx context.Context, op string, err error) error {
	code := codes.Internal
	var timeout interface{ Timeout() bool }
	switch {
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		code = status.FromContextError(ctx.Err()).Code()
	case errors.Is(err, archive.ErrInvalid), errors.Is(err, reader.ErrInvalid):
		code = codes.InvalidArgument
	case errors.Is(err, archive.ErrNotFound), errors.Is(err, reader.ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, reader.ErrOutOfRange):
		code = codes.OutOfRange
	case errors.Is(err, archive.ErrUnavailable), errors.Is(err, archive.ErrClosed), errors.Is(err, reader.ErrUnavailable),
		errors.As(err, &timeout) && timeout.Timeout():
		code = codes.Unavailable
	case errors.Is(err, archive.ErrIntegrity), errors.Is(err, reader.ErrIntegrity):
		code = codes.DataLoss
	case errors.Is(err, reader.ErrSchema):
		code = codes.FailedPrecondition
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, auth.ErrUnauthenticated):
		code = codes.Unauthenticated
	case errors.Is(err, auth.ErrPermissionDenied):
		code = codes.PermissionDenied
	}
	return status.Error(code, fmt.Sprintf("grpcserver: %s: %v", op, err))
}

// recordToProto converts a record (and its postacert record, one level: a postacert carries
// none).
func recordToProto(r archive.Record) *archivev1.Record {
	p := messageToProto(&r.Message)
	p.New = r.New
	if len(p.Verdict.Reasons) == 0 {
		p.Verdict.Reasons = r.Reasons
	}
	for _, s := range r.Sources {
		p.Sources = append(p.Sources, &archivev1.Source{
			Mailbox:      s.Mailbox,
			Folder:       s.Folder,
			UidValidity:  s.UIDValidity,
			Uid:          s.UID,
			InternalDate: timestamp(s.InternalDate),
			Path:         s.Path,
			FirstSeen:    timestamp(s.FirstSeen),
			ParentSha256: sumOrNil(s.Parent),
		})
	}
	if r.Postacert != nil {
		p.Postacert = messageToProto(&r.Postacert.Message)
		p.Postacert.New = r.Postacert.New
	}
	return p
}

func messageToProto(m *catalog.Message) *archivev1.Record {
	v := m.Verdict
	p := &archivev1.Record{
		Sha256:      append([]byte(nil), m.SHA256[:]...),
		Size:        m.Size,
		Kind:        string(m.Kind),
		ReceiptType: string(m.ReceiptType),
		Verdict: &archivev1.Verdict{
			Present:     v.Present,
			Valid:       v.Valid,
			Trusted:     v.Trusted,
			Digest:      v.Digest,
			Signer:      v.Signer,
			SignerEmail: v.SignerEmail,
			SignedAt:    timestamp(v.SignedAt),
			VerifiedAt:  timestamp(v.VerifiedAt),
			Reasons:     v.Reasons,
			Provider:    v.Provider,
			Details:     v.Details,
		},
		Problems:        m.Problems,
		LeafIndex:       m.LeafIndex,
		MessageId:       m.MessageID,
		PecId:           m.PECID,
		OrigMsgid:       m.OrigMsgID,
		Sender:          m.Sender,
		Subject:         m.Subject,
		Provider:        m.Provider,
		Errore:          string(m.Errore),
		ReceivedAt:      timestamp(m.ReceivedAt),
		PostacertSha256: sumOrNil(m.PostacertSHA256),
	}
	if !m.DaticertTime.IsZero() {
		p.DaticertTime = m.DaticertTime.Format(time.RFC3339)
	}
	for i, a := range m.Recipients {
		r := &archivev1.Recipient{Address: a}
		if i < len(m.RecipientTypes) {
			r.Type = m.RecipientTypes[i]
		}
		p.Recipients = append(p.Recipients, r)
	}
	return p
}

func sumOrNil(s [32]byte) []byte {
	if s == ([32]byte{}) {
		return nil
	}
	return append([]byte(nil), s[:]...)
}

func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

package grpcserver

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	archivev1 "github.com/pecarchive/pecarchive/gen/pecarchive/archive/v1"
	"github.com/pecarchive/pecarchive/internal/auth"
	"github.com/pecarchive/pecarchive/services/archive/blob"
	"github.com/pecarchive/pecarchive/services/archive/merklelog"
)

// GetRecord returns the record of one message.
func (s *Service) GetRecord(ctx context.Context, req *archivev1.GetRecordRequest) (*archivev1.GetRecordResponse, error) {
	if len(req.GetSha256()) != sha256.Size {
		return nil, status.Errorf(codes.InvalidArgument, "grpcserver: sha256 has %d bytes, want %d", len(req.GetSha256()), sha256.Size)
	}
	rec, err := s.archive.Get(ctx, [sha256.Size]byte(req.GetSha256()))
	if err != nil {
		return nil, statusError("get record", err)
	}
	rec.New = false
	return &archivev1.GetRecordResponse{Record: recordToProto(rec)}, nil
}

// GetCheckpoint returns the latest signed checkpoint.
func (s *Service) GetCheckpoint(ctx context.Context, _ *archivev1.GetCheckpointRequest) (*archivev1.GetCheckpointResponse, error) {
	if s.log == nil {
		return nil, errNoLog
	}
	signed, err := s.log.Checkpoint(ctx)
	if err != nil {
		return nil, statusError("checkpoint", err)
	}
	return &archivev1.GetCheckpointResponse{Checkpoint: signed}, nil
}

// GetInclusionProof returns an inclusion proof and the leaf it is for.
func (s *Service) GetInclusionProof(ctx context.Context, req *archivev1.GetInclusionProofRequest) (*archivev1.GetInclusionProofResponse, error) {
	if s.log == nil {
		return nil, errNoLog
	}
	index, size := req.GetLeafIndex(), req.GetTreeSize()
	if index >= size {
		return nil, status.Errorf(codes.InvalidArgument, "grpcserver: leaf_index %d is not below tree_size %d", index, size)
	}
	proof, err := s.log.InclusionProof(ctx, index, size)
	if err != nil {
		return nil, statusError("inclusion proof", err)
	}
	leaf, err := s.log.LeafData(ctx, index)
	if err != nil {
		return nil, statusError("leaf data", err)
	}
	return &archivev1.GetInclusionProofResponse{LeafIndex: index, TreeSize: size, Hashes: proof, LeafData: leaf}, nil
}

// GetConsistencyProof returns a consistency proof between two tree sizes.
func (s *Service) GetConsistencyProof(ctx context.Context, req *archivev1.GetConsistencyProofRequest) (*archivev1.GetConsistencyProofResponse, error) {
	if s.log == nil {
		return nil, errNoLog
	}
	from, to := req.GetFromSize(), req.GetToSize()
	if from > to {
		return nil, status.Errorf(codes.InvalidArgument, "grpcserver: from_size %d is over to_size %d", from, to)
	}
	proof, err := s.log.ConsistencyProof(ctx, from, to)
	if err != nil {
		return nil, statusError("consistency proof", err)
	}
	return &archivev1.GetConsistencyProofResponse{FromSize: from, ToSize: to, Hashes: proof}, nil
}

var errNoLog = status.Error(codes.Unimplemented, "grpcserver: this server does not expose the transparency log")

// statusError is the one place where errors of the archive, its stores and the log become gRPC
// status codes. Unknown errors are Internal.
func statusError(op string, err error) error {
	code := codes.Internal
	switch {
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, ErrInvalid), errors.Is(err, merklelog.ErrInvalid):
		code = codes.InvalidArgument
	case errors.Is(err, ErrNotFound), errors.Is(err, blob.ErrNotFound), errors.Is(err, merklelog.ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, merklelog.ErrOutOfRange):
		code = codes.OutOfRange
	case errors.Is(err, ErrUnavailable), errors.Is(err, blob.ErrUnavailable), unreachable(err):
		code = codes.Unavailable
	case errors.Is(err, blob.ErrIntegrity), errors.Is(err, merklelog.ErrCorrupt):
		code = codes.DataLoss
	case errors.Is(err, merklelog.ErrSchema), errors.Is(err, merklelog.ErrNoSigner):
		code = codes.FailedPrecondition
	case errors.Is(err, auth.ErrUnauthenticated):
		code = codes.Unauthenticated
	case errors.Is(err, auth.ErrPermissionDenied):
		code = codes.PermissionDenied
	}
	return status.Error(code, fmt.Sprintf("grpcserver: %s: %v", op, err))
}

// unreachable reports whether err says PostgreSQL could not be reached (connection refused or
// lost before the statement was sent, or a network timeout), for errors passed on as they came
// from pgx (the log does so).
func unreachable(err error) bool {
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || pgconn.SafeToRetry(err) || (errors.As(err, &ne) && ne.Timeout())
}

func recordToProto(r Record) *archivev1.Record {
	return &archivev1.Record{
		Sha256:      r.SHA256[:],
		Size:        r.Size,
		Kind:        string(r.Kind),
		ReceiptType: string(r.ReceiptType),
		Verdict: &archivev1.Verdict{
			Present:     r.Verdict.Present,
			Valid:       r.Verdict.Valid,
			Trusted:     r.Verdict.Trusted,
			Digest:      r.Verdict.Digest,
			Signer:      r.Verdict.Signer,
			SignerEmail: r.Verdict.SignerEmail,
			SignedAt:    timestamp(r.Verdict.SignedAt),
			VerifiedAt:  timestamp(r.Verdict.VerifiedAt),
			Reasons:     r.Verdict.Reasons,
		},
		Problems:  r.Problems,
		LeafIndex: r.LeafIndex,
		New:       r.New,
	}
}

func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

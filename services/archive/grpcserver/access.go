package grpcserver

import (
	"context"
	"crypto/sha256"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	archivev1 "github.com/pecarchive/pecarchive/gen/pecarchive/archive/v1"
	"github.com/pecarchive/pecarchive/internal/auth"
	"github.com/pecarchive/pecarchive/services/archive/catalog"
)

// RecordAccess records one read of evidence made through the calling service, whose principal
// is recorded as the recorder.
func (s *Service) RecordAccess(ctx context.Context, req *archivev1.RecordAccessRequest) (*archivev1.RecordAccessResponse, error) {
	if len(req.GetReturned()) > catalog.MaxAccessReturned {
		return nil, status.Errorf(codes.InvalidArgument, "grpcserver: %d returned messages, at most %d", len(req.GetReturned()), catalog.MaxAccessReturned)
	}
	acc := catalog.Access{Principal: req.GetPrincipal(), Auth: req.GetAuth(), Method: req.GetMethod(), Selector: req.GetSelector(),
		Returned: make([][32]byte, len(req.GetReturned()))}
	for i, r := range req.GetReturned() {
		if len(r) != sha256.Size {
			return nil, status.Errorf(codes.InvalidArgument, "grpcserver: returned[%d] has %d bytes, want %d", i, len(r), sha256.Size)
		}
		acc.Returned[i] = [32]byte(r)
	}
	if p, ok := auth.PrincipalFromContext(ctx); ok {
		acc.Recorder = p.Name
	}
	rec, err := s.archive.RecordAccess(ctx, acc)
	if err != nil {
		return nil, statusError(ctx, "record access", err)
	}
	return &archivev1.RecordAccessResponse{LeafIndex: rec.LeafIndex, At: timestamppb.New(rec.At)}, nil
}

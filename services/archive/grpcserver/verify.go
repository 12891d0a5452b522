package grpcserver

import (
	"context"
	"errors"
	"io"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pecarchive/pecarchive/services/archive/catalog"
	"github.com/pecarchive/pecarchive/services/archive/reader"
)

// verifyBlob reads the exact bytes of the catalogued message m back through the reader, which
// re-hashes them (and re-extracts a message kept inside another), for GetRecord with
// verify_blob. A blob that is missing or altered is DataLoss: the catalog says the archive holds
// a message whose bytes it cannot give back.
func (s *Service) verifyBlob(ctx context.Context, m *catalog.Message) error {
	rc, err := s.reader.OpenMessage(ctx, m)
	if err == nil {
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, reader.ErrNotFound):
		return status.Errorf(codes.DataLoss, "grpcserver: verify blob: %x is catalogued but its bytes are missing: %v", m.SHA256, err)
	case errors.Is(err, reader.ErrIntegrity):
		return status.Errorf(codes.DataLoss, "grpcserver: verify blob: %x: the stored bytes fail their check: %v", m.SHA256, err)
	}
	return statusError(ctx, "verify blob", err)
}

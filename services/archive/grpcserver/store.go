package grpcserver

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	archivev1 "github.com/pecarchive/pecarchive/gen/pecarchive/archive/v1"
	"github.com/pecarchive/pecarchive/services/archive"
)

// Store receives one message: the header, then chunks. It never buffers more than the declared
// expected_size (or MaxMessageSize when none is declared), only within the server-wide buffer
// budget, and for at most MaxUploadTime.
func (s *Service) Store(stream archivev1.ArchiveService_StoreServer) error {
	ctx := stream.Context()
	first, err := stream.Recv()
	if err == io.EOF {
		return status.Error(codes.InvalidArgument, "grpcserver: empty Store stream (no header)")
	}
	if err != nil {
		return err // already a status (the client went away, deadline, ...)
	}
	h := first.GetHeader()
	if h == nil {
		return status.Error(codes.InvalidArgument, "grpcserver: the first Store request must carry the header")
	}
	src, err := sourceFromProto(h.GetSource())
	if err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	var wantSum []byte
	switch len(h.GetExpectedSha256()) {
	case 0:
	case sha256.Size:
		wantSum = h.GetExpectedSha256()
	default:
		return status.Errorf(codes.InvalidArgument, "grpcserver: expected_sha256 has %d bytes, want %d", len(h.GetExpectedSha256()), sha256.Size)
	}
	limit, declared := s.maxSize, h.ExpectedSize != nil
	if declared {
		n := h.GetExpectedSize()
		switch {
		case n <= 0:
			return status.Errorf(codes.InvalidArgument, "grpcserver: expected_size %d: a message has at least one byte", n)
		case n > s.maxSize:
			return status.Errorf(codes.ResourceExhausted, "grpcserver: expected_size %d is over the limit of %d bytes", n, s.maxSize)
		}
		limit = n
	}

	if err := s.budget.acquire(ctx, limit); err != nil {
		return status.FromContextError(err).Err()
	}
	release := true
	defer func() {
		if release {
			s.budget.release(limit)
		}
	}()

	// Receive in a goroutine so that a stalled upload cannot hold its buffer past
	// MaxUploadTime: when this handler returns, the stream ends and so does the receiver.
	type received struct {
		buf []byte
		err error
	}
	done := make(chan received, 1)
	go func() {
		buf, err := receive(stream, limit, declared, wantSum)
		done <- received{buf, err}
	}()
	timer := time.NewTimer(s.maxUploadTime)
	defer timer.Stop()
	var r received
	select {
	case r = <-done:
	case <-timer.C:
		release = false
		go func() {
			<-done
			s.budget.release(limit)
		}()
		return status.Errorf(codes.DeadlineExceeded, "grpcserver: upload took longer than %v", s.maxUploadTime)
	}
	if r.err != nil {
		return r.err
	}
	buf := r.buf
	rec, err := s.archive.Store(ctx, buf, src)
	if err != nil {
		return statusError(ctx, "store", err)
	}
	return stream.SendAndClose(&archivev1.StoreResponse{Record: recordToProto(rec)})
}

// receive reads the chunks of a Store stream after the header, within limit, and checks them
// against the declared size and SHA-256.
func receive(stream archivev1.ArchiveService_StoreServer, limit int64, declared bool, wantSum []byte) ([]byte, error) {
	var buf []byte
	if declared {
		buf = make([]byte, 0, limit)
	}
	hash := sha256.New()
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err // already a status (the client went away, deadline, ...)
		}
		part, ok := req.GetPart().(*archivev1.StoreRequest_Chunk)
		if !ok {
			return nil, status.Error(codes.InvalidArgument, "grpcserver: only the first Store request may carry the header; the others carry chunks")
		}
		chunk := part.Chunk
		switch {
		case len(chunk) == 0:
			return nil, status.Error(codes.InvalidArgument, "grpcserver: empty chunk")
		case len(chunk) > MaxChunkSize:
			return nil, status.Errorf(codes.InvalidArgument, "grpcserver: chunk of %d bytes is over %d", len(chunk), MaxChunkSize)
		case int64(len(buf))+int64(len(chunk)) > limit && declared:
			return nil, status.Errorf(codes.DataLoss, "grpcserver: received more than the declared expected_size %d", limit)
		case int64(len(buf))+int64(len(chunk)) > limit:
			return nil, status.Errorf(codes.ResourceExhausted, "grpcserver: message over the limit of %d bytes", limit)
		}
		buf = appendCapped(buf, chunk, limit)
		hash.Write(chunk)
	}
	if len(buf) == 0 {
		return nil, status.Error(codes.InvalidArgument, "grpcserver: empty message")
	}
	if declared && int64(len(buf)) != limit {
		return nil, status.Errorf(codes.DataLoss, "grpcserver: received %d bytes, declared expected_size %d", len(buf), limit)
	}
	if wantSum != nil {
		if sum := hash.Sum(nil); subtle.ConstantTimeCompare(sum, wantSum) != 1 {
			return nil, status.Errorf(codes.DataLoss, "grpcserver: received bytes have SHA-256 %x, declared expected_sha256 %x", sum, wantSum)
		}
	}
	return buf, nil
}

// appendCapped appends chunk to buf, growing the buffer geometrically but never beyond limit
// (len(buf)+len(chunk) <= limit is checked by the caller).
func appendCapped(buf, chunk []byte, limit int64) []byte {
	need := len(buf) + len(chunk)
	if need > cap(buf) {
		c := max(2*cap(buf), need, 64<<10)
		c = int(min(int64(c), limit))
		nb := make([]byte, len(buf), c)
		copy(nb, buf)
		buf = nb
	}
	return append(buf, chunk...)
}

// sourceFromProto validates and converts a Source. Limits keep catalog rows small.
func sourceFromProto(p *archivev1.Source) (archive.Source, error) {
	if p == nil {
		return archive.Source{}, errors.New("grpcserver: header.source is required")
	}
	for _, f := range []struct {
		name, v string
		max     int
	}{{"mailbox", p.GetMailbox(), 512}, {"folder", p.GetFolder(), 1024}, {"path", p.GetPath(), 4096}} {
		if len(f.v) > f.max {
			return archive.Source{}, fmt.Errorf("grpcserver: source.%s is over %d bytes", f.name, f.max)
		}
	}
	if p.GetMailbox() == "" && p.GetPath() == "" {
		return archive.Source{}, errors.New("grpcserver: source needs a mailbox (IMAP) or a path (file)")
	}
	src := archive.Source{
		Mailbox:     p.GetMailbox(),
		Folder:      p.GetFolder(),
		UIDValidity: p.GetUidValidity(),
		UID:         p.GetUid(),
		Path:        p.GetPath(),
	}
	if p.InternalDate != nil {
		if err := p.GetInternalDate().CheckValid(); err != nil {
			return archive.Source{}, fmt.Errorf("grpcserver: source.internal_date: %v", err)
		}
		src.InternalDate = p.GetInternalDate().AsTime()
	}
	return src, nil
}

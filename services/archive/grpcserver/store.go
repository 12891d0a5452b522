package grpcserver

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	archivev1 "github.com/pecarchive/pecarchive/gen/pecarchive/archive/v1"
	"github.com/pecarchive/pecarchive/services/archive"
)

// Store receives one message: the header, then chunks. It never buffers more than the declared
// expected_size (or MaxMessageSize when none is declared), and reserves that buffer from the
// server-wide budget as the bytes arrive, so a stream that sends little holds little. A stream
// that sends nothing for MaxIdleTime is cut, and the whole reception is bounded by
// MaxUploadTime, so stalled clients cannot starve the others.
func (s *Service) Store(stream archivev1.ArchiveService_StoreServer) error {
	ctx := stream.Context()
	// Receive in a goroutine so that a stalled upload is cut when its time is up: when this
	// handler returns, the stream ends and so does the receiver, which then gives its
	// reservation back.
	u := &upload{s: s, stream: stream}
	done := make(chan received, 1)
	go func() { done <- u.receive() }()
	total := time.NewTimer(s.maxUploadTime)
	defer total.Stop()
	idle := time.NewTimer(s.maxIdleTime)
	defer idle.Stop()
	var r received
wait:
	for {
		select {
		case r = <-done:
			break wait
		case <-total.C:
			s.abandon(done)
			return status.Errorf(codes.DeadlineExceeded, "grpcserver: upload took longer than %v", s.maxUploadTime)
		case <-idle.C:
			var silent time.Duration
			if since, ok := u.waitingSince(); ok {
				silent = time.Since(since)
			}
			if silent >= s.maxIdleTime {
				s.abandon(done)
				return status.Errorf(codes.DeadlineExceeded, "grpcserver: upload cut: nothing received for %v", s.maxIdleTime)
			}
			idle.Reset(s.maxIdleTime - silent)
		}
	}
	defer s.budget.release(r.reserved)
	if r.err != nil {
		return r.err
	}
	rec, err := s.archive.Store(ctx, r.buf, r.src)
	if err != nil {
		return statusError(ctx, "store", err)
	}
	return stream.SendAndClose(&archivev1.StoreResponse{Record: recordToProto(rec)})
}

// abandon gives back, once the receiver of a cut upload has stopped, what it reserved.
func (s *Service) abandon(done <-chan received) {
	go func() {
		r := <-done
		s.budget.release(r.reserved)
	}()
}

// received is the outcome of upload.receive: the message and the budget it holds, or an error
// (having given back everything).
type received struct {
	buf      []byte
	src      archive.Source
	reserved int64
	err      error
}

// upload is one Store stream being received.
type upload struct {
	s        *Service
	stream   archivev1.ArchiveService_StoreServer
	since    atomic.Int64 // when the pending Recv began (Unix nanoseconds), 0 when none is
	reserved int64        // budget held for buf (receiver goroutine only)
}

// waitingSince reports since when the receiver has been waiting for the client, if it is.
func (u *upload) waitingSince() (time.Time, bool) {
	n := u.since.Load()
	return time.Unix(0, n), n != 0
}

// recv receives the next request, marking the time spent waiting for the client (time spent
// waiting for budget or for the archive is not idleness of the client's).
func (u *upload) recv() (*archivev1.StoreRequest, error) {
	u.since.Store(time.Now().UnixNano())
	defer u.since.Store(0)
	return u.stream.Recv()
}

// reserve adds n bytes to the upload's reservation, waiting (within the RPC's deadline and
// MaxUploadTime) while the budget is spent. When the uploads holding the whole budget all wait
// for more, the newest is refused with Unavailable and gives its share back (budget.unjam):
// clients retry.
func (u *upload) reserve(n int64) error {
	if err := u.s.budget.acquire(u.stream.Context(), n, u.reserved); err != nil {
		if errors.Is(err, errJammed) {
			return status.Errorf(codes.Unavailable, "%v; this one gives its share back: retry", err)
		}
		return status.FromContextError(err).Err()
	}
	u.reserved += n
	return nil
}

// receive reads the header and the chunks of the stream, within the limits, and checks them
// against the declared size and SHA-256.
func (u *upload) receive() received {
	r := u.read()
	if r.err != nil {
		u.s.budget.release(u.reserved)
		return received{err: r.err}
	}
	r.reserved = u.reserved
	return r
}

func (u *upload) read() received {
	fail := func(err error) received { return received{err: err} }
	first, err := u.recv()
	if err == io.EOF {
		return fail(status.Error(codes.InvalidArgument, "grpcserver: empty Store stream (no header)"))
	}
	if err != nil {
		return fail(err) // already a status (the client went away, deadline, ...)
	}
	h := first.GetHeader()
	if h == nil {
		return fail(status.Error(codes.InvalidArgument, "grpcserver: the first Store request must carry the header"))
	}
	src, err := sourceFromProto(h.GetSource())
	if err != nil {
		return fail(status.Error(codes.InvalidArgument, err.Error()))
	}
	var wantSum []byte
	switch len(h.GetExpectedSha256()) {
	case 0:
	case sha256.Size:
		wantSum = h.GetExpectedSha256()
	default:
		return fail(status.Errorf(codes.InvalidArgument, "grpcserver: expected_sha256 has %d bytes, want %d", len(h.GetExpectedSha256()), sha256.Size))
	}
	limit, declared := u.s.maxSize, h.ExpectedSize != nil
	if declared {
		n := h.GetExpectedSize()
		switch {
		case n <= 0:
			return fail(status.Errorf(codes.InvalidArgument, "grpcserver: expected_size %d: a message has at least one byte", n))
		case n > u.s.maxSize:
			return fail(status.Errorf(codes.ResourceExhausted, "grpcserver: expected_size %d is over the limit of %d bytes", n, u.s.maxSize))
		}
		limit = n
	}

	var buf []byte
	hash := sha256.New()
	for {
		req, err := u.recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fail(err) // already a status (the client went away, deadline, ...)
		}
		part, ok := req.GetPart().(*archivev1.StoreRequest_Chunk)
		if !ok {
			return fail(status.Error(codes.InvalidArgument, "grpcserver: only the first Store request may carry the header; the others carry chunks"))
		}
		chunk := part.Chunk
		switch {
		case len(chunk) == 0:
			return fail(status.Error(codes.InvalidArgument, "grpcserver: empty chunk"))
		case len(chunk) > MaxChunkSize:
			return fail(status.Errorf(codes.InvalidArgument, "grpcserver: chunk of %d bytes is over %d", len(chunk), MaxChunkSize))
		case int64(len(buf))+int64(len(chunk)) > limit && declared:
			return fail(status.Errorf(codes.DataLoss, "grpcserver: received more than the declared expected_size %d", limit))
		case int64(len(buf))+int64(len(chunk)) > limit:
			return fail(status.Errorf(codes.ResourceExhausted, "grpcserver: message over the limit of %d bytes", limit))
		}
		if need := len(buf) + len(chunk); need > cap(buf) {
			c := growCap(cap(buf), need, limit)
			if err := u.reserve(int64(c - cap(buf))); err != nil {
				return fail(err)
			}
			nb := make([]byte, len(buf), c)
			copy(nb, buf)
			buf = nb
		}
		buf = append(buf, chunk...)
		hash.Write(chunk)
	}
	if len(buf) == 0 {
		return fail(status.Error(codes.InvalidArgument, "grpcserver: empty message"))
	}
	if declared && int64(len(buf)) != limit {
		return fail(status.Errorf(codes.DataLoss, "grpcserver: received %d bytes, declared expected_size %d", len(buf), limit))
	}
	if wantSum != nil {
		if sum := hash.Sum(nil); subtle.ConstantTimeCompare(sum, wantSum) != 1 {
			return fail(status.Errorf(codes.DataLoss, "grpcserver: received bytes have SHA-256 %x, declared expected_sha256 %x", sum, wantSum))
		}
	}
	return received{buf: buf, src: src}
}

// growCap returns the capacity of a buffer of capacity cur that must hold need bytes: it grows
// geometrically (at least 64 KiB) but never beyond limit (need <= limit is checked by the
// caller), so the reservation follows what arrived within a factor of two.
func growCap(cur, need int, limit int64) int {
	c := max(2*cur, need, 64<<10)
	return int(min(int64(c), limit))
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

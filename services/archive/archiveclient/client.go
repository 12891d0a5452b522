// Package archiveclient owns the client side of the archive's internal gRPC API
// (pecarchive.archive.v1): dialling the archive with TLS and credentials, and storing a raw
// message in chunks with bounded, idempotent retries. Ingest and `pecarchive bench archive` use
// it.
package archiveclient

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	archivev1 "github.com/pecarchive/pecarchive/gen/pecarchive/archive/v1"
	"github.com/pecarchive/pecarchive/internal/auth"
)

// MaxChunkSize is the largest chunk the archive accepts in one Store request.
const MaxChunkSize = 1 << 20

// ErrMismatch: the archive acknowledged a record whose SHA-256 or size is not the one of the
// bytes sent (never expected; the message must not be considered archived).
var ErrMismatch = errors.New("archiveclient: archive acknowledged different bytes")

// Options tune [StoreBytes]. Nil or zero fields mean the defaults.
type Options struct {
	// ChunkSize is the size of the chunks sent (default and maximum [MaxChunkSize]).
	ChunkSize int
	// MaxAttempts bounds the attempts, the first included (default 5). Only Unavailable answers
	// (the archive or one of its stores is down, the connection broke) are retried.
	MaxAttempts int
	// InitialBackoff is the pause before the first retry (default 200ms); it doubles after each
	// retry, up to MaxBackoff (default 5s), with random jitter.
	InitialBackoff, MaxBackoff time.Duration
	// AttemptTimeout, when positive, bounds each attempt (the whole call is bounded by ctx).
	AttemptTimeout time.Duration
}

func (o *Options) withDefaults() Options {
	var r Options
	if o != nil {
		r = *o
	}
	if r.ChunkSize <= 0 || r.ChunkSize > MaxChunkSize {
		r.ChunkSize = MaxChunkSize
	}
	if r.MaxAttempts <= 0 {
		r.MaxAttempts = 5
	}
	if r.InitialBackoff <= 0 {
		r.InitialBackoff = 200 * time.Millisecond
	}
	if r.MaxBackoff <= 0 {
		r.MaxBackoff = 5 * time.Second
	}
	r.MaxBackoff = max(r.MaxBackoff, r.InitialBackoff)
	return r
}

// StoreBytes stores raw in the archive with the Store RPC: a header with src, the SHA-256 and the
// size of raw (which the archive checks), then raw in chunks. Storing is idempotent by SHA-256,
// so an attempt that fails with Unavailable is retried with backoff (bounded by
// opts.MaxAttempts and ctx); a retry of an attempt that did commit answers New = false. On
// success the record's SHA-256 and size are checked against raw (else [ErrMismatch]). Errors
// from the archive wrap its gRPC status (use status.Code).
func StoreBytes(ctx context.Context, client archivev1.ArchiveServiceClient, raw []byte, src *archivev1.Source, opts *Options) (*archivev1.Record, error) {
	o := opts.withDefaults()
	sum := sha256.Sum256(raw)
	size := int64(len(raw))
	header := &archivev1.StoreRequest{Part: &archivev1.StoreRequest_Header{Header: &archivev1.StoreHeader{
		Source:         src,
		ExpectedSha256: sum[:],
		ExpectedSize:   &size,
	}}}
	backoff := o.InitialBackoff
	for attempt := 1; ; attempt++ {
		rec, err := storeOnce(ctx, client, header, raw, o)
		if err == nil {
			if !bytes.Equal(rec.GetSha256(), sum[:]) || rec.GetSize() != size {
				return nil, fmt.Errorf("%w: sent %x (%d bytes), record %x (%d bytes)", ErrMismatch, sum, size, rec.GetSha256(), rec.GetSize())
			}
			return rec, nil
		}
		if status.Code(err) != codes.Unavailable || attempt >= o.MaxAttempts || ctx.Err() != nil {
			return nil, fmt.Errorf("archiveclient: store %x (attempt %d of %d): %w", sum[:8], attempt, o.MaxAttempts, err)
		}
		// Sleep between backoff/2 and backoff.
		pause := backoff/2 + rand.N(backoff/2+1)
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("archiveclient: store %x (attempt %d of %d): %w (then %w)", sum[:8], attempt, o.MaxAttempts, ctx.Err(), err)
		case <-t.C:
		}
		backoff = min(2*backoff, o.MaxBackoff)
	}
}

func storeOnce(ctx context.Context, client archivev1.ArchiveServiceClient, header *archivev1.StoreRequest, raw []byte, o Options) (*archivev1.Record, error) {
	var cancel context.CancelFunc
	if o.AttemptTimeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, o.AttemptTimeout)
	} else {
		ctx, cancel = context.WithCancel(ctx)
	}
	defer cancel()
	stream, err := client.Store(ctx)
	if err != nil {
		return nil, err
	}
	send := func(req *archivev1.StoreRequest) error {
		err := stream.Send(req)
		if err == io.EOF {
			// The server ended the stream; its status comes with CloseAndRecv.
			_, err = stream.CloseAndRecv()
			if err == nil {
				err = status.Error(codes.Internal, "archiveclient: server answered before the message was sent")
			}
		}
		return err
	}
	if err := send(header); err != nil {
		return nil, err
	}
	for off := 0; off < len(raw); off += o.ChunkSize {
		end := min(off+o.ChunkSize, len(raw))
		if err := send(&archivev1.StoreRequest{Part: &archivev1.StoreRequest_Chunk{Chunk: raw[off:end]}}); err != nil {
			return nil, err
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return nil, err
	}
	return resp.GetRecord(), nil
}

// DialOptions say how to reach the archive.
type DialOptions struct {
	// TLS is the client TLS configuration (see auth.ClientTLS, which also carries the client
	// certificate for mTLS); nil dials without TLS, which only suits loopback.
	TLS *tls.Config
	// Token, when set, is sent as a bearer token on every RPC (only over TLS, unless TLS is nil).
	Token string
}

// Dial returns a connection to the archive at target (host:port) and its client. The connection
// is made lazily; close it when done.
func Dial(target string, opts DialOptions) (*grpc.ClientConn, archivev1.ArchiveServiceClient, error) {
	dopts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials()),
		// Fixed flow-control windows: with the default dynamic ones every call also costs a
		// bandwidth-estimation ping and its ack.
		grpc.WithInitialWindowSize(1 << 20), grpc.WithInitialConnWindowSize(4 << 20)}
	if opts.TLS != nil {
		dopts[0] = grpc.WithTransportCredentials(credentials.NewTLS(opts.TLS))
	}
	if opts.Token != "" {
		dopts = append(dopts, grpc.WithPerRPCCredentials(auth.TokenCredentials(opts.Token, opts.TLS != nil)))
	}
	cc, err := grpc.NewClient(target, dopts...)
	if err != nil {
		return nil, nil, fmt.Errorf("archiveclient: dial %s: %w", target, err)
	}
	return cc, archivev1.NewArchiveServiceClient(cc), nil
}

package query

import (
	"context"
	"crypto/tls"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	archivev1 "github.com/pecarchive/pecarchive/gen/pecarchive/archive/v1"
	querypb "github.com/pecarchive/pecarchive/gen/pecarchive/query/v1"
	"github.com/pecarchive/pecarchive/internal/auth"
	"github.com/pecarchive/pecarchive/services/archive/catalog"
)

// RemoteRecorder records reads with the archive's RecordAccess RPC (the query service's
// credentials there need the "recorder" role).
type RemoteRecorder struct {
	Client archivev1.ArchiveServiceClient
}

// RecordAccess implements [Recorder].
func (r RemoteRecorder) RecordAccess(ctx context.Context, acc catalog.Access) (catalog.Access, error) {
	req := &archivev1.RecordAccessRequest{Principal: acc.Principal, Auth: acc.Auth, Method: acc.Method, Selector: acc.Selector,
		Returned: make([][]byte, len(acc.Returned))}
	for i := range acc.Returned {
		req.Returned[i] = acc.Returned[i][:]
	}
	resp, err := r.Client.RecordAccess(ctx, req)
	if err != nil {
		return catalog.Access{}, fmt.Errorf("query: record access with the archive: %w", err)
	}
	acc.LeafIndex, acc.At = resp.GetLeafIndex(), resp.GetAt().AsTime()
	return acc, nil
}

// DialOptions configure [Dial].
type DialOptions struct {
	// TLS is the client TLS configuration (see auth.ClientTLS, which also carries the client
	// certificate for mTLS); nil dials without TLS, which only suits loopback.
	TLS *tls.Config
	// Token, when set, is sent as a bearer token on every RPC (only over TLS, unless TLS is nil).
	Token string
}

// Dial returns a connection to the query service at target (host:port) and its client. The
// connection is made lazily; close it when done.
func Dial(target string, opts DialOptions) (*grpc.ClientConn, querypb.EvidenceServiceClient, error) {
	creds := insecure.NewCredentials()
	if opts.TLS != nil {
		creds = credentials.NewTLS(opts.TLS)
	}
	dopts := []grpc.DialOption{grpc.WithTransportCredentials(creds),
		grpc.WithInitialWindowSize(streamWindow), grpc.WithInitialConnWindowSize(connWindow)}
	if opts.Token != "" {
		dopts = append(dopts, grpc.WithPerRPCCredentials(auth.TokenCredentials(opts.Token, opts.TLS != nil)))
	}
	cc, err := grpc.NewClient(target, dopts...)
	if err != nil {
		return nil, nil, fmt.Errorf("query: dial %s: %w", target, err)
	}
	return cc, querypb.NewEvidenceServiceClient(cc), nil
}

package grpcserver_test

import (
	"context"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	archivev1 "github.com/pecarchive/pecarchive/gen/pecarchive/archive/v1"
	"github.com/pecarchive/pecarchive/services/archive/reader"
)

// fakeLog is a log of a fixed size whose proofs are recognisable strings.
type fakeLog struct {
	size uint64
	err  error // when set, every call fails with it
}

func (l *fakeLog) Checkpoint(context.Context) ([]byte, error) {
	if l.err != nil {
		return nil, l.err
	}
	return fmt.Appendf(nil, "example.org/log\n%d\nROOT\n", l.size), nil
}

func (l *fakeLog) InclusionProof(_ context.Context, index, size uint64) ([][]byte, error) {
	if l.err != nil {
		return nil, l.err
	}
	if size > l.size {
		return nil, fmt.Errorf("%w: size %d", reader.ErrOutOfRange, size)
	}
	return [][]byte{fmt.Appendf(nil, "incl %d %d", index, size)}, nil
}

func (l *fakeLog) ConsistencyProof(_ context.Context, from, to uint64) ([][]byte, error) {
	if l.err != nil {
		return nil, l.err
	}
	if to > l.size {
		return nil, fmt.Errorf("%w: size %d", reader.ErrOutOfRange, to)
	}
	return [][]byte{fmt.Appendf(nil, "cons %d %d", from, to)}, nil
}

func (l *fakeLog) LeafData(_ context.Context, index uint64) ([]byte, error) {
	return fmt.Appendf(nil, "leaf %d", index), nil
}

func TestLogRPCs(t *testing.T) {
	log := &fakeLog{size: 10}
	e := newEnv(t, envOptions{log: log})
	c := e.client(t, readerToken)
	ctx := ctxT(t)

	cp, err := c.GetCheckpoint(ctx, &archivev1.GetCheckpointRequest{})
	if err != nil || string(cp.GetCheckpoint()) != "example.org/log\n10\nROOT\n" {
		t.Errorf("GetCheckpoint: %q, %v", cp.GetCheckpoint(), err)
	}
	ip, err := c.GetInclusionProof(ctx, &archivev1.GetInclusionProofRequest{LeafIndex: 3, TreeSize: 10})
	if err != nil || ip.GetLeafIndex() != 3 || ip.GetTreeSize() != 10 || string(ip.GetHashes()[0]) != "incl 3 10" || string(ip.GetLeafData()) != "leaf 3" {
		t.Errorf("GetInclusionProof: %v, %v", ip, err)
	}
	cons, err := c.GetConsistencyProof(ctx, &archivev1.GetConsistencyProofRequest{FromSize: 4, ToSize: 10})
	if err != nil || cons.GetFromSize() != 4 || cons.GetToSize() != 10 || string(cons.GetHashes()[0]) != "cons 4 10" {
		t.Errorf("GetConsistencyProof: %v, %v", cons, err)
	}

	for name, tc := range map[string]struct {
		call func() error
		want codes.Code
	}{
		"index at size": {func() error {
			_, err := c.GetInclusionProof(ctx, &archivev1.GetInclusionProofRequest{LeafIndex: 10, TreeSize: 10})
			return err
		}, codes.InvalidArgument},
		"inclusion beyond log": {func() error {
			_, err := c.GetInclusionProof(ctx, &archivev1.GetInclusionProofRequest{LeafIndex: 1, TreeSize: 11})
			return err
		}, codes.OutOfRange},
		"from over to": {func() error {
			_, err := c.GetConsistencyProof(ctx, &archivev1.GetConsistencyProofRequest{FromSize: 5, ToSize: 4})
			return err
		}, codes.InvalidArgument},
		"consistency beyond log": {func() error {
			_, err := c.GetConsistencyProof(ctx, &archivev1.GetConsistencyProofRequest{FromSize: 5, ToSize: 11})
			return err
		}, codes.OutOfRange},
		"ingest may not read": {func() error {
			_, err := e.client(t, ingestToken).GetCheckpoint(ctx, &archivev1.GetCheckpointRequest{})
			return err
		}, codes.PermissionDenied},
	} {
		if err := tc.call(); status.Code(err) != tc.want {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}

	for _, tc := range []struct {
		err  error
		want codes.Code
	}{
		{fmt.Errorf("%w: no checkpoint published", reader.ErrNotFound), codes.NotFound},
		{fmt.Errorf("%w: node missing", reader.ErrIntegrity), codes.DataLoss},
		{fmt.Errorf("%w: run migrations", reader.ErrSchema), codes.FailedPrecondition},
		{fmt.Errorf("%w: bad", reader.ErrInvalid), codes.InvalidArgument},
		{fmt.Errorf("%w: down", reader.ErrUnavailable), codes.Unavailable},
	} {
		log.err = tc.err
		if _, err := c.GetCheckpoint(ctx, &archivev1.GetCheckpointRequest{}); status.Code(err) != tc.want {
			t.Errorf("log failing with %v: %v, want %v", tc.err, err, tc.want)
		}
	}
}

func TestNoReader(t *testing.T) {
	e := newEnv(t, envOptions{noReader: true})
	c := e.client(t, readerToken)
	ctx := ctxT(t)
	sum := make([]byte, 32)
	_, err0 := c.GetRecord(ctx, &archivev1.GetRecordRequest{Sha256: sum})
	_, err1 := c.GetCheckpoint(ctx, &archivev1.GetCheckpointRequest{})
	_, err2 := c.GetInclusionProof(ctx, &archivev1.GetInclusionProofRequest{LeafIndex: 0, TreeSize: 1})
	_, err3 := c.GetConsistencyProof(ctx, &archivev1.GetConsistencyProofRequest{FromSize: 0, ToSize: 1})
	for _, err := range []error{err0, err1, err2, err3} {
		if status.Code(err) != codes.Unimplemented {
			t.Errorf("without a reader: %v, want Unimplemented", err)
		}
	}
}

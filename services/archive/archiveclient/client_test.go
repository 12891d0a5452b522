package archiveclient_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"

	archivev1 "github.com/pecarchive/pecarchive/gen/pecarchive/archive/v1"
	"github.com/pecarchive/pecarchive/services/archive/archiveclient"
)

// echoServer answers Store with a record of what it received, optionally lying about the hash.
type echoServer struct {
	archivev1.UnimplementedArchiveServiceServer
	lie    bool
	chunks []int
	header *archivev1.StoreHeader
}

func (s *echoServer) Store(stream archivev1.ArchiveService_StoreServer) error {
	h := sha256.New()
	var n int64
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if hd := req.GetHeader(); hd != nil {
			s.header = hd
			continue
		}
		s.chunks = append(s.chunks, len(req.GetChunk()))
		h.Write(req.GetChunk())
		n += int64(len(req.GetChunk()))
	}
	sum := h.Sum(nil)
	if s.lie {
		sum[0] ^= 1
	}
	return stream.SendAndClose(&archivev1.StoreResponse{Record: &archivev1.Record{Sha256: sum, Size: n, New: true}})
}

func start(t *testing.T, s *echoServer) archivev1.ArchiveServiceClient {
	t.Helper()
	g := grpc.NewServer()
	archivev1.RegisterArchiveServiceServer(g, s)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(lis)
	t.Cleanup(g.Stop)
	cc, c, err := archiveclient.Dial(lis.Addr().String(), archiveclient.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return c
}

func TestStoreBytesChunksAndDeclares(t *testing.T) {
	s := &echoServer{}
	c := start(t, s)
	raw := make([]byte, 2500)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rec, err := archiveclient.StoreBytes(ctx, c, raw, &archivev1.Source{Path: "x"}, &archiveclient.Options{ChunkSize: 1000})
	if err != nil || rec.GetSize() != 2500 {
		t.Fatalf("%v, %v", rec, err)
	}
	sum := sha256.Sum256(raw)
	if string(s.header.GetExpectedSha256()) != string(sum[:]) || s.header.GetExpectedSize() != 2500 || s.header.GetSource().GetPath() != "x" {
		t.Errorf("header %v", s.header)
	}
	if len(s.chunks) != 3 || s.chunks[0] != 1000 || s.chunks[2] != 500 {
		t.Errorf("chunks %v", s.chunks)
	}
}

func TestStoreBytesMismatch(t *testing.T) {
	c := start(t, &echoServer{lie: true})
	_, err := archiveclient.StoreBytes(context.Background(), c, []byte("x"), &archivev1.Source{Path: "x"}, nil)
	if !errors.Is(err, archiveclient.ErrMismatch) {
		t.Errorf("%v, want ErrMismatch", err)
	}
}

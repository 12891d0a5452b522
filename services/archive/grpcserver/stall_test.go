package grpcserver_test

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	archivev1 "github.com/pecarchive/pecarchive/gen/pecarchive/archive/v1"
	"github.com/pecarchive/pecarchive/services/archive/archiveclient"
	"github.com/pecarchive/pecarchive/services/archive/grpcserver"
)

// stall opens a Store stream, sends reqs and then nothing (no half-close, no deadline): a client
// that went silent. The stream is cancelled on cleanup.
func stall(t *testing.T, c archivev1.ArchiveServiceClient, reqs ...*archivev1.StoreRequest) archivev1.ArchiveService_StoreClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s, err := c.Store(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reqs {
		if err := s.Send(r); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// waitBuffered waits until the server's Store calls hold at least n bytes of its budget.
func waitBuffered(t *testing.T, srv *grpcserver.Server, n int64) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		if srv.Buffered() >= n {
			return
		}
	}
	t.Fatalf("the server's Store calls never held %d bytes (they hold %d)", n, srv.Buffered())
}

// Four stalled Store streams (two declaring no size, two declaring the largest size) on the
// default limits: they hold only the buffer for what they sent, so a normal Store completes at
// once. Before, each reserved a whole maximum-size message up front and held it until the upload
// limit, and the four took the whole budget: a normal Store waited for minutes.
func TestStalledStreamsDoNotStarveOthers(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.client(t, ingestToken)
	part := []byte("From: a@pec.example.it\r\nSubject: stalled\r\n\r\npart of a body")
	for i := range 4 {
		var size *int64
		if i%2 == 1 {
			size = i64(grpcserver.DefaultMaxMessageSize)
		}
		stall(t, c, header(src, nil, size), chunk(part))
	}
	waitBuffered(t, e.srv, 4*int64(len(part)))
	if held := e.srv.Buffered(); held > 4*128<<10 {
		t.Fatalf("four stalled streams hold %d bytes of the budget, want at most a small buffer each", held)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	rec, err := archiveclient.StoreBytes(ctx, c, bytes.Repeat([]byte("normal "), 10_000), src, once)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("a normal Store next to four stalled ones: %v after %v", err, took)
	}
	t.Logf("a normal Store next to four stalled ones took %v", took)
	// Under a second on an idle machine; the bound is generous for a loaded one.
	if took > 5*time.Second || !rec.GetNew() {
		t.Fatalf("a normal Store next to four stalled ones took %v (record %v)", took, rec)
	}
}

// A stream that sends nothing for MaxIdleTime is cut and gives its buffer back, whether it
// stalled before its header or after a chunk; a slow stream that keeps sending is not.
func TestIdleStreamCut(t *testing.T) {
	const idle = 300 * time.Millisecond
	e := newEnv(t, envOptions{cfg: grpcserver.Config{MaxIdleTime: idle}})
	c := e.client(t, ingestToken)
	for name, reqs := range map[string][]*archivev1.StoreRequest{
		"no header":   nil,
		"after chunk": {header(src, nil, nil), chunk([]byte("partial"))},
	} {
		start := time.Now()
		s := stall(t, c, reqs...)
		var resp archivev1.StoreResponse
		err := s.RecvMsg(&resp)
		if status.Code(err) != codes.DeadlineExceeded {
			t.Errorf("%s: stalled stream: %v, want DeadlineExceeded", name, err)
		}
		if d := time.Since(start); d < idle {
			t.Errorf("%s: cut after %v, before the idle time %v", name, d, idle)
		}
	}
	for deadline := time.Now().Add(20 * time.Second); e.srv.Buffered() != 0; time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("cut streams still hold %d bytes", e.srv.Buffered())
		}
	}
	// A slow client: one chunk every idle/3, four times the idle time in all.
	s := stall(t, c, header(src, nil, nil))
	body := bytes.Repeat([]byte("slow"), 100)
	for i := 0; i < 12; i++ {
		time.Sleep(idle / 3)
		if err := s.Send(chunk(body)); err != nil {
			t.Fatalf("slow stream cut after %d chunks: %v", i, err)
		}
	}
	if _, err := s.CloseAndRecv(); err != nil {
		t.Fatalf("slow stream: %v", err)
	}
}

// Streams that hold the whole budget between them and all wait for more do not wait for each
// other: the newest is refused with Unavailable (clients retry) and gives its share back, and the
// other completes.
func TestBudgetJam(t *testing.T) {
	const msg = 1 << 20
	e := newEnv(t, envOptions{cfg: grpcserver.Config{MaxMessageSize: msg, MaxBufferedBytes: msg}})
	c := e.client(t, ingestToken)
	first := bytes.Repeat([]byte{'a'}, 400<<10)
	more := bytes.Repeat([]byte{'b'}, 300<<10)
	// Both hold 400 KiB; each needs 400 KiB more, which does not fit next to the other's.
	a := stall(t, c, header(src, nil, nil), chunk(first))
	waitBuffered(t, e.srv, 400<<10)
	b := stall(t, c, header(src, nil, nil), chunk(first))
	waitBuffered(t, e.srv, 800<<10)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, s := range []archivev1.ArchiveService_StoreClient{a, b} {
		wg.Go(func() {
			s.Send(chunk(more)) // on an error the server ended the stream: CloseAndRecv has its status
			_, errs[i] = s.CloseAndRecv()
		})
	}
	wg.Wait()
	codesSeen := map[codes.Code]int{}
	for _, err := range errs {
		codesSeen[status.Code(err)]++
	}
	if codesSeen[codes.OK] != 1 || codesSeen[codes.Unavailable] != 1 {
		t.Fatalf("results %v, want one completed and one refused with Unavailable", errs)
	}
	for deadline := time.Now().Add(20 * time.Second); e.srv.Buffered() != 0; time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes still reserved", e.srv.Buffered())
		}
	}
}

package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pecarchive/pecarchive/services/ingest"
)

// fakeArchiver is an in-process ingest.Archiver for the importer's unit tests: it records how
// many Store calls and bytes were in flight at once, and fails as told.
type fakeArchiver struct {
	mu              sync.Mutex
	calls, inflight int
	bytes, maxBytes int
	maxInflight     int
	stored          map[[32]byte]bool
	fail            func(call int, raw []byte) error
	delay           time.Duration
}

func (f *fakeArchiver) Store(ctx context.Context, raw []byte, src ingest.Source) (ingest.Stored, error) {
	f.mu.Lock()
	f.calls++
	call := f.calls
	f.inflight++
	f.bytes += len(raw)
	f.maxInflight = max(f.maxInflight, f.inflight)
	f.maxBytes = max(f.maxBytes, f.bytes)
	f.mu.Unlock()
	time.Sleep(f.delay)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inflight--
	f.bytes -= len(raw)
	if f.fail != nil {
		if err := f.fail(call, raw); err != nil {
			return ingest.Stored{}, err
		}
	}
	sum := sha256.Sum256(raw)
	if f.stored == nil {
		f.stored = map[[32]byte]bool{}
	}
	isNew := !f.stored[sum]
	f.stored[sum] = true
	return ingest.Stored{SHA256: sum, Size: int64(len(raw)), New: isNew, Kind: "not-pec"}, nil
}

func (f *fakeArchiver) Lookup(ctx context.Context, sum [32]byte) (ingest.Stored, error) {
	return ingest.Stored{}, ingest.ErrNotArchived
}

func messageFiles(t *testing.T, n, size int) string {
	t.Helper()
	dir := t.TempDir()
	for i := range n {
		write(t, filepath.Join(dir, fmt.Sprintf("%03d.eml", i)), []byte(fmt.Sprintf("Subject: %d\r\n\r\n%s\r\n", i, strings.Repeat("x", size))))
	}
	return dir
}

// Several Store calls are in flight at once, and the bytes they hold stay within the budget.
func TestImporterBoundsInFlight(t *testing.T) {
	dir := messageFiles(t, 40, 30_000)
	f := &fakeArchiver{delay: 20 * time.Millisecond}
	im := &importer{arc: f, concurrency: 8, budget: 100_000, stdout: io.Discard, stderr: io.Discard}
	sum, err := im.run(context.Background(), []string{dir})
	if err != nil || sum.Files != 40 || sum.Messages != 40 || sum.New != 40 {
		t.Fatalf("summary %+v, %v", sum, err)
	}
	if f.maxInflight < 2 || f.maxInflight > 3 || f.maxBytes > 100_000 {
		t.Errorf("%d calls and %d bytes in flight at most; want 2-3 calls (3 messages fit the budget), at most 100000 bytes", f.maxInflight, f.maxBytes)
	}
	im.budget = 10_000_000
	f.maxInflight = 0
	if sum, err = im.run(context.Background(), []string{dir}); err != nil || sum.Already != 40 {
		t.Fatalf("again: %+v, %v", sum, err)
	}
	if f.maxInflight < 2 || f.maxInflight > 8 {
		t.Errorf("%d calls in flight at most, want 2 to 8", f.maxInflight)
	}
}

// A Store that fails with ErrUnavailable is retried; one refused is counted and the import goes
// on; any other failure stops the import with an error.
func TestImporterFailures(t *testing.T) {
	dir := messageFiles(t, 10, 100)
	f := &fakeArchiver{fail: func(call int, raw []byte) error {
		switch {
		case call <= 2:
			return fmt.Errorf("%w: down", ingest.ErrUnavailable)
		case strings.HasPrefix(string(raw), "Subject: 7\r\n"):
			return fmt.Errorf("%w: too large for this archive", ingest.ErrRefused)
		}
		return nil
	}}
	im := &importer{arc: f, concurrency: 1, budget: 1 << 20, backoff: time.Millisecond, stdout: io.Discard, stderr: io.Discard}
	sum, err := im.run(context.Background(), []string{dir})
	if err != nil || sum.New != 9 || sum.Refused != 1 || sum.Messages != 10 || sum.Errors != 0 {
		t.Fatalf("summary %+v, %v", sum, err)
	}

	f = &fakeArchiver{fail: func(call int, raw []byte) error {
		if call == 3 {
			return errors.New("ingest: store: permission denied")
		}
		return nil
	}}
	im = &importer{arc: f, concurrency: 1, budget: 1 << 20, stdout: io.Discard, stderr: io.Discard}
	sum, err = im.run(context.Background(), []string{dir})
	if err == nil || !strings.Contains(err.Error(), "permission denied") || sum.New != 2 || sum.Errors < 1 || f.calls != 3 {
		t.Errorf("after a failure: %+v, %v, %d calls; want the import stopped", sum, err, f.calls)
	}
	f = &fakeArchiver{fail: func(int, []byte) error { return fmt.Errorf("%w: down", ingest.ErrUnavailable) }}
	im = &importer{arc: f, concurrency: 1, budget: 1 << 20, attempts: 3, backoff: time.Millisecond, stdout: io.Discard, stderr: io.Discard}
	if sum, err = im.run(context.Background(), []string{dir}); !errors.Is(err, ingest.ErrUnavailable) || f.calls != 3 || sum.Errors < 1 {
		t.Errorf("archive down: %+v, %v, %d calls; want 3 attempts, then a stop", sum, err, f.calls)
	}
}

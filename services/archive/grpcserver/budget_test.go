package grpcserver

import (
	"context"
	"testing"
	"time"
)

func TestBudget(t *testing.T) {
	b := newBudget(10)
	ctx := context.Background()
	if err := b.acquire(ctx, 6, 0); err != nil {
		t.Fatal(err)
	}
	// 8 does not fit; a later 3 would, but waits behind it (FIFO: no starvation of big calls).
	got := make(chan int64, 3)
	go func() {
		if b.acquire(ctx, 8, 0) == nil {
			got <- 8
		}
	}()
	waitWaiters(t, b, 1)
	go func() {
		if b.acquire(ctx, 3, 0) == nil {
			got <- 3
		}
	}()
	waitWaiters(t, b, 2)

	// A waiter that gives up leaves the queue.
	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if err := b.acquire(short, 1, 0); err != context.DeadlineExceeded {
		t.Fatalf("acquire with an expiring context: %v", err)
	}
	waitWaiters(t, b, 2)

	b.release(6)
	if n := <-got; n != 8 {
		t.Fatalf("first granted %d, want 8", n)
	}
	waitWaiters(t, b, 1) // 3 does not fit next to 8
	b.release(8)
	if n := <-got; n != 3 {
		t.Fatalf("then %d, want 3", n)
	}
	b.release(3)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used != 0 || b.waiters.Len() != 0 {
		t.Errorf("used %d, waiters %d after releasing everything", b.used, b.waiters.Len())
	}
}

func TestBudgetCancelAtFront(t *testing.T) {
	b := newBudget(10)
	ctx := context.Background()
	if err := b.acquire(ctx, 9, 0); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- b.acquire(cctx, 5, 0) }() // front waiter, does not fit
	waitWaiters(t, b, 1)
	second := make(chan error)
	go func() { second <- b.acquire(ctx, 1, 0) }() // fits, but queued behind the first
	waitWaiters(t, b, 2)
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("cancelled front waiter: %v", err)
	}
	// Removing the front waiter lets the one behind it in.
	if err := <-second; err != nil {
		t.Fatal(err)
	}
}

func waitWaiters(t *testing.T, b *budget, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		b.mu.Lock()
		l := b.waiters.Len()
		b.mu.Unlock()
		if l == n {
			return
		}
	}
	t.Fatalf("waiters never reached %d", n)
}

// Calls that hold the whole budget between them and all wait for more: the newest holding a share
// is refused, and once it gives its share back the others go on. A waiter that holds nothing, or
// bytes held by a call that is not waiting, never cause a refusal.
func TestBudgetUnjam(t *testing.T) {
	b := newBudget(10)
	ctx := context.Background()
	for range 2 {
		if err := b.acquire(ctx, 4, 0); err != nil {
			t.Fatal(err)
		}
	}
	// A waiter that holds nothing: 8 bytes are held by calls that are not waiting.
	empty := make(chan error, 1)
	go func() { empty <- b.acquire(ctx, 3, 0) }()
	waitWaiters(t, b, 1)
	// The first holder wants 4 more: 4 of the 8 held bytes are held by a call still running.
	first := make(chan error, 1)
	go func() { first <- b.acquire(ctx, 4, 4) }()
	waitWaiters(t, b, 2)
	// The second holder wants 4 more too: every held byte is now held by a waiter.
	if err := b.acquire(ctx, 4, 4); err != errJammed {
		t.Fatalf("the newest holder: %v, want errJammed", err)
	}
	waitWaiters(t, b, 2)
	b.release(4) // the refused call gives its share back: the empty waiter fits
	if err := <-empty; err != nil {
		t.Fatal(err)
	}
	// The first holder (4 held, 4 wanted) does not fit next to the empty one's 3; it is not
	// refused (the empty one holds bytes and is not waiting), and gets its bytes once those are
	// given back.
	waitWaiters(t, b, 1)
	b.release(3)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	b.release(8)
	if used := b.usedBytes(); used != 0 {
		t.Fatalf("%d bytes still reserved", used)
	}
}

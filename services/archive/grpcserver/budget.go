package grpcserver

import (
	"container/list"
	"context"
	"sync"
)

// budget is a FIFO weighted semaphore over bytes: each Store call reserves its buffer as it grows
// and gives it all back when it is done. A call waiting for more while holding part of its
// buffer waits at most MaxIdleTime (see upload.reserve), so calls that hold the whole budget
// between them and all wait for more cannot wait for each other for long.
type budget struct {
	mu      sync.Mutex
	size    int64
	used    int64
	waiters list.List // of *waiter
}

type waiter struct {
	n     int64
	ready chan struct{}
}

func newBudget(size int64) *budget { return &budget{size: size} }

// acquire reserves n bytes (n <= size), waiting until they are free or ctx is done.
func (b *budget) acquire(ctx context.Context, n int64) error {
	b.mu.Lock()
	if b.waiters.Len() == 0 && b.size-b.used >= n {
		b.used += n
		b.mu.Unlock()
		return nil
	}
	w := &waiter{n: n, ready: make(chan struct{})}
	elem := b.waiters.PushBack(w)
	b.mu.Unlock()

	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
		b.mu.Lock()
		select {
		case <-w.ready:
			// Granted while giving up: hand the bytes back.
			b.used -= n
		default:
			front := b.waiters.Front() == elem
			b.waiters.Remove(elem)
			if !front {
				b.mu.Unlock()
				return ctx.Err()
			}
		}
		b.grant()
		b.mu.Unlock()
		return ctx.Err()
	}
}

func (b *budget) release(n int64) {
	b.mu.Lock()
	b.used -= n
	b.grant()
	b.mu.Unlock()
}

// grant wakes waiters in order while their reservation fits. Callers hold mu.
func (b *budget) grant() {
	for {
		e := b.waiters.Front()
		if e == nil {
			return
		}
		w := e.Value.(*waiter)
		if b.size-b.used < w.n {
			return
		}
		b.used += w.n
		b.waiters.Remove(e)
		close(w.ready)
	}
}

// usedBytes returns the bytes reserved now.
func (b *budget) usedBytes() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

package grpcserver

import (
	"container/list"
	"context"
	"errors"
	"sync"
)

// errJammed: the budget was spent by calls that all wait for more, and this one, the newest of
// them holding a share, was refused so that the others can go on.
var errJammed = errors.New("grpcserver: the buffer budget is spent by uploads that all wait for more")

// budget is a FIFO weighted semaphore over bytes: each Store call reserves its buffer as it grows
// and gives it all back when it is done. Calls that hold part of their buffer may wait for more;
// when every reserved byte is held by such waiting calls nothing would ever be given back, so the
// newest of them is refused (errJammed) and gives its share back (see unjam).
type budget struct {
	mu      sync.Mutex
	size    int64
	used    int64
	waiters list.List // of *waiter
}

type waiter struct {
	n       int64 // bytes wanted
	held    int64 // bytes the caller already holds
	ready   chan struct{}
	refused bool // set before ready is closed when unjam refuses the waiter
}

func newBudget(size int64) *budget { return &budget{size: size} }

// acquire reserves n bytes (n <= size) for a caller that already holds held bytes, waiting until
// they are free or ctx is done. It fails with errJammed when the caller is refused to unjam the
// budget: it must then give back what it holds.
func (b *budget) acquire(ctx context.Context, n, held int64) error {
	b.mu.Lock()
	if b.waiters.Len() == 0 && b.size-b.used >= n {
		b.used += n
		b.mu.Unlock()
		return nil
	}
	w := &waiter{n: n, held: held, ready: make(chan struct{})}
	elem := b.waiters.PushBack(w)
	b.unjam()
	b.mu.Unlock()

	select {
	case <-w.ready:
		if w.refused {
			return errJammed
		}
		return nil
	case <-ctx.Done():
		b.mu.Lock()
		select {
		case <-w.ready:
			// Granted (or refused) while giving up: hand granted bytes back.
			if !w.refused {
				b.used -= n
			}
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

// grant wakes waiters in order while their reservation fits, then unjams what is left. Callers
// hold mu.
func (b *budget) grant() {
	for {
		e := b.waiters.Front()
		if e == nil {
			return
		}
		w := e.Value.(*waiter)
		if b.size-b.used < w.n {
			b.unjam()
			return
		}
		b.used += w.n
		b.waiters.Remove(e)
		close(w.ready)
	}
}

// unjam refuses the newest waiter holding a share when every reserved byte is held by waiters:
// none of them can be granted (the first does not fit) and nothing else would give bytes back.
// Bytes held by a call that is receiving, storing, or was refused and has not given them back
// yet, come back by themselves. Callers hold mu.
func (b *budget) unjam() {
	front := b.waiters.Front()
	if front == nil || b.size-b.used >= front.Value.(*waiter).n {
		return
	}
	var waiting int64
	for e := front; e != nil; e = e.Next() {
		waiting += e.Value.(*waiter).held
	}
	if waiting < b.used {
		return
	}
	for e := b.waiters.Back(); e != nil; e = e.Prev() {
		if w := e.Value.(*waiter); w.held > 0 {
			b.waiters.Remove(e)
			w.refused = true
			close(w.ready)
			return
		}
	}
}

// usedBytes returns the bytes reserved now.
func (b *budget) usedBytes() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

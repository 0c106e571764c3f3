// Package drain tracks the goroutines serving connections so a shutdown
// can wait for them. http.Server.Shutdown knows nothing of connections
// handed over after protocol detection, hijacked, or forwarded as opaque
// TCP: the proxy counts them itself.
package drain

import (
	"context"
	"sync"
	"sync/atomic"
)

// Tracker runs and counts connection goroutines. The zero value is ready
// to use. After Close, Go refuses new work, so Wait's count can only fall.
type Tracker struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
	active atomic.Int64

	doneOnce sync.Once
	done     chan struct{} // closed when the count reaches zero after Close
}

// Go runs fn in a new goroutine and counts it until fn returns. It reports
// false, without running fn, once Close was called.
func (t *Tracker) Go(fn func()) bool {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return false
	}
	t.wg.Add(1)
	t.active.Add(1)
	t.mu.Unlock()
	go func() {
		defer t.wg.Done()
		defer t.active.Add(-1)
		fn()
	}()
	return true
}

// Active returns the number of goroutines running.
func (t *Tracker) Active() int64 { return t.active.Load() }

// Close makes Go refuse new work. Call it once the accept loops stopped.
func (t *Tracker) Close() {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
}

// Wait returns nil once every goroutine started by Go has returned, or
// ctx's error if ctx ends first (the goroutines keep running: end them, for
// instance by cancelling the context they serve under, and Wait again).
// Call Close first.
func (t *Tracker) Wait(ctx context.Context) error {
	t.doneOnce.Do(func() {
		t.done = make(chan struct{})
		go func() { // ends when the last tracked goroutine does
			t.wg.Wait()
			close(t.done)
		}()
	})
	select {
	case <-t.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

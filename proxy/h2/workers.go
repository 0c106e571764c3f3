package h2

// Handlers run on the connection's worker goroutines. A worker that
// finished a request waits for the next one, up to maxIdleWorkers of
// them per connection, so a busy connection does not start a goroutine
// (and grow its stack, deep in a proxy's handler) for every request.

const maxIdleWorkers = 16

// spawn runs f on an idle worker, or a new one.
func (sc *serverConn) spawn(f func()) {
	select {
	case sc.work <- f:
	default:
		go sc.worker(f)
	}
}

func (sc *serverConn) worker(f func()) {
	for {
		f()
		sc.mu.Lock()
		if sc.idleWorkers >= maxIdleWorkers {
			sc.mu.Unlock()
			return
		}
		sc.idleWorkers++
		sc.mu.Unlock()
		var ok bool
		if f, ok = <-sc.work; !ok {
			return // the connection ended
		}
		sc.mu.Lock()
		sc.idleWorkers--
		sc.mu.Unlock()
	}
}

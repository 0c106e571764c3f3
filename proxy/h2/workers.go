package h2

// Handlers run on the connection's worker goroutines. A worker that
// finished a request waits for the next one, up to maxIdleWorkers of
// them per connection, so a busy connection does not start a goroutine
// (and grow its stack, deep in a proxy's handler) for every request.

const maxIdleWorkers = 16

// spawn runs st's handler on an idle worker, or a new one.
func (sc *serverConn) spawn(st *serverStream) {
	select {
	case sc.work <- st:
	default:
		go sc.worker(st)
	}
}

func (sc *serverConn) worker(st *serverStream) {
	for {
		sc.runHandler(st)
		sc.mu.Lock()
		if sc.idleWorkers >= maxIdleWorkers {
			sc.mu.Unlock()
			return
		}
		sc.idleWorkers++
		sc.mu.Unlock()
		var ok bool
		if st, ok = <-sc.work; !ok {
			return // the connection ended
		}
		sc.mu.Lock()
		sc.idleWorkers--
		sc.mu.Unlock()
	}
}

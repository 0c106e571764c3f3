package h2

import (
	"sync"
	"sync/atomic"
)

// maxWindow is the largest flow-control window (RFC 9113 §6.9.1).
const maxWindow = 1<<31 - 1

// sendFlow is the send side of a connection's flow control: the windows
// the peer granted the connection and each stream. Writers wait in take;
// the reader adds credit from WINDOW_UPDATE and SETTINGS.
type sendFlow struct {
	mu      sync.Mutex
	cond    sync.Cond
	conn    int64
	initial int64 // the peer's SETTINGS_INITIAL_WINDOW_SIZE
	err     error // the connection ended
}

// streamSend is a stream's send window, guarded by its sendFlow's mu.
type streamSend struct {
	win int64
	err error // the stream ended: writers stop
}

func newSendFlow() *sendFlow {
	f := &sendFlow{conn: 65535, initial: 65535}
	f.cond.L = &f.mu
	return f
}

func (f *sendFlow) open(s *streamSend) {
	f.mu.Lock()
	s.win = f.initial
	f.mu.Unlock()
}

// take waits for window on s and the connection, then takes up to n bytes
// of it.
func (f *sendFlow) take(s *streamSend, n int) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for {
		if s.err != nil {
			return 0, s.err
		}
		if f.err != nil {
			return 0, f.err
		}
		if s.win > 0 && f.conn > 0 {
			k := min(int64(n), s.win, f.conn)
			s.win -= k
			f.conn -= k
			return int(k), nil
		}
		f.cond.Wait()
	}
}

// end stops the writers of s (err) or, with s nil, of every stream.
func (f *sendFlow) end(s *streamSend, err error) {
	f.mu.Lock()
	if s == nil {
		if f.err == nil {
			f.err = err
		}
	} else if s.err == nil {
		s.err = err
	}
	f.mu.Unlock()
	f.cond.Broadcast()
}

// add credits n bytes to s, or to the connection when s is nil. A window
// pushed over 2^31-1 is a flow-control error.
func (f *sendFlow) add(s *streamSend, n uint32) bool {
	f.mu.Lock()
	w := &f.conn
	if s != nil {
		w = &s.win
	}
	ok := *w+int64(n) <= maxWindow
	if ok {
		*w += int64(n)
	}
	f.mu.Unlock()
	if ok {
		f.cond.Broadcast()
	}
	return ok
}

// setInitial applies a new SETTINGS_INITIAL_WINDOW_SIZE to the open
// streams (RFC 9113 §6.9.2): their windows move by the difference.
func (f *sendFlow) setInitial(v uint32, open func(func(*streamSend))) bool {
	f.mu.Lock()
	delta := int64(v) - f.initial
	f.initial = int64(v)
	ok := true
	open(func(s *streamSend) {
		s.win += delta
		if s.win > maxWindow {
			ok = false
		}
	})
	f.mu.Unlock()
	f.cond.Broadcast()
	return ok
}

// recvFlow is the receive side of a connection: the window the peer may
// still use, and the credit consumed but not yet returned.
type recvFlow struct {
	win     atomic.Int64 // granted and not yet used by the peer
	unacked atomic.Int64 // read by the application, not yet returned
	size    int64        // the full window
}

// use accounts n received bytes; false: the peer overran the window.
func (f *recvFlow) use(n int64) bool {
	return f.win.Add(-n) >= 0
}

// consumed records n bytes read by the application and returns how much
// credit to return now (0 while under a quarter of the window, to keep
// WINDOW_UPDATE frames few).
func (f *recvFlow) consumed(n int64) uint32 {
	if n == 0 {
		return 0
	}
	u := f.unacked.Add(n)
	if u < f.size/4 {
		return 0
	}
	if !f.unacked.CompareAndSwap(u, 0) {
		return 0 // another reader returns it
	}
	f.win.Add(u)
	return uint32(u)
}

// pipe is a stream's received body: the reader goroutine appends DATA,
// the application reads it. Its size is bounded by the stream's receive
// window.
type pipe struct {
	mu     sync.Mutex
	cond   sync.Cond
	b      []byte
	r      int   // b[r:] is unread
	err    error // after the buffered bytes: io.EOF or the stream's error
	broken error // at once: the stream was reset, or the reader closed
}

func newPipe() *pipe {
	p := &pipe{}
	p.cond.L = &p.mu
	return p
}

// write appends b unless the pipe is closed; it returns false if the
// bytes were discarded (their credit is the caller's to return).
func (p *pipe) write(b []byte) bool {
	p.mu.Lock()
	if p.broken != nil || p.err != nil {
		p.mu.Unlock()
		return false
	}
	if p.r == len(p.b) {
		p.b, p.r = p.b[:0], 0
	}
	p.b = append(p.b, b...)
	p.mu.Unlock()
	p.cond.Signal()
	return true
}

// closeWithError ends the body after what is buffered (io.EOF for a clean
// end).
func (p *pipe) closeWithError(err error) {
	p.mu.Lock()
	if p.err == nil {
		p.err = err
	}
	p.mu.Unlock()
	p.cond.Broadcast()
}

// breakWithError ends the body at once, dropping what is buffered, and
// returns how many unread bytes were dropped.
func (p *pipe) breakWithError(err error) int {
	p.mu.Lock()
	n := len(p.b) - p.r
	if p.broken == nil {
		p.broken = err
	}
	p.b, p.r = nil, 0
	p.mu.Unlock()
	p.cond.Broadcast()
	return n
}

func (p *pipe) read(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		if p.broken != nil {
			return 0, p.broken
		}
		if p.r < len(p.b) {
			n := copy(b, p.b[p.r:])
			p.r += n
			return n, nil
		}
		if p.err != nil {
			return 0, p.err
		}
		p.cond.Wait()
	}
}

// readNow reads only what is buffered: (0, nil) when nothing is.
func (p *pipe) readNow(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.broken != nil {
		return 0, p.broken
	}
	if p.r < len(p.b) {
		n := copy(b, p.b[p.r:])
		p.r += n
		return n, nil
	}
	return 0, p.err
}

// buffered reports whether a read would not block.
func (p *pipe) ready() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.broken != nil || p.r < len(p.b) || p.err != nil
}

// tryTake takes n bytes of window from s and the connection if both have
// them, without waiting.
func (f *sendFlow) tryTake(s *streamSend, n int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s.err != nil || f.err != nil || s.win < int64(n) || f.conn < int64(n) {
		return false
	}
	s.win -= int64(n)
	f.conn -= int64(n)
	return true
}

package h2

import (
	"bufio"
	"crypto/tls"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
)

// writer is a connection's write side. Streams write their frames with the
// lock held and flush when they unlock, unless another writer is already
// waiting for the lock, or is about to flush: that one flushes instead, so
// frames of concurrent streams leave in one syscall.
//
// Before it flushes, a writer yields the processor once (runtime.Gosched)
// with the lock released. Goroutines that were already runnable run first,
// and those that write to this connection (other streams' requests and
// responses, readied by the same netpoll) add their frames to the buffer
// instead of each making a syscall. With nothing else runnable, the yield
// returns at once, so an idle proxy pays well under a microsecond for it;
// a loaded one saves a write (and a TLS record, and the peer's read) per
// stream that shares it. This is the Go form of an event loop flushing its
// connections at the end of a turn.
//
// The connection's reading goroutine never blocks on the lock. The frames it
// owes the peer are queued in ctl and written by whoever unlocks next, or
// by the reader itself when the lock is free (kick).
type writer struct {
	c       net.Conn
	mu      sync.Mutex
	waiting atomic.Int32 // goroutines blocked in lock
	async   atomic.Bool  // a goroutine of kickAsync is running
	bw      *bufio.Writer
	fr      *http2.Framer // its writes go to bw; the connection's reader uses its reads
	enc     *encoder
	pending bool          // a writer has yielded and will flush; the lock is held to change it
	err     error         // first write error; every later write fails with it
	maxSend atomic.Uint32 // the peer's SETTINGS_MAX_FRAME_SIZE

	ctl ctlQueue
}

// maxQueuedControl bounds the frames the reader may queue while the lock is
// held by a writer the peer does not read from; beyond it the peer is
// flooding us and the connection ends (as x/net's maxQueuedControlFrames).
const maxQueuedControl = 4096

// ctlQueue holds the control frames the reader owes the peer.
type ctlQueue struct {
	mu          sync.Mutex
	n           int // queued frames, for the bound
	settingsAck int
	apply       []func(w *writer) // settings of the peer, applied as they are acknowledged
	pings       [][8]byte
	connWindow  uint32
	windows     []windowUpdate
	rsts        []windowUpdate // id, code
	goAway      *goAway
}

type windowUpdate struct{ id, n uint32 }

type goAway struct {
	last uint32
	code http2.ErrCode
}

func newWriter(c net.Conn, r *bufio.Reader, size int) *writer {
	w := &writer{c: c, bw: bufio.NewWriterSize(c, size)}
	w.maxSend.Store(16384)
	w.fr = http2.NewFramer(w.bw, r)
	w.enc = newEncoder()
	return w
}

func (w *writer) lock() {
	w.waiting.Add(1)
	w.mu.Lock()
	w.waiting.Add(-1)
}

// unlock writes queued control frames, flushes unless another writer is
// waiting or about to flush, and releases the lock. It returns the
// connection's write error.
func (w *writer) unlock() error {
	w.writeControl()
	if w.err == nil && !w.pending && w.waiting.Load() == 0 && w.bw.Buffered() > 0 {
		w.pending = true
		w.mu.Unlock()
		runtime.Gosched()
		w.mu.Lock()
		w.pending = false
		w.writeControl()
		if w.err == nil && w.waiting.Load() == 0 && w.bw.Buffered() > 0 {
			w.setErr(w.bw.Flush())
		}
	}
	err := w.err
	w.mu.Unlock()
	if w.ctl.pending() {
		w.kick()
	}
	return err
}

// kick writes queued control frames now if no writer holds the lock; one
// that does writes them before it unlocks.
func (w *writer) kick() {
	for w.ctl.pending() {
		if !w.mu.TryLock() {
			return
		}
		w.writeControl()
		if w.err == nil && w.waiting.Load() == 0 && w.bw.Buffered() > 0 {
			w.setErr(w.bw.Flush())
		}
		w.mu.Unlock()
	}
}

// kickAsync is kick for the connection's reading goroutine, which must
// never block on a peer that does not read: the frames are written by a
// short-lived goroutine instead, started only when the lock is busy or a
// flush is needed (acknowledgements, resets: rare on a healthy connection).
// While that goroutine is blocked, the reader's frames pile up in the
// bounded queue, and a peer that keeps sending ends with the queue full.
func (w *writer) kickAsync() {
	if !w.ctl.pending() || !w.async.CompareAndSwap(false, true) {
		return
	}
	go func() {
		for {
			w.lock()
			w.unlock()
			w.async.Store(false)
			if !w.ctl.pending() || !w.async.CompareAndSwap(false, true) {
				return
			}
		}
	}()
}

// writeControl writes the queued control frames; the lock is held.
func (w *writer) writeControl() {
	q := &w.ctl
	if !q.pending() {
		return
	}
	q.mu.Lock()
	acks, pings, apply := q.settingsAck, q.pings, q.apply
	connWindow, windows, rsts, ga := q.connWindow, q.windows, q.rsts, q.goAway
	q.settingsAck, q.pings, q.apply = 0, nil, nil
	q.connWindow, q.windows, q.rsts, q.goAway, q.n = 0, nil, nil, nil, 0
	q.mu.Unlock()
	if w.err != nil {
		return
	}
	for _, f := range apply {
		f(w)
	}
	for ; acks > 0; acks-- {
		w.setErr(w.fr.WriteSettingsAck())
	}
	for _, p := range pings {
		w.setErr(w.fr.WritePing(true, p))
	}
	for _, r := range rsts {
		w.setErr(w.fr.WriteRSTStream(r.id, http2.ErrCode(r.n)))
	}
	if connWindow > 0 {
		w.setErr(w.fr.WriteWindowUpdate(0, connWindow))
	}
	for _, u := range windows {
		w.setErr(w.fr.WriteWindowUpdate(u.id, u.n))
	}
	if ga != nil {
		w.setErr(w.fr.WriteGoAway(ga.last, ga.code, nil))
	}
}

// setErr records the connection's first write error and closes it: its
// reader then fails too and ends every stream, so no request waits on a
// connection that can no longer send (whoever's flush it was).
func (w *writer) setErr(err error) {
	if err != nil && w.err == nil {
		w.err = err
		closeNow(w.c)
	}
}

// closeNow closes c at once. A TLS connection's own Close first sends
// close_notify, which on a peer that stopped reading waits up to 5 s: here
// with the write lock held. Its socket is closed instead.
func closeNow(c net.Conn) {
	if tc, ok := c.(*tls.Conn); ok {
		tc.NetConn().Close()
		return
	}
	c.Close()
}

// flushFinal writes the queued control frames (a last GOAWAY) and
// everything buffered before the connection is closed, whoever else was
// to flush, waiting at most d for a peer that does not read: a writer
// stuck on it fails at the deadline and frees the lock.
func (w *writer) flushFinal(d time.Duration) {
	w.c.SetWriteDeadline(time.Now().Add(d))
	w.lock()
	w.writeControl()
	if w.err == nil && w.bw.Buffered() > 0 {
		w.setErr(w.bw.Flush())
	}
	w.mu.Unlock()
}

func (q *ctlQueue) pending() bool {
	q.mu.Lock()
	n := q.n
	q.mu.Unlock()
	return n > 0
}

// add runs f on the queue under its lock, counting one frame. It reports
// false when the queue is full.
func (q *ctlQueue) add(f func(q *ctlQueue)) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n >= maxQueuedControl {
		return false
	}
	q.n++
	f(q)
	return true
}

// queue helpers, each followed by a kick from the caller.

// queueSettingsAck acknowledges the peer's SETTINGS; apply, if not nil,
// runs under the write lock just before the acknowledgement is written
// (the header table size and frame size the peer asked for).
func (w *writer) queueSettingsAck(apply func(w *writer)) bool {
	return w.ctl.add(func(q *ctlQueue) {
		q.settingsAck++
		if apply != nil {
			q.apply = append(q.apply, apply)
		}
	})
}

func (w *writer) queuePing(data [8]byte) bool {
	return w.ctl.add(func(q *ctlQueue) { q.pings = append(q.pings, data) })
}

func (w *writer) queueRST(id uint32, code http2.ErrCode) bool {
	return w.ctl.add(func(q *ctlQueue) { q.rsts = append(q.rsts, windowUpdate{id, uint32(code)}) })
}

func (w *writer) queueGoAway(last uint32, code http2.ErrCode) {
	w.ctl.mu.Lock()
	w.ctl.n++
	w.ctl.goAway = &goAway{last, code}
	w.ctl.mu.Unlock()
}

// queueWindow returns n bytes of receive window to the peer: on the
// connection (id 0) or a stream. Updates of one stream merge.
func (w *writer) queueWindow(id, n uint32) {
	w.ctl.mu.Lock()
	defer w.ctl.mu.Unlock()
	if id == 0 {
		if w.ctl.connWindow == 0 {
			w.ctl.n++
		}
		w.ctl.connWindow += n
		return
	}
	for i := range w.ctl.windows {
		if w.ctl.windows[i].id == id {
			w.ctl.windows[i].n += n
			return
		}
	}
	w.ctl.n++
	w.ctl.windows = append(w.ctl.windows, windowUpdate{id, n})
}

// writeHeaders encodes fields into a HEADERS frame (and CONTINUATIONs) on
// stream id; the lock is held. The encoder's state changes with every
// block, so blocks must reach the wire in the order they are encoded: both
// happen under the lock.
func (w *writer) writeHeaders(id uint32, endStream bool, fields func(enc *encoder)) error {
	if w.err != nil {
		return w.err
	}
	w.enc.buf = w.enc.buf[:0]
	fields(w.enc)
	block := w.enc.buf
	if cap(block) > 64<<10 {
		w.enc.buf = nil // one huge block does not stay with the connection
	}
	max := int(w.maxSend.Load())
	first := true
	for first || len(block) > 0 {
		frag := block
		if len(frag) > max {
			frag = frag[:max]
		}
		block = block[len(frag):]
		end := len(block) == 0
		var err error
		if first {
			err = w.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: frag, EndStream: endStream, EndHeaders: end})
			first = false
		} else {
			err = w.fr.WriteContinuation(id, end, frag)
		}
		if err != nil {
			w.setErr(err)
			return err
		}
	}
	return nil
}

// writeData writes data as one DATA frame (its size already within the
// peer's limits and windows); the lock is held.
func (w *writer) writeData(id uint32, endStream bool, data []byte) error {
	if w.err != nil {
		return w.err
	}
	// The peer may have lowered its frame size since data was cut.
	for max := int(w.maxSend.Load()); len(data) > max; data = data[max:] {
		w.setErr(w.fr.WriteData(id, false, data[:max]))
	}
	w.setErr(w.fr.WriteData(id, endStream, data))
	return w.err
}

package httpproxy

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// h1ReqBody reads a request body of known length from the connection.
//
// A transport other than the fast client (net/http's for large bodies,
// x/net's between proxies) reads it from a goroutine of its own, which may
// still be inside Read when the handler returns. mu is held across each
// Read and closed is set under it (closeBody), so that no read of the
// connection's buffer outlives the request: the buffer then belongs to the
// next request (net/http's body does the same). remain is atomic only
// because the client watch reads it.
type h1ReqBody struct {
	br     *bufio.Reader
	mu     sync.Mutex
	closed bool
	remain atomic.Int64
	err    error
}

var errBodyClosed = errors.New("httpproxy: request body read after its request ended")

func (b *h1ReqBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, errBodyClosed
	}
	return b.read(p)
}

func (b *h1ReqBody) read(p []byte) (int, error) {
	rem := b.remain.Load()
	if rem <= 0 {
		return 0, io.EOF
	}
	if b.err != nil {
		return 0, b.err
	}
	if int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := b.br.Read(p)
	rem -= int64(n)
	b.remain.Store(rem)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		b.err = err
	}
	if rem == 0 && err == nil {
		return n, io.EOF
	}
	return n, err
}

func (b *h1ReqBody) Close() error { return nil }

// bodyReader reads a closed body for the server itself (to discard what the
// handler left unread).
type bodyReader struct{ b *h1ReqBody }

func (r bodyReader) Read(p []byte) (int, error) { return r.b.read(p) }

// closeBody ends b's reads by the handler's transports: a read still
// blocked on the connection is woken by a past deadline, and every later
// one fails.
func (s *h1Server) closeBody(b *h1ReqBody) {
	if !b.mu.TryLock() {
		s.c.SetReadDeadline(aLongTimeAgo)
		b.mu.Lock()
		s.setDeadline(time.Time{})
		if b.err != nil && isTimeout(b.err) {
			b.err = errBodyClosed // the read we interrupted; the rest of the body is not read
		}
	}
	b.closed = true
	b.mu.Unlock()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// startWatch arms the client watch: if the request is still running after
// watchAfter, with its body read, a goroutine reads the connection to learn
// when the client leaves. One timer serves all the connection's requests.
func (s *h1Server) startWatch(body *h1ReqBody) {
	if s.br.Buffered() > 0 {
		return // a pipelined request is already here: the client has not left
	}
	s.watchBody, s.watchArmed = body, true
	s.watchStop.Store(false)
	s.watchWG.Add(1)
	if s.watchTimer == nil {
		s.watchTimer = time.AfterFunc(watchAfter, s.watch)
	} else {
		s.watchTimer.Reset(watchAfter)
	}
}

func (s *h1Server) watch() {
	defer s.watchWG.Done()
	if b := s.watchBody; b != nil && b.remain.Load() > 0 {
		// The body is still coming (the handler reads the connection):
		// look again later, unless the request ended meanwhile.
		if !s.watchStop.Load() {
			s.watchWG.Add(1)
			s.watchTimer.Reset(watchAfter)
		}
		return
	}
	n, err := s.c.Read(s.watchByte[:])
	if n > 0 {
		s.src.pending = s.watchByte[:1]
		return
	}
	if err != nil && !isTimeout(err) {
		s.cancel() // the client closed or reset the connection
	}
}

// stopWatch ends the client watch; it reports whether the client left.
func (s *h1Server) stopWatch() (gone bool) {
	if s.watchArmed {
		s.watchArmed = false
		s.watchStop.Store(true)
		if s.watchTimer.Stop() {
			s.watchWG.Done() // armed and never ran
		} else {
			s.c.SetReadDeadline(aLongTimeAgo) // interrupt the watch's read
			s.watchWG.Wait()                  // a watch that re-armed itself first sees the stop when it fires again
			s.setDeadline(time.Time{})
		}
	}
	return s.ctx.Err() != nil
}

// lingerClose closes c after the client had time to read the response: its
// sending side is shut first and what it still sends is read and dropped
// for a moment, so that closing with unread bytes does not reset the
// connection before the response arrived (as net/http's closeWriteAndWait).
func lingerClose(c net.Conn) {
	type closeWriter interface{ CloseWrite() error }
	var cw closeWriter
	switch t := c.(type) {
	case *tls.Conn:
		cw = t
	case closeWriter:
		cw = t
	}
	if cw != nil && cw.CloseWrite() == nil {
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		io.Copy(io.Discard, io.LimitReader(c, maxDiscard))
	}
	c.Close()
}

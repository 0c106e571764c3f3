package httpproxy

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// The fast HTTP/1 server serves the requests of a connection one after the
// other in the connection's own goroutine: it reads a head, runs the
// direction's stack, and writes the response, with no goroutine per request
// (net/http starts one to watch for the client going away) and no copy of
// the head into net/http's structures beyond the http.Request.
//
// It takes only requests parseRequestHead accepts. At the first other one
// (an upgrade, Expect: 100-continue, a chunked body, a head over
// h1HeadBuffer, anything odd or malformed) it hands the connection, from
// that request on and with the bytes already read, to net/http's server
// (serveHTTP1Std), which serves it to the end.

// h1HeadBuffer is the read buffer of a fast connection, and so the largest
// head the fast path parses.
const h1HeadBuffer = 4 << 10

// watchAfter is how long a request waits for its response before the
// server starts watching the client connection for a close, to cancel the
// request when the client leaves. Quick requests never pay for the watch.
const watchAfter = 5 * time.Millisecond

// maxDiscard is how much of an unread request body is read and dropped to
// keep the connection; beyond it, the connection is closed.
const maxDiscard = 256 << 10

type h1Server struct {
	p    *Proxy
	cn   *conn
	c    net.Conn
	src  h1Source
	br   *bufio.Reader
	bw   *bufio.Writer
	tmpl *http.Request // carries the connection's context into each request

	ctx    context.Context // the requests' context: ends when the client leaves or the connection is cut
	cancel context.CancelFunc

	mu       sync.Mutex
	idle     bool        // waiting for a request head
	draining atomic.Bool // the server drains: responses say Connection: close, no new request is read
	served   int         // requests served so far

	remote       string
	linger       bool      // close gently: the client's bytes are not all read
	deadline     time.Time // the read deadline set on c
	idleDeadline bool      // deadline is the idle wait's
	head         reqHead
	w            h1Writer // reused by each request, as are:
	header       http.Header
	pending      [pendingMax]byte

	watchTimer *time.Timer
	watchArmed bool
	watchStop  atomic.Bool    // the request ended: the watch must not re-arm
	watchBody  *h1ReqBody     // the body of the request being watched, if any
	watchWG    sync.WaitGroup // the running watch
	watchByte  [1]byte
}

// h1Source is what the buffered reader reads: a byte the client watch took
// first, then the connection.
type h1Source struct {
	c       net.Conn
	pending []byte
}

func (s *h1Source) Read(b []byte) (int, error) {
	if len(s.pending) > 0 {
		n := copy(b, s.pending)
		s.pending = s.pending[n:]
		return n, nil
	}
	return s.c.Read(b)
}

// serveHTTP1 serves c with the fast server while requests allow it.
func (p *Proxy) serveHTTP1(ctx context.Context, c net.Conn, cn *conn) {
	s := &h1Server{p: p, cn: cn, c: c, src: h1Source{c: c}}
	s.br = bufio.NewReaderSize(&s.src, h1HeadBuffer)
	s.bw = bufio.NewWriterSize(c, h1HeadBuffer)
	s.ctx, s.cancel = context.WithCancel(cn.kill)
	s.tmpl = new(http.Request).WithContext(s.ctx)
	s.remote = c.RemoteAddr().String()
	s.header = make(http.Header, 8)

	finished := make(chan struct{})
	stopDrain := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		s.draining.Store(true)
		if s.idle {
			c.SetReadDeadline(aLongTimeAgo) // wake the wait for a next request
		}
		s.mu.Unlock()
		p.drainClock(finished, cn)
	})
	stopKill := context.AfterFunc(cn.kill, func() { c.Close() })
	handover := s.serve()
	stopKill()
	if handover {
		c.SetReadDeadline(time.Time{}) // net/http sets its own
		close(finished)
		stopDrain()
		s.cancel()
		// net/http takes over from the request the fast path refused; it
		// reads what is buffered first.
		buffered, _ := s.br.Peek(s.br.Buffered())
		p.serveHTTP1Std(ctx, &replayConn{Conn: c, buf: bytes.Clone(buffered)}, cn)
		return
	}
	if s.linger {
		lingerClose(c)
	} else {
		c.Close()
	}
	s.cancel()
	close(finished)
	stopDrain()
	cn.killCancel()
}

// serve runs the request loop; it reports true when the connection must be
// handed to net/http.
func (s *h1Server) serve() (handover bool) {
	for {
		head, err := s.readHead()
		if err != nil {
			return false
		}
		if head == nil || !parseRequestHead(head, &s.head) {
			return true
		}
		s.br.Discard(len(head))
		if !s.serveOne() {
			return false
		}
	}
}

// readHead waits for the next request head and returns it, still buffered.
// nil without error: the head does not fit the buffer (or is not there in
// full when the client stopped sending); net/http takes it.
func (s *h1Server) readHead() ([]byte, error) {
	s.mu.Lock()
	if s.draining.Load() {
		s.mu.Unlock()
		return nil, context.Canceled
	}
	if s.br.Buffered() == 0 {
		s.idle = true
		// A new connection gets the header timeout for its first request,
		// as from net/http; a kept-alive one the idle timeout. A deadline
		// set for the idle wait less than a second ago is kept: moving it
		// costs more than the request itself on a busy connection.
		now := time.Now()
		if s.served == 0 {
			s.setDeadline(now.Add(s.p.cfg.HeaderReadTimeout))
		} else if want := now.Add(s.p.cfg.IdleTimeout); !s.idleDeadline || s.deadline.Before(want.Add(-time.Second)) {
			s.setDeadline(want)
			s.idleDeadline = true
		}
	}
	s.mu.Unlock()
	_, err := s.br.Peek(1)
	s.mu.Lock()
	s.idle = false
	s.mu.Unlock()
	if err != nil {
		return nil, err // idle timeout, the client left, or the drain woke the wait
	}
	// Most heads arrive whole in one read; a slow one gets the header
	// timeout.
	if buf, _ := s.br.Peek(s.br.Buffered()); !bytes.Contains(buf, crlfcrlf) {
		s.setDeadline(time.Now().Add(s.p.cfg.HeaderReadTimeout))
	}
	return peekHead(s.br) // on error, the client left or the header timeout expired: the connection ends
}

// setDeadline sets the connection's read deadline. The deadline of the
// idle wait stays while a request without a body is served (only the client
// watch reads then, and a timeout merely ends the watch); a request body,
// the watch's end and a handover clear it.
func (s *h1Server) setDeadline(t time.Time) {
	s.c.SetReadDeadline(t)
	s.deadline, s.idleDeadline = t, false
}

var crlfcrlf = []byte("\r\n\r\n")

// bareLF reports a line feed without a carriage return before it: a head
// net/http reads and the fast path does not.
func bareLF(b []byte) bool {
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			return true
		}
	}
	return false
}

// serveOne serves the request whose head is in s.head; it reports whether
// the connection can carry another.
func (s *h1Server) serveOne() (keep bool) {
	h := &s.head
	r := new(http.Request)
	*r = *s.tmpl
	u := h.url
	r.Method, r.URL, r.Proto = h.method, &u, "HTTP/1.1"
	r.ProtoMajor, r.ProtoMinor = 1, h.minor
	if h.minor == 0 {
		r.Proto = "HTTP/1.0"
	}
	r.Header, r.Host, r.RemoteAddr, r.RequestURI = h.header, h.host, s.remote, h.target
	r.ContentLength, r.Close = h.contentLength, h.close
	var body *h1ReqBody
	if h.contentLength > 0 {
		s.setDeadline(time.Time{}) // a body may take as long as it takes
		body = &h1ReqBody{br: s.br}
		body.remain.Store(h.contentLength)
		r.Body = body
	} else {
		r.Body = http.NoBody
	}
	w := &s.w
	clear(s.header)
	*w = h1Writer{bw: s.bw, header: s.header, req: h, pending: s.pending[:0], draining: &s.draining, body: body}
	s.served++

	s.startWatch(body)
	aborted := s.run(w, r)
	if body != nil {
		s.closeBody(body)
	}
	if aborted {
		s.stopWatch()
		return false
	}
	// The response goes out before the watch is stopped: stopping a watch
	// that started waits for its goroutine, which a slow request should
	// not add to its latency.
	err := w.finish()
	if gone := s.stopWatch(); gone {
		return false
	}
	if err != nil || w.closeAfter || h.close {
		if err == nil && body != nil && body.remain.Load() > 0 {
			s.linger = true // the client may still be sending: a close now could reset the response
		}
		return false
	}
	if body != nil {
		if rem := body.remain.Load(); rem > 0 {
			if rem > maxDiscard || body.err != nil {
				return false
			}
			if _, err := io.CopyN(io.Discard, bodyReader{body}, rem); err != nil {
				return false
			}
		}
		return body.err == nil
	}
	return true
}

// run calls the stack; it reports true when the handler aborted the
// response (http.ErrAbortHandler, or any panic), which ends the connection
// without completing the response.
func (s *h1Server) run(w *h1Writer, r *http.Request) (aborted bool) {
	defer func() {
		if v := recover(); v != nil {
			aborted = true
			if v != http.ErrAbortHandler {
				s.p.log.Error("panic serving an HTTP/1 request", "panic", v, "stack", string(debug.Stack()))
			}
		}
	}()
	s.cn.ServeHTTP(w, r)
	return false
}

// replayConn returns buf before reading the connection: the bytes the fast
// path read but did not serve.
type replayConn struct {
	net.Conn
	buf []byte
}

func (c *replayConn) Read(b []byte) (int, error) {
	if len(c.buf) > 0 {
		n := copy(b, c.buf)
		c.buf = c.buf[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

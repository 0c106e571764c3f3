package httpproxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// maxFastBody is the largest request body the fast HTTP/1 client sends. It
// reads such a body whole before writing the request, so the request can be
// sent again on a fresh connection when a pooled one turns out to be dead.
const maxFastBody = 64 << 10

// fastH1 reports whether the HTTP/1 client's fast path can carry r (an
// incoming request): no upgrade, no Expect: 100-continue, no trailers, and
// no body or a small one of known length. Everything else takes net/http's
// Transport (or, between proxies, HTTP/2).
func fastH1(r *http.Request, upgrade []string) bool {
	if upgrade != nil || r.ContentLength < 0 || r.ContentLength > maxFastBody || len(r.Trailer) > 0 {
		return false
	}
	_, expect := r.Header["Expect"]
	return !expect
}

// h1Client is the HTTP/1.1 client of the common case (see fastH1). It writes
// the request and reads the response head in the calling goroutine, on a
// pooled keep-alive connection: no goroutine per connection and no hand-off
// between goroutines per request, which is most of what net/http's
// Transport costs a proxy. Other requests go to fallback.
//
// Connections are pooled by address and expected peer identity (mTLS to
// other proxies), like meshPool.
type h1Client struct {
	dial        func(ctx context.Context, key poolKey) (net.Conn, error)
	fallback    http.RoundTripper
	maxIdle     int
	idleTimeout time.Duration
	// checkAlways: check every idle connection for a close or stray bytes
	// before reuse, not only after a second idle. For applications, whose
	// responses may not end where they say; between proxies the peer is
	// meshlet's own server, which frames every response exactly.
	checkAlways bool
	// maxConns bounds the connections open per key (0: no bound). A
	// request that finds them all busy goes to overflow instead: between
	// proxies, the endpoint's one multiplexed HTTP/2 connection, so a burst
	// of concurrent requests does not become a burst of TLS handshakes.
	maxConns int
	overflow func(*http.Request) (*http.Response, error)

	mu     sync.Mutex
	idle   map[poolKey][]*h1ClientConn
	open   map[poolKey]int // connections dialled and not yet closed
	closed bool
}

var errPoolFull = errors.New("every connection to the endpoint is busy")

// h1ClientConn is one pooled upstream connection.
type h1ClientConn struct {
	c         net.Conn
	closed    bool // discard ran
	r         readTracker
	w         writeTracker
	br        *bufio.Reader
	bw        *bufio.Writer
	key       poolKey
	idleSince time.Time
}

// readTracker notes whether anything was read since it was reset (a pooled
// connection that ends before the first byte of a response was most likely
// closed by the server while idle), and bounds what a response head may
// read when limit is positive.
type readTracker struct {
	c     net.Conn
	read  bool
	limit int64 // bytes left for the response head; 0: no limit
}

var errHeadTooLarge = errors.New("response head too large")

func (t *readTracker) Read(b []byte) (int, error) {
	if t.limit > 0 && int64(len(b)) > t.limit {
		b = b[:t.limit]
	}
	n, err := t.c.Read(b)
	if n > 0 {
		t.read = true
		if t.limit > 0 {
			if t.limit -= int64(n); t.limit == 0 {
				t.limit = -1
			}
		}
	}
	if t.limit < 0 && err == nil {
		err = errHeadTooLarge
	}
	return n, err
}

// writeTracker counts what reached the connection: a request none of whose
// bytes were written can go again on another connection, whatever its
// method.
type writeTracker struct {
	c net.Conn
	n int64
}

func (t *writeTracker) Write(b []byte) (int, error) {
	n, err := t.c.Write(b)
	t.n += int64(n)
	return n, err
}

// maxResponseHead bounds a response head read by net/http's parser
// (interim responses included), as the Transport's MaxResponseHeaderBytes.
const (
	maxResponseHead = 1 << 20
	maxInterim      = 8
)

var (
	errNothingRead = errors.New("connection closed before any response byte")
	aLongTimeAgo   = time.Unix(1, 0)
)

// RoundTrip implements http.RoundTripper.
func (t *h1Client) RoundTrip(req *http.Request) (*http.Response, error) {
	if !fastH1(req, nil) || req.Header["Upgrade"] != nil {
		return t.fallback.RoundTrip(req)
	}
	if err := validRequest(req); err != nil {
		return nil, err
	}
	key := poolKey{addr: req.URL.Host}
	if c, _ := req.Context().Value(callKey{}).(*call); c != nil {
		key.identity = c.identity
	}
	ctx := req.Context()
	check := t.checkAlways || !replayable(req)
	pc, reused, err := t.get(ctx, key, check, true)
	if errors.Is(err, errPoolFull) {
		return t.overflow(req)
	}
	if err != nil {
		return nil, err
	}
	var body []byte
	if req.Body != nil && req.ContentLength > 0 {
		bp := bodyPool.Get().(*[maxFastBody]byte)
		defer bodyPool.Put(bp)
		body = bp[:req.ContentLength]
		if _, err := io.ReadFull(req.Body, body); err != nil {
			t.put(pc) // nothing was sent on it
			return nil, err
		}
	}
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if pc, reused, err = t.get(ctx, key, check, false); err != nil {
				return nil, err
			}
		}
		res, err := pc.roundTrip(ctx, req, body, t)
		if err == nil {
			return res, nil
		}
		t.discard(pc)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		// A reused connection that failed before any response byte was
		// most likely closed by the server while idle: the request goes
		// once more on a fresh connection if none of it was written, or if
		// sending it twice is harmless (net/http's rules).
		if reused && attempt == 0 && (errors.Is(err, errNothingWritten) || (errors.Is(err, errNothingRead) && replayable(req))) {
			continue
		}
		return nil, err
	}
}

var bodyPool = sync.Pool{New: func() any { return new([maxFastBody]byte) }}

var errNothingWritten = errors.New("connection failed before any request byte was written")

// replayable reports a request that may be sent twice, by net/http's rule:
// a safe method, or one that carries an idempotency key.
func replayable(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	_, key := req.Header["Idempotency-Key"]
	_, xkey := req.Header["X-Idempotency-Key"]
	return key || xkey
}

// roundTrip sends req on pc and reads the response head. The response body
// is read by the caller; pc goes back to the pool when it ends cleanly.
func (pc *h1ClientConn) roundTrip(ctx context.Context, req *http.Request, body []byte, t *h1Client) (*http.Response, error) {
	// Cancellation (client gone, request timeout) interrupts whatever
	// read or write is pending, up to the end of the response body.
	stop := context.AfterFunc(ctx, func() { pc.c.SetDeadline(aLongTimeAgo) })
	pc.w.n = 0
	if err := writeRequest(pc.bw, req, body); err != nil {
		stop()
		if pc.w.n == 0 {
			return nil, errors.Join(errNothingWritten, err)
		}
		return nil, err
	}
	pc.r.read = false
	for interim := 0; ; interim++ {
		head, err := peekHead(pc.br)
		if err != nil {
			stop()
			if !pc.r.read && (err == io.EOF || isReset(err)) {
				return nil, errNothingRead
			}
			return nil, err
		}
		if head != nil {
			if res, ok := parseResponseHead(head, req); ok {
				pc.br.Discard(len(head))
				b := &h1Body{pc: pc, t: t, stop: stop, reuse: !res.Close && !req.Close}
				b.fixed = fixedBody{br: pc.br, remain: res.ContentLength}
				b.rc = &b.fixed
				res.Body = b
				return res, nil
			}
		}
		pc.r.limit = maxResponseHead
		res, err := http.ReadResponse(pc.br, req)
		pc.r.limit = 0
		if err != nil {
			stop()
			if !pc.r.read && (err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) || isReset(err)) {
				return nil, errNothingRead
			}
			return nil, err
		}
		if res.StatusCode >= 100 && res.StatusCode < 200 {
			if res.StatusCode == http.StatusSwitchingProtocols {
				stop()
				return nil, errors.New("101 Switching Protocols to a request without Upgrade")
			}
			if interim == maxInterim {
				stop()
				return nil, errors.New("too many interim responses")
			}
			continue // interim responses (103 Early Hints) are dropped, as net/http's Transport does
		}
		res.Body = &h1Body{rc: res.Body, pc: pc, t: t, stop: stop, reuse: !res.Close && !req.Close}
		return res, nil
	}
}

// h1Body hands the connection back to the pool when the body ends cleanly
// (and closes it otherwise).
type h1Body struct {
	rc    io.ReadCloser
	fixed fixedBody // rc, for a body the fast path framed
	pc    *h1ClientConn
	t     *h1Client
	stop  func() bool
	reuse bool
	done  bool
	err   error // what ended the body (io.EOF when it ended cleanly)
}

func (b *h1Body) Read(p []byte) (int, error) {
	if b.done {
		return 0, b.err
	}
	n, err := b.rc.Read(p)
	if err != nil {
		b.err = err
		b.finish(err == io.EOF)
	}
	return n, err
}

func (b *h1Body) Close() error {
	if !b.done {
		b.err = errors.New("httpproxy: read on a closed response body")
		b.finish(false)
	}
	return nil
}

func (b *h1Body) finish(clean bool) {
	b.done = true
	// stop reports false when the cancellation already ran (or is
	// running): the connection's deadline is then in the past.
	// Bytes already buffered beyond the body belong to no response: the
	// connection cannot be reused (net/http closes it too).
	if b.stop() && clean && b.reuse && b.pc.br.Buffered() == 0 {
		b.t.put(b.pc)
		return
	}
	b.t.discard(b.pc)
}

// get returns an idle connection for key (reused) or dials a new one. An
// idle connection is first checked for a close by the server when it idled
// for over a second, and always for a request that must not be sent twice
// (check): net/http's Transport learns of such closes from the read loop it
// runs on every connection; this pool has none.
//
// With bounded set and maxConns connections to key open and busy, it
// returns errPoolFull instead of dialling.
func (t *h1Client) get(ctx context.Context, key poolKey, check, bounded bool) (*h1ClientConn, bool, error) {
	now := time.Now()
	for {
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			return nil, false, errPoolClosed
		}
		conns := t.idle[key]
		if len(conns) == 0 {
			if bounded && t.maxConns > 0 && t.open[key] >= t.maxConns && t.overflow != nil {
				t.mu.Unlock()
				return nil, false, errPoolFull
			}
			if t.open == nil {
				t.open = make(map[poolKey]int)
			}
			t.open[key]++ // this dial's, until discard
			t.mu.Unlock()
			break
		}
		pc := conns[len(conns)-1]
		conns[len(conns)-1] = nil
		t.idle[key] = conns[:len(conns)-1]
		t.mu.Unlock()
		idle := now.Sub(pc.idleSince)
		if idle > t.idleTimeout || ((check || idle > time.Second) && !connAlive(pc.c)) {
			t.discard(pc)
			continue
		}
		return pc, true, nil
	}
	c, err := t.dial(ctx, key)
	if err != nil {
		t.mu.Lock()
		t.forget(key)
		t.mu.Unlock()
		return nil, false, err
	}
	pc := &h1ClientConn{c: c, key: key}
	pc.r.c, pc.w.c = c, c
	pc.br = bufio.NewReaderSize(&pc.r, 8<<10)
	pc.bw = bufio.NewWriterSize(&pc.w, 8<<10)
	return pc, false, nil
}

func (t *h1Client) put(pc *h1ClientConn) {
	pc.idleSince = time.Now()
	t.mu.Lock()
	if t.closed || len(t.idle[pc.key]) >= t.maxIdle {
		t.mu.Unlock()
		t.discard(pc)
		return
	}
	if t.idle == nil {
		t.idle = make(map[poolKey][]*h1ClientConn)
	}
	t.idle[pc.key] = append(t.idle[pc.key], pc)
	t.mu.Unlock()
}

// discard closes pc for good.
func (t *h1Client) discard(pc *h1ClientConn) {
	if pc.closed {
		return
	}
	pc.closed = true
	pc.c.Close()
	t.mu.Lock()
	t.forget(pc.key)
	t.mu.Unlock()
}

// forget counts one connection to key less; t.mu is held.
func (t *h1Client) forget(key poolKey) {
	if t.open[key]--; t.open[key] <= 0 {
		delete(t.open, key)
	}
}

// sweep closes connections idle for longer than the idle timeout.
func (t *h1Client) sweep() {
	cutoff := time.Now().Add(-t.idleTimeout)
	var old []*h1ClientConn
	t.mu.Lock()
	for k, conns := range t.idle {
		i := 0
		for i < len(conns) && conns[i].idleSince.Before(cutoff) { // oldest first
			i++
		}
		if i == 0 {
			continue
		}
		old = append(old, conns[:i]...)
		if i == len(conns) {
			delete(t.idle, k)
		} else {
			t.idle[k] = append(conns[:0:0], conns[i:]...)
		}
	}
	t.mu.Unlock()
	for _, pc := range old {
		t.discard(pc)
	}
}

func (t *h1Client) close() {
	t.mu.Lock()
	t.closed = true
	idle := t.idle
	t.idle = nil
	t.mu.Unlock()
	for _, conns := range idle {
		for _, pc := range conns {
			t.discard(pc)
		}
	}
}

// fixedBody reads a response body of known length.
type fixedBody struct {
	br     *bufio.Reader
	remain int64
}

func (b *fixedBody) Read(p []byte) (int, error) {
	if b.remain <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.remain {
		p = p[:b.remain]
	}
	n, err := b.br.Read(p)
	b.remain -= int64(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err == nil && b.remain == 0 {
		err = io.EOF
	}
	return n, err
}

func (b *fixedBody) Close() error { return nil }

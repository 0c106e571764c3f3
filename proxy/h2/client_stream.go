package h2

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// clientStream is one request on a ClientConn.
type clientStream struct {
	cc      *ClientConn
	id      uint32
	req     *http.Request
	send    streamSend // guarded by cc.send.mu
	recv    recvFlow
	body    *pipe // the response body, under mu; nil until headers, or if there is none
	declLen int64
	got     int64
	trailer http.Header // trailers received, handed to the Response at EOF

	mu       sync.Mutex
	ready    chan struct{} // closed once res or err is set
	res      *http.Response
	err      error
	isReady  bool
	finished bool

	gotHeaders  bool // reader goroutine
	remoteDone  bool // reader goroutine
	remoteEnded atomic.Bool
	localDone   atomic.Bool // END_STREAM sent, or the stream reset
	stopCtx     func() bool
}

var errRequestBodyWrite = errors.New("h2: request body write failed")

// nowReader is a body that can hand over what it already has without
// waiting (the server's request bodies): a body complete at RoundTrip goes
// out with the headers, in the caller's goroutine.
type nowReader interface {
	ReadNow(p []byte) (int, error)
}

func (cc *ClientConn) roundTrip(req *http.Request) (*http.Response, error) {
	if req.URL == nil {
		closeBody(req)
		return nil, errors.New("h2: request without a URL")
	}
	cc.mu.Lock()
	switch {
	case cc.gone != nil:
		err := cc.gone
		if cc.reserved > 0 {
			cc.reserved--
		}
		cc.mu.Unlock()
		closeBody(req)
		return nil, fmt.Errorf("%w (%v)", ErrNotSent, err)
	case cc.reserved > 0:
		cc.reserved--
	case cc.active >= int(cc.maxConc):
		cc.mu.Unlock()
		closeBody(req)
		return nil, fmt.Errorf("%w: the server's stream limit is reached", ErrNotSent)
	}
	cc.active++
	cc.mu.Unlock()

	cs := &clientStream{cc: cc, req: req, ready: make(chan struct{}), declLen: -1}
	cs.recv.size = int64(cc.streamWindow)
	cs.recv.win.Store(int64(cc.streamWindow))
	hasBody := req.Body != nil && req.Body != http.NoBody
	trailers := req.Trailer
	if len(trailers) == 0 {
		trailers = nil
	}

	// A body that is already complete goes with the headers. It is read
	// before taking this connection's lock: reading returns flow-control
	// credit on the downstream connection, which may have to wait for it.
	var first []byte
	var bp *[]byte
	var rerr error
	eof := !hasBody
	if nr, ok := req.Body.(nowReader); ok && hasBody {
		bp = writeBufPool.Get().(*[]byte)
		b := (*bp)[:cap(*bp)]
		var n int
		n, rerr = nr.ReadNow(b)
		first = b[:n]
		eof = rerr == io.EOF
		if eof {
			rerr = nil
		}
	}

	w := cc.w
	w.lock()
	cc.mu.Lock()
	if cc.gone != nil || cc.nextID >= maxStreamID {
		err := cc.gone
		cc.mu.Unlock()
		w.unlock()
		cs.finishSlot()
		closeBody(req)
		if bp != nil {
			writeBufPool.Put(bp)
		}
		if len(first) > 0 || eof && hasBody {
			return nil, fmt.Errorf("h2: %w (%v)", ErrRefused, err) // the body was read: not as is
		}
		return nil, fmt.Errorf("%w (%v)", ErrNotSent, err)
	}
	cs.id = cc.nextID
	cc.nextID += 2
	cc.streams[cs.id] = cs
	cc.mu.Unlock()
	cc.send.open(&cs.send)
	inline := rerr == nil && eof && len(first) <= int(w.maxSend.Load()) && cc.send.tryTake(&cs.send, len(first))
	endOnHeaders := !hasBody || inline && len(first) == 0 && trailers == nil
	if rerr == nil {
		w.writeHeaders(cs.id, endOnHeaders, cs.encodeHeaders)
	}
	if inline && !endOnHeaders {
		w.writeData(cs.id, trailers == nil, first)
		if trailers != nil {
			w.writeHeaders(cs.id, true, func(enc *encoder) { encodeHeader(enc, trailers, nil) })
		}
	}
	err := w.unlock()
	if err == nil {
		err = rerr
	}
	if err != nil {
		if bp != nil {
			writeBufPool.Put(bp)
		}
		closeBody(req)
		cs.fail(fmt.Errorf("h2: writing the request: %w", err), false)
		if rerr == nil {
			cc.close(err) // a connection that cannot be written to takes no more requests
		}
		return cs.result()
	}
	if inline || !hasBody {
		if bp != nil {
			writeBufPool.Put(bp)
		}
		if hasBody {
			closeBody(req)
		}
		cs.localEnd()
	} else {
		go cs.writeBody(first, bp, trailers)
	}

	return cs.result()
}

// result waits for the response or the error that ended the stream. The
// end of the request's context resets the stream: while waiting here, and
// afterwards (context.AfterFunc) if the stream is still open once the
// response came. A unary response usually arrives complete, so it costs no
// AfterFunc.
func (cs *clientStream) result() (*http.Response, error) {
	ctx := cs.req.Context()
	done := ctx.Done()
	if done == nil {
		<-cs.ready
	} else {
		select {
		case <-cs.ready:
		case <-done:
			cs.abort(context.Cause(ctx))
			<-cs.ready
		}
	}
	if cs.err != nil {
		return nil, cs.err
	}
	if done != nil {
		cs.mu.Lock()
		if !cs.finished {
			cs.stopCtx = context.AfterFunc(ctx, func() { cs.abort(context.Cause(ctx)) })
		}
		cs.mu.Unlock()
	}
	return cs.res, nil
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// encodeHeaders writes the request's header block (lock held).
func (cs *clientStream) encodeHeaders(enc *encoder) {
	req := cs.req
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	enc.WriteField(hpack.HeaderField{Name: ":authority", Value: host})
	enc.WriteField(hpack.HeaderField{Name: ":method", Value: method})
	if method != http.MethodConnect {
		path := req.URL.RequestURI()
		if req.URL.Opaque == "" && req.URL.Path == "" && req.URL.RawQuery == "" {
			path = "/"
		}
		enc.WriteField(hpack.HeaderField{Name: ":path", Value: path})
		scheme := req.URL.Scheme
		if scheme == "" {
			scheme = "https"
		}
		enc.WriteField(hpack.HeaderField{Name: ":scheme", Value: scheme})
	}
	encodeHeader(enc, req.Header, skipRequestField)
	if req.ContentLength > 0 && req.Header["Content-Length"] == nil {
		enc.WriteField(hpack.HeaderField{Name: "content-length", Value: strconv.FormatInt(req.ContentLength, 10)})
	}
	if len(req.Trailer) > 0 {
		keys := make([]string, 0, len(req.Trailer))
		for k := range req.Trailer {
			keys = append(keys, lower(k))
		}
		enc.WriteField(hpack.HeaderField{Name: "trailer", Value: strings.Join(keys, ",")})
	}
}

// skipRequestField leaves out what the pseudo-headers carry, an empty
// User-Agent (the caller asked for none), and what RoundTrip adds itself.
func skipRequestField(k string) bool {
	return k == "host" || k == "trailer"
}

// writeBody sends the rest of the request body, starting with first.
func (cs *clientStream) writeBody(first []byte, bp *[]byte, trailers http.Header) {
	cc := cs.cc
	w := cc.w
	defer closeBody(cs.req)
	if bp == nil {
		bp = writeBufPool.Get().(*[]byte)
	}
	defer writeBufPool.Put(bp)
	buf := (*bp)[:cap(*bp)]
	chunk := first
	for {
		var rerr error
		if chunk == nil {
			var n int
			n, rerr = cs.req.Body.Read(buf)
			chunk = buf[:n]
		}
		eof := rerr == io.EOF
		if rerr != nil && !eof {
			cs.abortWith(fmt.Errorf("h2: reading the request body: %w", rerr))
			return
		}
		for len(chunk) > 0 || eof {
			var part []byte
			if len(chunk) > 0 {
				k, err := cc.send.take(&cs.send, min(len(chunk), int(w.maxSend.Load())))
				if err != nil {
					return // the stream ended
				}
				part = chunk[:k]
			}
			chunk = chunk[len(part):]
			end := eof && len(chunk) == 0
			w.lock()
			if cs.localDone.Load() {
				w.unlock()
				cc.send.add(nil, uint32(len(part))) // never sent: the window is still ours
				return
			}
			if len(part) > 0 || end && trailers == nil {
				w.writeData(cs.id, end && trailers == nil, part)
			}
			if end && trailers != nil {
				w.writeHeaders(cs.id, true, func(enc *encoder) { encodeHeader(enc, trailers, nil) })
			}
			err := w.unlock()
			if err != nil {
				cs.fail(fmt.Errorf("%w: %v", errRequestBodyWrite, err), false)
				cc.close(err) // a connection that cannot be written to takes no more requests
				return
			}
			if end {
				cs.localEnd()
				return
			}
		}
		chunk = nil
	}
}

// localEnd records that END_STREAM was sent.
func (cs *clientStream) localEnd() {
	cs.localDone.Store(true)
	if cs.remoteEnded.Load() {
		cs.finish()
	}
}

// deliver hands the response (with its body's pipe), or an error, to
// RoundTrip once.
func (cs *clientStream) deliver(res *http.Response, body *pipe, err error) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.isReady {
		return false
	}
	cs.isReady = true
	cs.res, cs.body, cs.err = res, body, err
	close(cs.ready)
	return true
}

func (cs *clientStream) pipe() *pipe {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.body
}

// fail ends the stream with err: RoundTrip returns it if the response has
// not arrived, the response body's reads do otherwise.
func (cs *clientStream) fail(err error, refused bool) {
	if refused {
		err = fmt.Errorf("h2: %w: %v", ErrRefused, err)
	}
	cs.cc.send.end(&cs.send, err)
	cs.localDone.Store(true)
	if cs.deliver(nil, nil, err) {
		// RoundTrip returns err.
	} else if body := cs.pipe(); body != nil {
		if n := body.breakWithError(err); n > 0 {
			cs.cc.returnConn(int64(n))
		}
	}
	cs.finish()
}

// lost ends a stream the connection or the server gave up on (reader
// goroutine). A response already complete is kept: only its request side
// ends, and the caller still reads the body to EOF.
func (cs *clientStream) lost(err error, refused bool) {
	if cs.remoteDone {
		cs.cc.send.end(&cs.send, err)
		cs.localDone.Store(true)
		cs.finish()
		return
	}
	cs.fail(err, refused)
}

// abort is the request's context ending: the stream is reset (CANCEL).
func (cs *clientStream) abort(cause error) {
	if cause == nil {
		cause = context.Canceled
	}
	cs.abortWith(cause)
}

func (cs *clientStream) abortWith(err error) {
	cs.mu.Lock()
	done := cs.finished
	cs.mu.Unlock()
	if done {
		return
	}
	cs.fail(err, false)
	cs.cc.w.queueRST(cs.id, http2.ErrCodeCancel)
	cs.cc.w.kick()
}

// resetByServer handles the server's RST_STREAM.
func (cs *clientStream) resetByServer(code http2.ErrCode) {
	if code == http2.ErrCodeNo && cs.remoteDone {
		// The response is complete; the server needs no more of the request.
		cs.cc.send.end(&cs.send, errStreamClosed)
		cs.localDone.Store(true)
		cs.finish()
		return
	}
	refused := code == http2.ErrCodeRefusedStream && !cs.gotHeaders
	cs.lost(errStreamReset(code), refused)
}

// finish releases the stream's slot once both sides ended.
func (cs *clientStream) finish() {
	cs.mu.Lock()
	if cs.finished {
		cs.mu.Unlock()
		return
	}
	cs.finished = true
	stop := cs.stopCtx
	cs.mu.Unlock()
	if stop != nil {
		stop()
	}
	cc := cs.cc
	cc.mu.Lock()
	if cc.streams[cs.id] == cs {
		delete(cc.streams, cs.id)
	}
	cc.mu.Unlock()
	cs.finishSlot()
}

func (cs *clientStream) finishSlot() {
	cc := cs.cc
	cc.mu.Lock()
	cc.active--
	if cc.active == 0 {
		cc.idleSince = time.Now()
	}
	gone := cc.gone != nil && cc.active == 0
	cc.mu.Unlock()
	if gone {
		cc.c.Close()
	}
}

func (cs *clientStream) processHeaders(f *headerBlock) {
	cc := cs.cc
	if cs.remoteDone {
		cc.streamError(cs.id, http2.ErrCodeStreamClosed, errors.New("h2: server sent HEADERS after END_STREAM"))
		return
	}
	if f.Truncated {
		// Fields are missing: not delivered as if complete (a trailer block
		// without its grpc-status, say).
		cc.streamError(cs.id, http2.ErrCodeCancel, errors.New("h2: response header list larger than the advertised limit"))
		return
	}
	if cs.gotHeaders {
		if !f.StreamEnded() || len(f.PseudoFields()) > 0 {
			cc.streamError(cs.id, http2.ErrCodeProtocol, errors.New("h2: server sent malformed trailers"))
			return
		}
		if cs.declLen >= 0 && cs.got != cs.declLen {
			cc.streamError(cs.id, http2.ErrCodeProtocol, errors.New("h2: response body shorter than its content-length"))
			return
		}
		for _, hf := range f.RegularFields() {
			if cs.trailer == nil {
				cs.trailer = make(http.Header)
			}
			k := http.CanonicalHeaderKey(hf.Name)
			cs.trailer[k] = append(cs.trailer[k], hf.Value)
		}
		cs.remoteEnd()
		return
	}
	status := f.PseudoValue("status")
	code, err := strconv.Atoi(status)
	if len(status) != 3 || err != nil || len(f.PseudoFields()) != 1 {
		cc.streamError(cs.id, http2.ErrCodeProtocol, fmt.Errorf("h2: server sent malformed response headers (:status %q)", status))
		return
	}
	if code < 200 {
		if f.StreamEnded() || code == http.StatusSwitchingProtocols {
			cc.streamError(cs.id, http2.ErrCodeProtocol, fmt.Errorf("h2: server sent an invalid %d response", code))
		}
		return // interim responses are not forwarded
	}
	h := headerOf(f.RegularFields(), nil)
	res := &http.Response{
		Status: statusLine(code, status), StatusCode: code,
		Proto: "HTTP/2.0", ProtoMajor: 2, Header: h, ContentLength: -1, Request: cs.req,
	}
	if vv := h["Content-Length"]; len(vv) > 0 {
		n, err := strconv.ParseUint(vv[0], 10, 63)
		if err != nil {
			cc.streamError(cs.id, http2.ErrCodeProtocol, fmt.Errorf("h2: server sent an invalid content-length %q", vv[0]))
			return
		}
		res.ContentLength = int64(n)
		if cs.req.Method != http.MethodHead {
			cs.declLen = int64(n)
		}
	}
	if vv := h["Trailer"]; len(vv) > 0 {
		res.Trailer = make(http.Header)
		declaredTrailers(vv, func(k string) { res.Trailer[k] = nil })
	}
	cs.gotHeaders = true
	if f.StreamEnded() {
		res.Body = http.NoBody
		if res.ContentLength < 0 {
			res.ContentLength = 0
		}
		if !cs.deliver(res, nil, nil) {
			return
		}
		cs.remoteEnd()
		return
	}
	body := &responseBody{cs: cs, res: res, p: newPipe()}
	res.Body = body
	cs.deliver(res, body.p, nil)
}

// remoteEnd records the server's END_STREAM (reader goroutine).
func (cs *clientStream) remoteEnd() {
	cs.remoteDone = true
	if body := cs.pipe(); body != nil {
		body.closeWithError(io.EOF)
	}
	cs.remoteEnded.Store(true)
	if cs.localDone.Load() {
		cs.finish()
	}
}

func (cs *clientStream) processData(f *http2.DataFrame, n int64) error {
	cc := cs.cc
	if !cs.gotHeaders || cs.remoteDone {
		cc.returnConn(n)
		cc.streamError(cs.id, http2.ErrCodeProtocol, errors.New("h2: server sent DATA before headers or after END_STREAM"))
		return nil
	}
	if !cs.recv.use(n) {
		cc.returnConn(n)
		cc.streamError(cs.id, http2.ErrCodeFlowControl, errors.New("h2: server overran the stream's window"))
		return nil
	}
	data := f.Data()
	cc.w.returnPadding(&cc.recv, &cs.recv, cs.id, n-int64(len(data)))
	cs.got += int64(len(data))
	if cs.declLen >= 0 && (cs.got > cs.declLen || f.StreamEnded() && cs.got != cs.declLen) {
		cc.returnConn(int64(len(data)))
		cc.streamError(cs.id, http2.ErrCodeProtocol, errors.New("h2: response body does not match its content-length"))
		return nil
	}
	if p := cs.pipe(); len(data) > 0 && (p == nil || !p.write(data)) {
		// No body: the request failed as its response arrived.
		cc.returnConn(int64(len(data)))
	}
	if f.StreamEnded() {
		cs.remoteEnd()
	}
	return nil
}

// responseBody is a response's body as the caller reads it.
type responseBody struct {
	cs     *clientStream
	p      *pipe
	res    *http.Response
	closed atomic.Bool
}

var errBodyClosed = errors.New("h2: read on a closed response body")

func (b *responseBody) Read(p []byte) (int, error) {
	if b.closed.Load() {
		return 0, errBodyClosed
	}
	cs := b.cs
	n, err := b.p.read(p)
	if n > 0 {
		cs.consumed(n)
	}
	if err == io.EOF {
		b.takeTrailers()
	}
	return n, err
}

// Ready reports whether a Read would return at once: a proxy copying the
// body flushes what it wrote only before a read that would wait.
func (b *responseBody) Ready() bool { return b.p.ready() }

func (b *responseBody) takeTrailers() {
	t := b.cs.trailer
	if t == nil {
		return
	}
	b.cs.trailer = nil
	if b.res.Trailer == nil {
		b.res.Trailer = t
		return
	}
	for k, vv := range t {
		b.res.Trailer[k] = vv
	}
}

func (b *responseBody) Close() error {
	if !b.closed.CompareAndSwap(false, true) {
		return nil
	}
	cs := b.cs
	if cs.remoteEnded.Load() {
		if n := b.p.breakWithError(errBodyClosed); n > 0 {
			cs.cc.returnConn(int64(n))
		}
		b.takeTrailers()
		return nil
	}
	cs.abortWith(errBodyClosed)
	return nil
}

func (cs *clientStream) consumed(n int) {
	cs.cc.w.consumed(&cs.cc.recv, &cs.recv, cs.id, n, !cs.remoteEnded.Load())
}

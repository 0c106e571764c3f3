package h2

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// serverStream is one request on a served connection.
type serverStream struct {
	sc        *serverConn
	id        uint32
	send      streamSend // guarded by sc.send.mu
	recv      recvFlow
	body      *pipe // nil when the request has no body
	declLen   int64 // the request's content-length, -1 if none
	got       int64 // body bytes received (reader goroutine)
	ctx       context.Context
	cancel    context.CancelCauseFunc
	trailer   http.Header // the request's Trailer (declared fields), filled as the handler reads EOF
	trailerIn http.Header // trailers received, until then (reader goroutine, then the handler's)

	remoteDone  bool        // END_STREAM received (reader goroutine)
	remoteEnded atomic.Bool // the same, for handlers
	reset       atomic.Bool // reset by either side: no more frames are sent
	responded   atomic.Bool // the response's HEADERS were sent
	expect      bool        // Expect: 100-continue, not yet answered

	// The handler's: its request and response.
	req      *http.Request
	rw       responseWriter
	tooLarge bool // the header list was over the limit: 431
}

func (st *serverStream) remoteDoneSeen() bool { return st.remoteEnded.Load() }

func (sc *serverConn) processHeaders(f *headerBlock) error {
	id := f.StreamID
	sc.mu.Lock()
	st := sc.streams[id]
	sc.mu.Unlock()
	if st != nil {
		return sc.processTrailers(st, f)
	}
	if id%2 == 0 {
		return connError{http2.ErrCodeProtocol, "even_stream_id"}
	}
	sc.mu.Lock()
	if id <= sc.maxID {
		// Not a stream of ours, and not a new one (RFC 9113 §5.1.1).
		sc.mu.Unlock()
		return connError{http2.ErrCodeProtocol, "stream_id_not_increasing"}
	}
	sc.maxID = id
	if sc.shutdown {
		sc.mu.Unlock()
		return nil // above the GOAWAY's last stream: ignored (RFC 9113 §6.8)
	}
	if len(sc.streams) >= int(sc.maxStreams) || sc.running >= int(sc.maxStreams) {
		// Over the limit; or handlers of streams the client reset are still
		// running, and a client resetting streams as fast as it opens them
		// (CVE-2023-44487) must not start more of them than the limit.
		sc.refused++
		flood := sc.refused > 4*int(sc.maxStreams)
		sc.mu.Unlock()
		if flood {
			return connError{http2.ErrCodeEnhanceYourCalm, "too_many_refused_streams"}
		}
		sc.streamError(id, http2.ErrCodeRefusedStream, "too_many_streams")
		return nil
	}
	sc.refused = 0
	sc.mu.Unlock()

	if f.HasPriority() && f.Priority.StreamDep == id {
		sc.streamError(id, http2.ErrCodeProtocol, "self_dependency") // RFC 9113 §5.3.1
		return nil
	}
	req, st, code, label := sc.newRequest(f)
	if req == nil {
		sc.streamError(id, code, label)
		return nil
	}
	st.req = req
	st.rw = responseWriter{st: st, header: make(http.Header), method: req.Method}
	if f.Truncated {
		sc.count("header_list_too_large")
		st.tooLarge = true
	}
	sc.mu.Lock()
	if sc.closing {
		// A shutdown found no stream while this one was being built, and
		// its GOAWAY promised to serve it: the connection stays open for it.
		sc.closing = false
		sc.c.SetReadDeadline(time.Time{})
	}
	sc.streams[id] = st
	sc.running++
	if len(sc.streams) == 1 && sc.idle != nil {
		sc.idle.Stop()
	}
	sc.mu.Unlock()
	sc.send.open(&st.send)
	sc.handlers.Add(1)
	sc.spawn(st)
	return nil
}

func headerTooLarge(w http.ResponseWriter, _ *http.Request) {
	http.Error(w, "request header list too large", http.StatusRequestHeaderFieldsTooLarge)
}

// processTrailers takes the HEADERS that end a request body.
func (sc *serverConn) processTrailers(st *serverStream, f *headerBlock) error {
	if st.remoteDone {
		sc.streamError(st.id, http2.ErrCodeStreamClosed, "headers_after_end_stream")
		return nil
	}
	if !f.StreamEnded() || len(f.PseudoFields()) > 0 {
		sc.streamError(st.id, http2.ErrCodeProtocol, "bad_trailers")
		return nil
	}
	if st.declLen >= 0 && st.got != st.declLen {
		sc.streamError(st.id, http2.ErrCodeProtocol, "content_length_mismatch")
		return nil
	}
	for _, hf := range f.RegularFields() {
		k := http.CanonicalHeaderKey(hf.Name)
		if !httpguts.ValidTrailerHeader(k) {
			sc.streamError(st.id, http2.ErrCodeProtocol, "bad_trailer")
			return nil
		}
		if st.trailerIn == nil {
			st.trailerIn = make(http.Header)
		}
		st.trailerIn[k] = append(st.trailerIn[k], hf.Value)
	}
	st.remoteDone = true
	st.remoteEnded.Store(true)
	st.body.closeWithError(io.EOF)
	return nil
}

// newRequest builds the request of a new stream from its HEADERS, or
// returns the stream error that refuses it.
func (sc *serverConn) newRequest(f *headerBlock) (*http.Request, *serverStream, http2.ErrCode, string) {
	var method, path, scheme, authority string
	for _, hf := range f.PseudoFields() {
		switch hf.Name {
		case ":method":
			method = hf.Value
		case ":path":
			path = hf.Value
		case ":scheme":
			scheme = hf.Value
		case ":authority":
			authority = hf.Value
		default: // :protocol (extended CONNECT is not offered) or a response's :status
			return nil, nil, http2.ErrCodeProtocol, "bad_pseudo_header"
		}
	}
	if method == "" || !validMethod(method) {
		return nil, nil, http2.ErrCodeProtocol, "bad_method"
	}
	isConnect := method == http.MethodConnect
	if isConnect {
		if path != "" || scheme != "" || authority == "" {
			return nil, nil, http2.ErrCodeProtocol, "bad_connect"
		}
	} else if path == "" || scheme == "" {
		return nil, nil, http2.ErrCodeProtocol, "missing_pseudo_header"
	}

	regular := f.RegularFields()
	var cookies []string
	for _, hf := range regular {
		if connectionSpecific(hf.Name) {
			return nil, nil, http2.ErrCodeProtocol, "connection_specific_header"
		}
		switch hf.Name {
		case "te":
			if hf.Value != "trailers" {
				return nil, nil, http2.ErrCodeProtocol, "bad_te"
			}
		case "cookie":
			cookies = append(cookies, hf.Value) // joined below (RFC 9113 §8.2.3)
		case "host":
			if authority == "" {
				authority = hf.Value
			}
		}
	}
	h := headerOf(regular, func(hf hpack.HeaderField) bool { return hf.Name == "cookie" || hf.Name == "host" })
	if len(cookies) == 1 {
		h["Cookie"] = cookies
	} else if len(cookies) > 1 {
		h["Cookie"] = []string{strings.Join(cookies, "; ")}
	}

	st := &serverStream{sc: sc, id: f.StreamID, declLen: -1}
	st.recv.size = int64(sc.streamWindow)
	st.recv.win.Store(int64(sc.streamWindow))
	if !sc.settingsAcked && sc.streamWindow < defaultWindow {
		// Until the client has our SETTINGS it may send up to the default
		// window (RFC 9113 §6.9.3); the acknowledgement takes the
		// difference back.
		st.recv.win.Store(defaultWindow)
	}
	ended := f.StreamEnded()
	if vv := h["Content-Length"]; len(vv) > 0 {
		n, err := strconv.ParseUint(vv[0], 10, 63)
		for _, v := range vv[1:] {
			if v != vv[0] {
				err = strconv.ErrSyntax
			}
		}
		if err != nil || ended && n != 0 {
			return nil, nil, http2.ErrCodeProtocol, "bad_content_length"
		}
		st.declLen = int64(n)
	}

	var u *url.URL
	var err error
	switch {
	case isConnect:
		u = &url.URL{Host: authority}
		path = authority
	case path == "*" && method == http.MethodOptions:
		u = &url.URL{Path: "*"}
	default:
		u, err = requestURL(path)
		if err != nil || path[0] != '/' {
			return nil, nil, http2.ErrCodeProtocol, "bad_path"
		}
	}

	st.ctx, st.cancel = context.WithCancelCause(sc.base)
	// Built on the stack and copied once by WithContext (the only way to
	// give a Request its context), which then is the one allocation.
	req := &http.Request{
		Method: method, URL: u, Proto: "HTTP/2.0", ProtoMajor: 2,
		Header: h, Host: authority, RequestURI: path, RemoteAddr: sc.remote, TLS: sc.tlsState,
		ContentLength: st.declLen,
	}
	if ended {
		st.remoteDone = true
		st.remoteEnded.Store(true)
		req.Body, req.ContentLength = http.NoBody, 0
	} else {
		st.body = newPipe()
		req.Body = &requestBody{st: st}
		if vv := h["Trailer"]; len(vv) > 0 {
			st.trailer = make(http.Header)
			declaredTrailers(vv, func(k string) { st.trailer[k] = nil })
			req.Trailer = st.trailer
		}
		if vv := h["Expect"]; len(vv) == 1 && strings.EqualFold(vv[0], "100-continue") {
			st.expect = true
		}
	}
	return req.WithContext(st.ctx), st, 0, ""
}

func validMethod(m string) bool {
	for i := 0; i < len(m); i++ {
		if !isTokenByte(m[i]) {
			return false
		}
	}
	return true
}

func isTokenByte(b byte) bool {
	return b < 127 && b > 32 && !strings.ContainsRune("()<>@,;:\\\"/[]?={}", rune(b))
}

// requestBody is a request's body as the handler reads it.
type requestBody struct {
	st     *serverStream
	closed atomic.Bool
}

func (b *requestBody) Read(p []byte) (int, error) {
	if b.closed.Load() {
		return 0, errHandlerDone
	}
	st := b.st
	if st.expect {
		st.expect = false
		st.sc.writeContinue(st)
	}
	n, err := st.body.read(p)
	if n > 0 {
		st.sc.consumed(st, n)
	}
	if err == io.EOF {
		st.takeTrailers()
	}
	return n, err
}

// ReadNow reads only what has already arrived: (0, nil) when nothing has.
// A proxy forwarding the body uses it to send a body that is already
// complete with the request's headers.
func (b *requestBody) ReadNow(p []byte) (int, error) {
	if b.closed.Load() {
		return 0, errHandlerDone
	}
	st := b.st
	if st.expect {
		return 0, nil
	}
	n, err := st.body.readNow(p)
	if n > 0 {
		st.sc.consumed(st, n)
	}
	if err == io.EOF {
		st.takeTrailers()
	}
	return n, err
}

// takeTrailers fills the request's Trailer, in the goroutine reading the
// body, once it read EOF: the trailers the client declared (others are
// dropped, as the handler's request copies share only the declared map).
func (st *serverStream) takeTrailers() {
	if st.trailer == nil || st.trailerIn == nil {
		return
	}
	for k, vv := range st.trailerIn {
		if _, declared := st.trailer[k]; declared {
			st.trailer[k] = vv
		}
	}
	st.trailerIn = nil
}

func (b *requestBody) Close() error {
	if b.closed.CompareAndSwap(false, true) {
		if n := b.st.body.breakWithError(errHandlerDone); n > 0 {
			b.st.sc.returnConn(int64(n))
		}
	}
	return nil
}

func (sc *serverConn) writeContinue(st *serverStream) {
	sc.w.lock()
	if !st.reset.Load() && !st.responded.Load() {
		sc.w.writeHeaders(st.id, false, func(enc *encoder) {
			enc.WriteField(hpack.HeaderField{Name: ":status", Value: "100"})
		})
	}
	sc.w.unlock()
}

// runHandler serves one request and ends its stream.
func (sc *serverConn) runHandler(st *serverStream) {
	rw, req := &st.rw, st.req
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler && sc.s.ErrorLog != nil {
				sc.s.ErrorLog("h2: handler panic", "panic", v)
			}
			sc.mu.Lock()
			known := sc.streams[st.id] == st
			sc.mu.Unlock()
			if known {
				sc.streamError(st.id, http2.ErrCodeInternal, "handler_abort")
			}
		}
		if b, ok := req.Body.(*requestBody); ok {
			b.Close()
		}
		st.cancel(errStreamClosed)
		sc.mu.Lock()
		sc.running--
		sc.mu.Unlock()
		sc.handlers.Done()
	}()
	if st.tooLarge {
		headerTooLarge(rw, req)
	} else {
		sc.s.Handler.ServeHTTP(rw, req)
	}
	rw.finish()
}

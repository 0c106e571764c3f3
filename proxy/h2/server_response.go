package h2

import (
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// responseWriter is the handler's view of a stream's response. Body bytes
// are buffered up to writeBufSize and sent when it fills, on Flush, and
// when the handler returns, so that a small response leaves as one HEADERS
// and one DATA frame in a single write.
type responseWriter struct {
	st     *serverStream
	header http.Header
	method string

	status      int
	wroteHeader bool // the final status is set
	sentHeader  bool // its HEADERS frame was written
	noBody      bool // HEAD, 204, 304
	done        bool // the handler returned, or the stream ended
	buf         *[]byte
}

const writeBufSize = 16 << 10

var writeBufPool = sync.Pool{New: func() any { b := make([]byte, 0, writeBufSize); return &b }}

var errStreamEnded = errors.New("h2: response written after its stream ended")

func (rw *responseWriter) Header() http.Header { return rw.header }

// SetHeader makes h the response's header map, in place of the one Header
// returned, which must not be used any more; h is the handler's to give up
// (a proxy passing on the header of the response it got, without copying
// it field by field). It does nothing once WriteHeader was called, or when
// h is nil.
func (rw *responseWriter) SetHeader(h http.Header) {
	if !rw.wroteHeader && !rw.done && h != nil {
		rw.header = h
	}
}

func (rw *responseWriter) WriteHeader(code int) {
	if rw.wroteHeader || rw.done {
		return
	}
	if code < 100 || code > 999 {
		panic("h2: invalid WriteHeader code " + strconv.Itoa(code))
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		rw.writeInterim(code)
		return
	}
	rw.status, rw.wroteHeader = code, true
	rw.noBody = rw.method == http.MethodHead || code == http.StatusNoContent || code == http.StatusNotModified
}

// writeInterim sends a 1xx response with the current header.
func (rw *responseWriter) writeInterim(code int) {
	st := rw.st
	w := st.sc.w
	w.lock()
	if !st.reset.Load() {
		w.writeHeaders(st.id, false, func(enc *encoder) {
			enc.WriteField(hpack.HeaderField{Name: ":status", Value: statusText(code)})
			encodeHeader(enc, rw.header, nil)
		})
	}
	w.unlock()
}

func (rw *responseWriter) Write(p []byte) (int, error) {
	if rw.done {
		return 0, errStreamEnded
	}
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	if rw.noBody {
		if rw.method == http.MethodHead {
			return len(p), nil // discarded, as net/http does
		}
		return 0, http.ErrBodyNotAllowed
	}
	if rw.buf == nil {
		rw.buf = writeBufPool.Get().(*[]byte)
	}
	b := *rw.buf
	if len(b)+len(p) <= cap(b) {
		*rw.buf = append(b, p...)
		return len(p), nil
	}
	// Send what is buffered and p, without copying p.
	if err := rw.send(b, false); err != nil {
		return 0, err
	}
	*rw.buf = b[:0]
	if err := rw.send(p, false); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (rw *responseWriter) WriteString(s string) (int, error) {
	return rw.Write([]byte(s))
}

// Flush sends the headers and buffered body now.
func (rw *responseWriter) Flush() { _ = rw.FlushError() }

func (rw *responseWriter) FlushError() error {
	if rw.done {
		return errStreamEnded
	}
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	var b []byte
	if rw.buf != nil {
		b = *rw.buf
		*rw.buf = b[:0]
	}
	if len(b) == 0 && rw.sentHeader {
		return nil
	}
	return rw.send(b, false)
}

// finish ends the response as the handler returns: headers if unsent,
// buffered body, then END_STREAM on the last DATA or on the trailers.
func (rw *responseWriter) finish() {
	if rw.done {
		return
	}
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	var b []byte
	if rw.buf != nil {
		b = *rw.buf
	}
	err := rw.send(b, true)
	rw.done = true
	if rw.buf != nil {
		*rw.buf = (*rw.buf)[:0]
		writeBufPool.Put(rw.buf)
		rw.buf = nil
	}
	st := rw.st
	sc := st.sc
	if err != nil {
		return // the stream was reset, or the connection failed
	}
	sc.mu.Lock()
	known := sc.streams[st.id] == st
	sc.mu.Unlock()
	if !known {
		return
	}
	if !st.remoteDoneSeen() {
		// The response is complete before the request: the client may stop
		// sending (RFC 9113 §8.1).
		sc.w.queueRST(st.id, http2.ErrCodeNo)
		sc.w.kick()
	}
	sc.closeStream(st, errStreamClosed)
}

// send writes data (and the headers, if not yet sent) as DATA frames
// within the flow-control windows; with end, the last frame ends the
// stream, carrying the trailers if there are any.
func (rw *responseWriter) send(data []byte, end bool) error {
	st := rw.st
	sc := st.sc
	w := sc.w
	var trailers http.Header
	if end {
		trailers = rw.trailers()
	}
	for first := true; first || len(data) > 0; first = false {
		chunk := data
		if len(chunk) > 0 {
			max := int(w.maxSend.Load())
			k, err := sc.send.take(&st.send, min(len(chunk), max))
			if err != nil {
				return err
			}
			chunk = chunk[:k]
		}
		data = data[len(chunk):]
		last := len(data) == 0
		w.lock()
		if st.reset.Load() {
			w.unlock()
			// The peer never sees these bytes: the connection's window
			// they were taken from is still the peer's to count.
			sc.send.add(nil, uint32(len(chunk)))
			return errStreamEnded
		}
		if !rw.sentHeader {
			rw.sentHeader = true
			st.responded.Store(true)
			headersEnd := end && last && len(chunk) == 0 && trailers == nil
			w.writeHeaders(st.id, headersEnd, rw.encodeHeaders)
			if headersEnd {
				return w.unlock()
			}
		}
		if len(chunk) > 0 || last && end && trailers == nil {
			w.writeData(st.id, last && end && trailers == nil, chunk)
		}
		if last && end && trailers != nil {
			w.writeHeaders(st.id, true, func(enc *encoder) { encodeHeader(enc, trailers, nil) })
		}
		if err := w.unlock(); err != nil {
			return err
		}
	}
	return nil
}

// encodeHeaders writes the response head. It may go out after
// WriteHeader (the first send is delayed to share a write with the body),
// when the handler has already set the values of declared trailers: those
// names are left out of the head, as net/http leaves out what was set after
// WriteHeader.
func (rw *responseWriter) encodeHeaders(enc *encoder) {
	enc.WriteField(hpack.HeaderField{Name: ":status", Value: statusText(rw.status)})
	var skip func(string) bool
	if decl := rw.header["Trailer"]; len(decl) > 0 {
		var names []string
		declaredTrailers(decl, func(k string) { names = append(names, lower(k)) })
		skip = func(k string) bool { return slices.Contains(names, k) }
	}
	encodeHeader(enc, rw.header, skip)
}

// trailers returns the trailers to send: declared ones (in the Trailer
// header) and those set with http.TrailerPrefix; nil if none has a value.
func (rw *responseWriter) trailers() http.Header {
	var t http.Header
	set := func(k string, vv []string) {
		if len(vv) == 0 {
			return
		}
		if t == nil {
			t = make(http.Header)
		}
		t[k] = vv
	}
	if decl := rw.header["Trailer"]; len(decl) > 0 {
		declaredTrailers(decl, func(k string) { set(k, rw.header[k]) })
	}
	for k, vv := range rw.header {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			set(http.CanonicalHeaderKey(k[len(http.TrailerPrefix):]), vv)
		}
	}
	return t
}

func statusText(code int) string {
	switch code {
	case 200:
		return "200"
	case 204:
		return "204"
	case 404:
		return "404"
	case 500:
		return "500"
	case 502:
		return "502"
	case 503:
		return "503"
	}
	return strconv.Itoa(code)
}

package httpproxy

import (
	"bufio"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// pendingMax is how much of a response body the fast writer holds back
// before committing the head: a body that ends within it gets a
// Content-Length, and goes out with the head in one write (as net/http).
const pendingMax = 4 << 10

// h1Writer is the fast path's http.ResponseWriter. It frames the response
// as net/http's server does: the head is written lazily; Content-Length
// when known (or when the whole body fits in pendingMax), chunked
// otherwise for HTTP/1.1 with trailers at the end, and close-delimited for
// HTTP/1.0.
type h1Writer struct {
	bw       *bufio.Writer
	header   http.Header
	req      *reqHead
	body     *h1ReqBody   // the request's, nil if none
	draining *atomic.Bool // the server drains: the response asks the client to close

	status     int
	committed  bool
	noBody     bool // HEAD, 204, 304
	chunked    bool
	closeAfter bool  // the connection ends after this response
	length     int64 // declared Content-Length, -1 if none
	written    int64
	pending    []byte // body bytes held back before the head is committed
	err        error  // first write error: the client is gone
}

var errResponseTooLong = errors.New("httpproxy: response body longer than its Content-Length")

func (w *h1Writer) Header() http.Header { return w.header }

func (w *h1Writer) WriteHeader(code int) {
	if w.status != 0 || code < 200 || code > 999 {
		return // interim responses do not reach the fast path; a second status is ignored, as net/http does
	}
	w.status = code
}

func (w *h1Writer) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return 0, w.err
	}
	if !w.committed {
		if w.req.method == http.MethodHead {
			return len(b), nil // dropped, as net/http does
		}
		if w.bodyForbidden() {
			return 0, http.ErrBodyNotAllowed
		}
		if len(w.pending)+len(b) <= pendingMax {
			w.pending = append(w.pending, b...)
			return len(b), nil
		}
		w.commit(false)
	}
	return w.writeBody(b)
}

func (w *h1Writer) writeBody(b []byte) (int, error) {
	if w.noBody {
		if w.req.method == http.MethodHead {
			return len(b), nil
		}
		return 0, http.ErrBodyNotAllowed
	}
	if w.length >= 0 && w.written+int64(len(b)) > w.length {
		w.closeAfter = true
		return 0, errResponseTooLong
	}
	if len(b) == 0 {
		return 0, nil
	}
	w.written += int64(len(b))
	if w.chunked {
		w.bw.Write(strconv.AppendInt(w.bw.AvailableBuffer(), int64(len(b)), 16))
		w.bw.WriteString("\r\n")
	}
	n, err := w.bw.Write(b)
	if w.chunked && err == nil {
		_, err = w.bw.WriteString("\r\n")
	}
	if err != nil {
		w.err = &proxyError{reason: reasonClientGone, err: err}
		return n, w.err
	}
	return n, nil
}

// Flush sends what is buffered; the head is committed first, so a stream
// of unknown length is chunked.
func (w *h1Writer) Flush() {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(false)
	}
	if err := w.bw.Flush(); err != nil && w.err == nil {
		w.err = &proxyError{reason: reasonClientGone, err: err}
	}
}

func (w *h1Writer) bodyForbidden() bool {
	return w.req.method == http.MethodHead || w.status == http.StatusNoContent || w.status == http.StatusNotModified
}

// commit writes the head, choosing the framing, then the held-back body.
// final: the handler returned, so the held-back body is all of it.
func (w *h1Writer) commit(final bool) {
	w.committed = true
	h := w.header
	w.noBody = w.bodyForbidden()
	w.length = -1
	if v := h[hdrContentLength]; len(v) == 1 {
		if n, ok := parseLength(v[0]); ok {
			w.length = n
		} else {
			delete(h, hdrContentLength)
		}
	} else if len(v) > 1 {
		delete(h, hdrContentLength)
	}
	delete(h, hdrTransferEncoder)
	// Trailers the handler declared get their values after the body: a
	// value already in the header now is not sent as a header, and the
	// response is chunked so they can follow it.
	declared := h[hdrTrailer]
	keepAlive10 := false
	switch {
	case w.noBody:
	case w.length >= 0:
	case final && (len(declared) == 0 || w.req.minor == 0):
		w.length = int64(len(w.pending))
		h[hdrContentLength] = []string{strconv.Itoa(len(w.pending))}
	case w.req.minor == 1:
		w.chunked = true
	default:
		w.closeAfter = true // HTTP/1.0: the end of the connection ends the body
	}
	if httpguts.HeaderValuesContainsToken(h[hdrConnection], "close") {
		w.closeAfter = true
	}
	delete(h, hdrConnection)
	if w.req.close || w.draining.Load() || (w.body != nil && w.body.remain.Load() > maxDiscard) {
		// A request body too large to read and drop after the handler
		// ends the connection too; the client is told before the response.
		w.closeAfter = true
	} else if w.req.minor == 0 && !w.closeAfter {
		keepAlive10 = true
	}

	bw := w.bw
	bw.WriteString(statusLine(w.status))
	for k, vv := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) || !httpguts.ValidHeaderFieldName(k) || declaredTrailer(declared, k) {
			continue
		}
		for _, v := range vv {
			bw.WriteString(k)
			bw.WriteString(": ")
			writeHeaderValue(bw, v)
			bw.WriteString("\r\n")
		}
	}
	if _, ok := h["Date"]; !ok {
		bw.WriteString("Date: ")
		bw.WriteString(httpDate())
		bw.WriteString("\r\n")
	}
	switch {
	case w.chunked:
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	case w.closeAfter:
		bw.WriteString("Connection: close\r\n")
	case keepAlive10:
		bw.WriteString("Connection: keep-alive\r\n")
	}
	if w.chunked && w.closeAfter {
		bw.WriteString("Connection: close\r\n")
	}
	bw.WriteString("\r\n")
	if len(w.pending) > 0 {
		p := w.pending
		w.pending = w.pending[:0]
		w.writeBody(p)
	}
}

// finish completes the response after the handler returned: the head if it
// is still held back, the last chunk with the trailers, and a flush.
func (w *h1Writer) finish() error {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(true)
	}
	if w.err != nil {
		return w.err
	}
	if w.chunked {
		w.bw.WriteString("0\r\n")
		w.writeTrailers()
		w.bw.WriteString("\r\n")
	} else if w.length >= 0 && w.written < w.length && !w.noBody {
		w.closeAfter = true // a short body: the client learns by the connection closing
	}
	if err := w.bw.Flush(); err != nil {
		return err
	}
	return nil
}

// writeTrailers writes the values of the trailers the head declared, and of
// the header keys with http.TrailerPrefix.
func (w *h1Writer) writeTrailers() {
	for k, vv := range w.header {
		name, ok := strings.CutPrefix(k, http.TrailerPrefix)
		if !ok || !validTrailer(name) {
			continue
		}
		for _, v := range vv {
			w.bw.WriteString(name)
			w.bw.WriteString(": ")
			writeHeaderValue(w.bw, v)
			w.bw.WriteString("\r\n")
		}
	}
	for _, decl := range w.header[hdrTrailer] {
		for name := range strings.SplitSeq(decl, ",") {
			name = http.CanonicalHeaderKey(strings.TrimSpace(name))
			if !validTrailer(name) {
				continue
			}
			for _, v := range w.header[name] {
				w.bw.WriteString(name)
				w.bw.WriteString(": ")
				writeHeaderValue(w.bw, v)
				w.bw.WriteString("\r\n")
			}
		}
	}
}

// validTrailer reports a name that may be sent as a trailer: a valid
// field name, and not one of those that frame the message.
func validTrailer(name string) bool {
	switch name {
	case hdrContentLength, hdrTransferEncoder, hdrTrailer, "Host", hdrConnection:
		return false
	}
	return httpguts.ValidHeaderFieldName(name)
}

// declaredTrailer reports whether key is named in the Trailer header values.
func declaredTrailer(declared []string, key string) bool {
	for _, d := range declared {
		for name := range strings.SplitSeq(d, ",") {
			if strings.EqualFold(strings.TrimSpace(name), key) {
				return true
			}
		}
	}
	return false
}

// writeHeaderValue writes v with any CR or LF replaced by a space, as
// net/http does: a value can never start a header of its own.
func writeHeaderValue(bw *bufio.Writer, v string) {
	if strings.ContainsAny(v, "\r\n") {
		v = strings.NewReplacer("\r", " ", "\n", " ").Replace(v)
	}
	bw.WriteString(v)
}

var statusLines [600]string

func init() {
	for code := 100; code < len(statusLines); code++ {
		statusLines[code] = "HTTP/1.1 " + strconv.Itoa(code) + " " + http.StatusText(code) + "\r\n"
	}
}

func statusLine(code int) string {
	if code < len(statusLines) {
		return statusLines[code]
	}
	return "HTTP/1.1 " + strconv.Itoa(code) + " \r\n"
}

// httpDate is the Date header of this second, formatted once per second.
func httpDate() string {
	now := time.Now()
	if d := dateCache.Load(); d != nil && d.unix == now.Unix() {
		return d.text
	}
	d := &cachedDate{unix: now.Unix(), text: now.UTC().Format(http.TimeFormat)}
	dateCache.Store(d)
	return d.text
}

type cachedDate struct {
	unix int64
	text string
}

var dateCache atomic.Pointer[cachedDate]

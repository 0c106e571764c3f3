package h2

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Server serves HTTP/2 connections (prior knowledge: the client preface is
// the first thing read from the connection, as after TLS with ALPN "h2" or
// after a detector saw the h2c preface). The zero value of each field is
// usable and documented.
type Server struct {
	// Handler serves every request. The request's context ends when the
	// client resets the stream, the connection ends, or the handler returns.
	// A handler that panics with http.ErrAbortHandler (or anything) has its
	// stream reset (INTERNAL_ERROR) instead of ending cleanly.
	Handler http.Handler
	// MaxHeaderBytes bounds a request's header list (the sum of name and
	// value lengths plus 32 per field, RFC 9113 §6.5.2), advertised as
	// SETTINGS_MAX_HEADER_LIST_SIZE (with 320 bytes of slack). A larger
	// list is answered 431; a single field larger than the whole limit
	// ends the connection (COMPRESSION_ERROR), as its decoding stops
	// there. 0: 64 KiB.
	MaxHeaderBytes int
	// IdleTimeout closes a connection with no open stream for this long
	// (GOAWAY first). 0: no limit.
	IdleTimeout time.Duration
	// MaxConcurrentStreams is advertised to clients, and streams beyond it
	// are refused (RST_STREAM REFUSED_STREAM). 0: 250.
	MaxConcurrentStreams uint32
	// StreamWindow and ConnWindow are the receive windows of a request body
	// and of the connection: how much the client may send ahead of the
	// handler's reads. 0: 1 MiB and 4 MiB.
	StreamWindow, ConnWindow int32
	// MaxReadFrameSize is the largest frame payload accepted (advertised as
	// SETTINGS_MAX_FRAME_SIZE). 0: 1 MiB.
	MaxReadFrameSize uint32
	// CountError, if set, is called with a short label (for a metric) for
	// each protocol error a client makes: the connection or stream is ended
	// with the matching error code, and the label says why.
	CountError func(errType string)
	// ErrorLog, if set, receives unexpected errors (handler panics other
	// than http.ErrAbortHandler).
	ErrorLog func(msg string, args ...any)
}

// ServeConn serves c until the client closes it or goes away, a protocol
// error ends it, it idles out, or it is closed. When ctx ends the server
// shuts the connection down gracefully: GOAWAY, then the streams already
// open finish, then c is closed. Closing c from elsewhere cuts everything.
// ServeConn returns after every handler it started has returned, and c is
// always closed by then. Request contexts carry ctx's values, not its
// cancellation.
func (s *Server) ServeConn(ctx context.Context, c net.Conn) {
	s.serveConn(ctx, c)
}

// ClientConfig configures client connections. The zero value of each field
// is usable and documented.
type ClientConfig struct {
	// StreamWindow and ConnWindow are the receive windows of a response
	// body and of the connection. 0: 4 MiB and 64 MiB.
	StreamWindow, ConnWindow int32
	// MaxReadFrameSize is the largest frame payload accepted. 0: 256 KiB.
	MaxReadFrameSize uint32
	// MaxHeaderListSize bounds a response's header list (and its trailers).
	// 0: 1 MiB.
	MaxHeaderListSize uint32
	// ReadIdleTimeout: with no frame from the server for this long, the
	// connection sends a PING; with no frame PingTimeout after it, the
	// connection is closed and its streams fail. 0: no health check.
	ReadIdleTimeout, PingTimeout time.Duration
	// OnGone, if set, is called once, from the connection's goroutine, when
	// it stops taking new requests (GOAWAY received, closed, or failed).
	OnGone func(*ClientConn)
}

// ErrRefused is returned (wrapped) by RoundTrip when the server did not
// process the request: it was refused (REFUSED_STREAM), sent on a stream
// above a GOAWAY's last stream ID, or never sent because the connection
// was gone. Such a request may be sent again on another connection.
var ErrRefused = errors.New("h2: request not processed by the server")

// ErrNotSent (which is also ErrRefused) is returned by RoundTrip when no
// part of the request left, and its body was not read: the connection was
// gone or full. The request may go again on another connection as is.
var ErrNotSent = fmt.Errorf("%w: not sent", ErrRefused)

// NewClientConn starts an HTTP/2 client connection on c (already connected,
// and TLS-handshaked with ALPN "h2" if over TLS): it writes the client
// preface and SETTINGS, and starts the goroutine that reads frames. It does
// not wait for the server's SETTINGS.
func NewClientConn(c net.Conn, cfg ClientConfig) (*ClientConn, error) {
	return newClientConn(c, cfg)
}

// RoundTrip sends req on a new stream and returns the response once its
// headers arrived. req.URL's scheme and host give :scheme and (unless
// req.Host is set) :authority. The request body is sent by a goroutine of
// RoundTrip's own when it is not already complete; req.Trailer, if it has
// keys, is sent after the body. The response body streams; closing it early
// resets the stream (CANCEL). Ending req's context resets the stream too.
// A RoundTrip must follow a successful Reserve when the connection is
// shared by a pool; without one it takes a stream if one is free.
func (cc *ClientConn) RoundTrip(req *http.Request) (*http.Response, error) {
	return cc.roundTrip(req)
}

// Reserve reports whether the connection can take one more request, and
// if so reserves a stream for the next RoundTrip.
func (cc *ClientConn) Reserve() bool { return cc.reserve() }

// Idle returns how long the connection has had no stream open (0 when one
// is) and whether it still takes requests.
func (cc *ClientConn) Idle() (time.Duration, bool) { return cc.idle() }

// CloseIfIdle closes the connection if it has had no stream open and none
// reserved for at least d, in one step with respect to Reserve; it
// reports whether it did.
func (cc *ClientConn) CloseIfIdle(d time.Duration) bool { return cc.closeIfIdleFor(d) }

// Close closes the connection at once; streams in flight fail.
func (cc *ClientConn) Close() error { return cc.close(errClientClosed) }

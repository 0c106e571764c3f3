package httpproxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/meshlet/meshlet/proxy/balance"
)

// call is one request's state as it passes down the layers. It is the only
// per-request allocation of the proxy itself (besides the outgoing
// http.Request): the URL, the body wrapper and the context are fields of it.
//
// call is also the outgoing request's context: it delegates to the
// incoming request's context (cancelled when the client goes away, and by
// the request timeout) and answers Value(callKey{}) with itself, which is how
// the mTLS dialers and the mesh pool learn the peer identity to require.
type call struct {
	parent context.Context
	conn   *conn
	w      http.ResponseWriter
	r      *http.Request

	// Set from the request head before the layers run.
	upgrade    []string // the Upgrade header of an upgrade request, nil otherwise
	teTrailers bool     // the client accepts trailers (TE: trailers)

	// Set by the routing layers.
	authority string
	bal       *balance.Balancer
	addr      string // upstream address, ip:port or host:port
	up        upstream
	identity  string      // expected SPIFFE ID of the upstream; "" in plaintext
	peer      spiffeid.ID // identity, parsed
	ep        *balance.Endpoint
	epStart   int64
	epDone    bool
	retried   bool // sent again after a connect failure (stack.go)
	route     *route

	// Set by the timing and forwarding layers.
	start      time.Time
	timer      *time.Timer // the request timeout, stopped at response headers
	status     int         // status sent downstream
	grpcStatus string      // grpc-status sent downstream, "" if none
	wrote      bool        // the response head was sent: errors can only abort now
	answered   bool        // that head was the proxy's own error response
	closeConn  bool        // the error response closes the connection
	rejected   error       // why the request is refused before routing

	url  url.URL
	body noCloseBody
}

type callKey struct{}

func (c *call) Deadline() (time.Time, bool) { return c.parent.Deadline() }
func (c *call) Done() <-chan struct{}       { return c.parent.Done() }
func (c *call) Err() error                  { return c.parent.Err() }
func (c *call) Value(k any) any {
	if _, ok := k.(callKey); ok {
		return c
	}
	return c.parent.Value(k)
}
func (c *call) String() string { return "httpproxy.call" }

func (c *call) ctx() context.Context { return c.parent }

// gotHeaders records the arrival of the upstream's response headers: the
// request timeout stops, latency is observed, and the endpoint's RTT and
// failure are reported to the balancer.
func (c *call) gotHeaders(status int) {
	if c.timer != nil {
		c.timer.Stop()
	}
	c.route.latency.Observe(float64(time.Since(c.start).Microseconds()) / 1000)
	c.endpointDone(status >= 500)
}

func (c *call) endpointDone(failed bool) {
	if c.ep != nil && !c.epDone {
		c.epDone = true
		c.ep.Done(c.epStart, failed)
	}
}

// noCloseBody keeps the transport from closing the server's request body:
// closing it early, before the server sent 100 Continue, would make it wait
// for a body the client will never send (see httputil.ReverseProxy). The
// server closes it after the handler returns.
//
// The transport may still be reading the body (to write it upstream) when
// the response is complete and the handler returns; the server then reuses
// its buffered reader for the next request on the connection. end, called
// as the handler returns, makes later reads fail instead of racing with it
// (golang.org/issue/46866).
type noCloseBody struct {
	rc    io.ReadCloser
	ended atomic.Bool
}

var errBodyAfterHandler = errors.New("httpproxy: request body read after its request ended")

func (b *noCloseBody) Read(p []byte) (int, error) {
	if b.ended.Load() {
		return 0, errBodyAfterHandler
	}
	return b.rc.Read(p)
}

// ReadNow passes on the server's ReadNow (package h2): a request body
// already complete leaves with the request's headers.
func (b *noCloseBody) ReadNow(p []byte) (int, error) {
	if b.ended.Load() {
		return 0, errBodyAfterHandler
	}
	if nr, ok := b.rc.(interface{ ReadNow([]byte) (int, error) }); ok {
		return nr.ReadNow(p)
	}
	return 0, nil
}

func (b *noCloseBody) Close() error { return nil }

func (b *noCloseBody) end() { b.ended.Store(true) }

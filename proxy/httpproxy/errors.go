package httpproxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
)

// reason is why the proxy, rather than the upstream, ended a request. Each
// reason has exactly one status code, one metric label and one gRPC code;
// they live in reasons below and nowhere else.
type reason uint8

const (
	reasonNone             reason = iota
	reasonNoEndpoints             // the authority is known but has no ready endpoint
	reasonResolveTimeout          // the control plane did not answer within the connect timeout
	reasonUnknownAuthority        // the control plane does not know it and there is no original destination
	reasonConnect                 // the TCP connect failed (refused, unreachable)
	reasonConnectTimeout          // the TCP connect or TLS handshake timed out
	reasonTLS                     // the mTLS handshake failed, e.g. the peer's identity is not the expected one
	reasonRequestTimeout          // no response headers within Config.RequestTimeout
	reasonUpstream                // the upstream reset the stream or broke the protocol
	reasonClientGone              // the downstream client went away; nothing is written
	reasonBadRequest              // a request the proxy will not forward (CONNECT, bad Host)
	numReasons
)

// reasonInfo is the one table mapping proxy failures to what the client
// sees. gRPC clients get a Trailers-Only response with grpcCode instead of
// an HTTP error status, since gRPC status codes are what they act on.
var reasons = [numReasons]struct {
	name     string
	status   int
	grpcCode string // as in google.golang.org/grpc/codes
}{
	reasonNone:             {"", http.StatusOK, "0"},
	reasonNoEndpoints:      {"no-endpoints", http.StatusServiceUnavailable, "14"},      // UNAVAILABLE
	reasonResolveTimeout:   {"resolve-timeout", http.StatusServiceUnavailable, "14"},   // UNAVAILABLE
	reasonUnknownAuthority: {"unknown-authority", http.StatusServiceUnavailable, "14"}, // UNAVAILABLE
	reasonConnect:          {"connect", http.StatusBadGateway, "14"},                   // UNAVAILABLE
	reasonConnectTimeout:   {"connect-timeout", http.StatusGatewayTimeout, "14"},       // UNAVAILABLE
	reasonTLS:              {"tls", http.StatusBadGateway, "14"},                       // UNAVAILABLE
	reasonRequestTimeout:   {"request-timeout", http.StatusGatewayTimeout, "4"},        // DEADLINE_EXCEEDED
	reasonUpstream:         {"upstream", http.StatusBadGateway, "14"},                  // UNAVAILABLE
	reasonClientGone:       {"client-gone", 499, "1"},                                  // CANCELLED
	reasonBadRequest:       {"bad-request", http.StatusBadRequest, "13"},               // INTERNAL
}

func (r reason) String() string { return reasons[r].name }

// proxyError is a failure the layers return; classify turns any error into
// one of these.
type proxyError struct {
	reason reason
	err    error
}

func (e *proxyError) Error() string {
	if e.err == nil {
		return "httpproxy: " + e.reason.String()
	}
	return "httpproxy: " + e.reason.String() + ": " + e.err.Error()
}

func (e *proxyError) Unwrap() error { return e.err }

func errorf(r reason, format string, args ...any) error {
	return &proxyError{reason: r, err: fmt.Errorf(format, args...)}
}

// dialError marks an error from establishing an upstream connection, so it
// can be told apart from a failure of a request on an established one.
type dialError struct {
	tls bool // the TCP connect succeeded, the TLS handshake did not
	err error
}

func (e *dialError) Error() string {
	if e.tls {
		return "tls handshake: " + e.err.Error()
	}
	return "dial: " + e.err.Error()
}

func (e *dialError) Unwrap() error { return e.err }

// errRequestTimeout is the cancellation cause set when Config.RequestTimeout
// expires, so a cancelled upstream request can be told from a client that
// went away.
var errRequestTimeout = errors.New("httpproxy: request timeout")

// classify maps an error from the layers to its reason. It is the only
// place that interprets errors.
func classify(c *call, err error) reason {
	var pe *proxyError
	if errors.As(err, &pe) {
		return pe.reason
	}
	if c.r.Context().Err() != nil {
		return reasonClientGone
	}
	if context.Cause(c.ctx()) == errRequestTimeout {
		return reasonRequestTimeout
	}
	var de *dialError
	if errors.As(err, &de) {
		var ne net.Error
		switch {
		case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
			return reasonConnectTimeout
		case de.tls:
			return reasonTLS
		}
		return reasonConnect
	}
	var re *tls.RecordHeaderError
	if errors.As(err, &re) {
		return reasonTLS
	}
	return reasonUpstream
}

// writeError answers a request the proxy failed, if nothing was written
// yet, and counts it. It returns the reason for the response metrics.
func (c *call) writeError(err error) reason {
	r := classify(c, err)
	c.conn.p.metrics.proxyError(c.conn.info.Direction, r)
	if c.conn.p.log.Enabled(c.r.Context(), levelDebug) {
		c.conn.p.log.Debug("request failed", "direction", c.conn.info.Direction.String(),
			"authority", c.authority, "reason", r.String(), "error", err)
	}
	if r == reasonClientGone || c.wrote {
		return r
	}
	info := reasons[r]
	h := c.w.Header()
	clear(h)
	h["Meshlet-Proxy-Error"] = []string{info.name}
	if c.closeConn {
		h["Connection"] = []string{"close"}
	}
	if isGRPC(c.r) {
		// Trailers-Only: a gRPC client reads the status from the headers of
		// a response that ends right away.
		h["Content-Type"] = []string{"application/grpc"}
		h["Grpc-Status"] = []string{info.grpcCode}
		h["Grpc-Message"] = []string{"meshlet proxy: " + info.name}
		c.status = http.StatusOK
		c.grpcStatus = info.grpcCode
	} else {
		h["Content-Type"] = []string{"text/plain; charset=utf-8"}
		h["Content-Length"] = []string{strconv.Itoa(len(info.name) + 1)}
		c.status = info.status
	}
	c.w.WriteHeader(c.status)
	c.wrote, c.answered = true, true
	if c.grpcStatus == "" {
		_, _ = c.w.Write([]byte(info.name + "\n"))
	}
	return r
}

func isGRPC(r *http.Request) bool {
	ct := r.Header["Content-Type"]
	return len(ct) > 0 && len(ct[0]) >= 16 && ct[0][:16] == "application/grpc"
}

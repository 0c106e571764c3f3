package httpproxy

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/meshlet/meshlet/proxy/h2"
	"github.com/meshlet/meshlet/proxy/meshtls"
	"github.com/meshlet/meshlet/proxy/rawio"
)

// upstream selects how a request leaves the proxy.
type upstream uint8

const (
	upHTTP1  upstream = iota // plaintext HTTP/1.1, keep-alive pool
	upH2C                    // plaintext HTTP/2 with prior knowledge (gRPC, h2c apps)
	upMeshH2                 // HTTP/2 over mTLS to a meshed proxy, one multiplexed connection per endpoint
	upMeshH1                 // HTTP/1.1 over mTLS to a meshed proxy: HTTP/1 requests of the common case, and upgrades
	numUpstreams
)

// scheme is the URL scheme each transport expects.
var schemes = [numUpstreams]string{upHTTP1: "http", upH2C: "http", upMeshH2: "https", upMeshH1: "https"}

// upstreams owns the proxy's transports. They are built once, tuned for a
// sidecar (no compression, no environment proxy, large keep-alive pools),
// and never shared with or mutated by anything else.
type upstreams struct {
	cfg    *Config
	dialer net.Dialer
	rt     [numUpstreams]http.RoundTripper

	h1, meshH1  *http.Transport
	h2c, meshH2 *h2Pool   // HTTP/2 to h2c applications, and over mTLS to meshed proxies
	fastH1      *h1Client // plaintext HTTP/1.1 of the common case; the rest falls back to h1
	meshFastH1  *h1Client // HTTP/1.1 over mTLS to meshed proxies, keep-alive, pooled by identity; upgrades fall back to meshH1
}

// maxFrameSize is the largest HTTP/2 DATA frame the proxy accepts from
// upstreams: a whole copy buffer fits in one frame, instead of the default
// 16 KiB, halving frame overhead on large bodies.
const maxFrameSize = 1 << 18

// h1Only is shared read-only by every HTTP/1-only server and transport.
var h1Only = func() *http.Protocols {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	return p
}()

func newUpstreams(cfg *Config) *upstreams {
	u := &upstreams{cfg: cfg}
	u.dialer = net.Dialer{KeepAlive: 30 * time.Second}
	u.h1 = &http.Transport{
		DialContext:            func(ctx context.Context, _, addr string) (net.Conn, error) { return u.dialTCP(ctx, addr) },
		MaxIdleConnsPerHost:    cfg.MaxIdleConnsPerHost,
		IdleConnTimeout:        cfg.UpstreamIdleTimeout,
		DisableCompression:     true, // bodies pass through as the app encoded them
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 1 << 20,
		WriteBufferSize:        16 << 10,
		ReadBufferSize:         16 << 10,
		Protocols:              h1Only,
	}
	u.meshH1 = &http.Transport{
		DialTLSContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return u.dialMesh(ctx, addr, meshtls.ALPNHTTP1)
		},
		// An upgraded connection is consumed by its tunnel; a request that
		// was not upgraded is rare enough not to keep a pool, and no pooled
		// connection can then ever reach an address under a stale identity.
		DisableKeepAlives:      true,
		DisableCompression:     true,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 1 << 20,
		Protocols:              h1Only,
	}
	h2cfg := h2.ClientConfig{
		MaxReadFrameSize:  maxFrameSize,
		MaxHeaderListSize: 1 << 20,
		ReadIdleTimeout:   30 * time.Second,
		PingTimeout:       15 * time.Second,
	}
	u.h2c = &h2Pool{
		dial:        func(ctx context.Context, key poolKey) (net.Conn, error) { return u.dialTCP(ctx, key.addr) },
		cfg:         h2cfg,
		idleTimeout: cfg.UpstreamIdleTimeout,
	}
	u.meshH2 = &h2Pool{
		dial:        func(ctx context.Context, key poolKey) (net.Conn, error) { return u.dialMesh(ctx, key.addr, "h2") },
		mesh:        true,
		cfg:         h2cfg,
		idleTimeout: cfg.UpstreamIdleTimeout,
	}
	u.fastH1 = &h1Client{
		dial:        func(ctx context.Context, key poolKey) (net.Conn, error) { return u.dialTCP(ctx, key.addr) },
		fallback:    u.h1,
		maxIdle:     cfg.MaxIdleConnsPerHost,
		idleTimeout: cfg.UpstreamIdleTimeout,
		checkAlways: true,
	}
	u.meshFastH1 = &h1Client{
		dial: func(ctx context.Context, key poolKey) (net.Conn, error) {
			return u.dialMesh(ctx, key.addr, meshtls.ALPNHTTP1)
		},
		fallback:    u.meshH1,
		maxIdle:     cfg.MaxIdleConnsPerHost,
		idleTimeout: cfg.UpstreamIdleTimeout,
		maxConns:    cfg.MeshHTTP1Conns,
		overflow: func(req *http.Request) (*http.Response, error) {
			req.Header[hdrOrigProto] = valOrigHTTP11 // as any HTTP/1 request sent over HTTP/2
			return u.meshH2.RoundTrip(req)
		},
	}
	u.rt = [numUpstreams]http.RoundTripper{upHTTP1: u.fastH1, upH2C: u.h2c, upMeshH2: u.meshH2, upMeshH1: u.meshFastH1}
	return u
}

// dialTCP connects to addr within the connect timeout.
func (u *upstreams) dialTCP(ctx context.Context, addr string) (net.Conn, error) {
	if u.cfg.ConnectTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, u.cfg.ConnectTimeout)
		defer cancel()
	}
	c, err := u.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, &dialError{err: err}
	}
	return rawio.Wrap(c), nil
}

// dialMesh connects to a meshed proxy at addr with mTLS, requiring the
// identity of the request being served (read from ctx) and negotiating alpn.
// The connect timeout covers TCP and TLS together.
func (u *upstreams) dialMesh(ctx context.Context, addr, alpn string) (*tls.Conn, error) {
	c, _ := ctx.Value(callKey{}).(*call)
	if c == nil || c.peer.IsZero() || u.cfg.Identity == nil {
		return nil, &dialError{tls: true, err: errors.New("no peer identity for an mTLS connection")}
	}
	if u.cfg.ConnectTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, u.cfg.ConnectTimeout)
		defer cancel()
	}
	raw, err := u.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, &dialError{err: err}
	}
	tc := tls.Client(rawio.Wrap(raw), meshtls.ClientConfig(u.cfg.Identity, c.peer, alpn))
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, &dialError{tls: true, err: err}
	}
	if got := tc.ConnectionState().NegotiatedProtocol; got != alpn {
		tc.Close()
		return nil, &dialError{tls: true, err: errors.New("peer negotiated ALPN " + quote(got) + ", want " + alpn)}
	}
	return tc, nil
}

func quote(s string) string { return "\"" + s + "\"" }

// sweep closes pooled connections idle for longer than the idle timeout
// (the transports of net/http and x/net do it on their own).
func (u *upstreams) sweep() {
	u.fastH1.sweep()
	u.meshFastH1.sweep()
	u.h2c.sweep()
	u.meshH2.sweep()
}

func (u *upstreams) close() {
	u.h1.CloseIdleConnections()
	u.fastH1.close()
	u.meshFastH1.close()
	u.meshH1.CloseIdleConnections()
	u.h2c.close()
	u.meshH2.close()
}

package httpproxy

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshlet/meshlet/proxy/balance"
	"github.com/meshlet/meshlet/proxy/meshtls"
)

const levelDebug = slog.LevelDebug

// Config configures a Proxy. The zero value of every field is usable and
// documented; New checks the rest with Validate.
type Config struct {
	// Balancers resolves outbound authorities to endpoints. nil: outbound
	// requests are answered 503 (unknown-authority) unless forwarded to
	// their original destination — they are, since without a cache no
	// authority is known.
	Balancers *balance.Cache
	// Identity supplies this proxy's SVID and trust bundle. nil: no mTLS;
	// meshed endpoints are reached in plaintext in the application's
	// protocol, like unmeshed ones.
	Identity meshtls.Source
	// InboundTarget is the host:port inbound requests are sent to. "" (the
	// default) means 127.0.0.1:<the connection's original port>.
	InboundTarget string

	// ConnectTimeout bounds the TCP connect plus TLS handshake to an
	// upstream, and the wait for an authority's first resolution. 0: no
	// limit other than the request's.
	ConnectTimeout time.Duration
	// RequestTimeout bounds the time from a request's headers to its
	// response's headers (504 request-timeout when it expires); a response
	// body may then stream for as long as it needs. 0: no limit.
	RequestTimeout time.Duration
	// DrainTimeout bounds how long ServeConn lets in-flight requests and
	// upgraded (WebSocket) tunnels finish after its ctx ends, before closing
	// the connection. 0: wait for them without limit.
	DrainTimeout time.Duration
	// HeaderReadTimeout bounds reading an HTTP/1 request head. 0: 10s.
	HeaderReadTimeout time.Duration
	// IdleTimeout closes a downstream connection with no request for this
	// long. 0: 90s.
	IdleTimeout time.Duration
	// MaxHeaderBytes limits an HTTP/1 request head (431 beyond) and an
	// HTTP/2 header list. 0: 64 KiB.
	MaxHeaderBytes int
	// UpstreamIdleTimeout closes pooled upstream connections idle this long.
	// 0: 90s.
	UpstreamIdleTimeout time.Duration
	// MaxIdleConnsPerHost is the HTTP/1 keep-alive pool size per upstream
	// address. 0: 256.
	MaxIdleConnsPerHost int
	// MeshHTTP1Conns bounds the HTTP/1.1 connections to one meshed
	// endpoint (per identity); HTTP/1 requests beyond it travel on the
	// endpoint's HTTP/2 connection. 0: 64.
	MeshHTTP1Conns int

	// Registry receives the proxy's metrics. nil: they are kept but not
	// exported.
	Registry prometheus.Registerer
	// Logger receives debug logs of failed requests and warnings. nil:
	// discarded.
	Logger *slog.Logger
}

// Validate reports a field out of range.
func (c *Config) Validate() error {
	if c.InboundTarget != "" {
		if _, _, err := net.SplitHostPort(c.InboundTarget); err != nil {
			return fmt.Errorf("httpproxy: inbound target %q: %w", c.InboundTarget, err)
		}
	}
	for name, d := range map[string]time.Duration{
		"connect timeout": c.ConnectTimeout, "request timeout": c.RequestTimeout,
		"drain timeout": c.DrainTimeout, "header read timeout": c.HeaderReadTimeout,
		"idle timeout": c.IdleTimeout, "upstream idle timeout": c.UpstreamIdleTimeout,
	} {
		if d < 0 {
			return fmt.Errorf("httpproxy: %s %v is negative", name, d)
		}
	}
	if c.MaxHeaderBytes < 0 || c.MaxIdleConnsPerHost < 0 || c.MeshHTTP1Conns < 0 {
		return fmt.Errorf("httpproxy: max header bytes %d, max idle conns per host %d and mesh HTTP/1 conns %d must not be negative",
			c.MaxHeaderBytes, c.MaxIdleConnsPerHost, c.MeshHTTP1Conns)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.HeaderReadTimeout == 0 {
		c.HeaderReadTimeout = 10 * time.Second
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 90 * time.Second
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = 64 << 10
	}
	if c.UpstreamIdleTimeout == 0 {
		c.UpstreamIdleTimeout = 90 * time.Second
	}
	if c.MaxIdleConnsPerHost == 0 {
		c.MaxIdleConnsPerHost = 256
	}
	if c.MeshHTTP1Conns == 0 {
		c.MeshHTTP1Conns = 64
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError + 1}))
	}
	return c
}

// Proxy forwards HTTP requests of the connections handed to ServeConn. It is
// safe for concurrent use; one Proxy serves both directions.
type Proxy struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	up      *upstreams

	inbound, outbound, reject step // the layer stacks, built once in New (stack.go)

	eps epCache

	// closed ends when Close is called: tunnels and draining connections
	// are cut.
	closed      context.Context
	closeCancel context.CancelFunc
	closeOnce   sync.Once
	errLogOnce  sync.Once
	errLog      *log.Logger
	tunnels     sync.WaitGroup
}

// New returns a Proxy for cfg.
func New(cfg Config) (*Proxy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	m, err := newMetrics(cfg.Registry)
	if err != nil {
		return nil, err
	}
	p := &Proxy{cfg: cfg, log: cfg.Logger, metrics: m}
	p.closed, p.closeCancel = context.WithCancel(context.Background())
	p.up = newUpstreams(&p.cfg)
	p.buildStacks()
	p.startSweep(time.Minute)
	return p, nil
}

// Close closes pooled upstream connections and ends upgraded tunnels and
// connections still draining. Call it after the ServeConn calls returned
// (or to cut them short).
func (p *Proxy) Close() error {
	p.closeOnce.Do(func() {
		p.closeCancel()
		p.stopSweep()
	})
	p.up.close()
	p.tunnels.Wait()
	return nil
}

// ServeConn serves HTTP requests on c until the client closes it, it idles
// out, or ctx ends; then in-flight requests (and upgraded tunnels) are let
// finish, for at most Config.DrainTimeout, before c is closed and ServeConn
// returns. c is always closed on return.
func (p *Proxy) ServeConn(ctx context.Context, c net.Conn, info ConnInfo) {
	cn := p.newConn(info)
	if info.Protocol == HTTP2 {
		p.serveHTTP2(ctx, c, cn)
	} else {
		p.serveHTTP1(ctx, c, cn)
	}
}

// drainClock runs a connection's drain, which started now: it returns when
// finished is closed, or cuts what is left of cn (its kill context) once
// Config.DrainTimeout passed or the Proxy is closed.
func (p *Proxy) drainClock(finished <-chan struct{}, cn *conn) {
	dctx, cancel := p.drainContext()
	defer cancel()
	select {
	case <-finished:
	case <-dctx.Done():
		cn.killCancel()
	}
}

// drainContext returns the context of a drain starting now: it ends after
// Config.DrainTimeout (if set) or when the Proxy is closed.
func (p *Proxy) drainContext() (context.Context, context.CancelFunc) {
	if p.cfg.DrainTimeout > 0 {
		return context.WithTimeout(p.closed, p.cfg.DrainTimeout)
	}
	return context.WithCancel(p.closed)
}

var _ http.Handler = (*conn)(nil)

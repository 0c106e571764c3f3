package httpproxy

import (
	"context"
	"net"

	"github.com/meshlet/meshlet/proxy/h2"
)

// serveHTTP2 serves c with the proxy's own HTTP/2 server (package h2).
// Ending ctx sends GOAWAY on this connection and lets its streams finish;
// the drain clock then cuts what is left.
func (p *Proxy) serveHTTP2(ctx context.Context, c net.Conn, cn *conn) {
	srv := &h2.Server{
		Handler:        cn,
		MaxHeaderBytes: p.cfg.MaxHeaderBytes,
		IdleTimeout:    p.cfg.IdleTimeout,
		// Receive windows: 1 MiB per stream, 4 MiB per connection, so one
		// large upload does not starve the other streams of a connection
		// that carries everything between two proxies.
		StreamWindow: 1 << 20,
		ConnWindow:   4 << 20,
		CountError: func(errType string) {
			p.metrics.protocolError(cn.info.Direction, "http2", errType)
		},
		ErrorLog: func(msg string, args ...any) { p.log.Debug(msg, args...) },
	}
	served := make(chan struct{})
	stop := context.AfterFunc(ctx, func() { p.drainClock(served, cn) })
	stopKill := context.AfterFunc(cn.kill, func() { c.Close() }) // drain expired, or Proxy.Close
	srv.ServeConn(ctx, c)
	close(served)
	stop()
	stopKill()
	cn.killCancel()
}

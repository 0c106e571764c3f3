//lint:file-ignore SA1019 x/net's Server.ServeConn serves one connection the listener already accepted, detected and (inbound) TLS-terminated, with a GOAWAY drain of that connection alone; net/http's bundled copy of the same server is reachable only through Server.Serve and its own TLS and protocol handling.

package httpproxy

import (
	"context"
	"net"
	"net/http"

	"golang.org/x/net/http2"
)

// serveHTTP2 serves c with golang.org/x/net/http2. Each connection gets its
// own (cheap) http.Server and http2.Server pair so that ending this
// connection's ctx sends GOAWAY on this connection only: Shutdown of the
// http.Server is the x/net hook for a graceful HTTP/2 shutdown.
func (p *Proxy) serveHTTP2(ctx context.Context, c net.Conn, cn *conn) {
	hs := &http.Server{
		Handler:        cn,
		MaxHeaderBytes: p.cfg.MaxHeaderBytes,
		IdleTimeout:    p.cfg.IdleTimeout,
		ErrorLog:       p.errorLog(),
	}
	h2s := &http2.Server{
		IdleTimeout: p.cfg.IdleTimeout,
		// Receive windows: 1 MiB per stream, 4 MiB per connection, so one
		// large upload does not starve the other streams of a connection
		// that carries everything between two proxies.
		MaxUploadBufferPerStream:     1 << 20,
		MaxUploadBufferPerConnection: 4 << 20,
		CountError: func(errType string) {
			p.metrics.protocolError(cn.info.Direction, "http2", errType)
		},
	}
	if err := http2.ConfigureServer(hs, h2s); err != nil {
		p.log.Warn("http2 server configuration", "error", err)
		c.Close()
		cn.killCancel()
		return
	}
	served := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = hs.Shutdown(context.Background()) // sends GOAWAY, returns at once
		p.drainClock(served, cn)
	})
	stopKill := context.AfterFunc(cn.kill, func() { c.Close() }) // drain expired, or Proxy.Close
	h2s.ServeConn(c, &http2.ServeConnOpts{Context: context.Background(), BaseConfig: hs, Handler: cn})
	close(served)
	stop()
	stopKill()
	cn.killCancel()
}

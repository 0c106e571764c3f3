package httpproxy

import (
	"bytes"
	"context"
	"log"
	"net"
	"net/http"
	"sync"
)

// serveHTTP1Std serves c with a net/http Server of its own, from the first
// request the fast path (h1server.go) did not take: the server's request
// parsing (a single valid Content-Length, chunked framing winning
// over Content-Length, the header size limit, ...) is what keeps ambiguous
// requests from reaching the proxy.
func (p *Proxy) serveHTTP1Std(ctx context.Context, c net.Conn, cn *conn) {
	done := make(chan struct{})
	var once sync.Once
	srv := &http.Server{
		Handler:           cn,
		ReadHeaderTimeout: p.cfg.HeaderReadTimeout,
		IdleTimeout:       p.cfg.IdleTimeout,
		MaxHeaderBytes:    p.cfg.MaxHeaderBytes,
		ErrorLog:          p.errorLog(),
		// HTTP/1 only: HTTP/2 arrives as a separate Protocol, and leaving
		// HTTP/2 configuration out saves its setup on every connection.
		Protocols: h1Only,
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateClosed || s == http.StateHijacked {
				once.Do(func() { close(done) })
			}
		},
	}
	// Once ctx ends the drain clock runs; when it expires, whatever is
	// left (a slow request, a WebSocket tunnel) is cut. Proxy.Close cuts
	// at once.
	finished := make(chan struct{})
	stop := context.AfterFunc(ctx, func() { p.drainClock(finished, cn) })
	stopKill := context.AfterFunc(cn.kill, func() { srv.Close() })
	hc := &h1Conn{Conn: c, cn: cn}
	hc.fr.limit = p.cfg.MaxHeaderBytes + 4096 + 1024 // net/http's own slack, and then some
	cn.h1 = hc
	_ = srv.Serve(&oneConnListener{c: hc, done: done, ctx: ctx})
	select {
	case <-done:
	default: // ctx ended: no new requests; the one in flight finishes
		if err := srv.Shutdown(cn.kill); err != nil {
			srv.Close()
		}
		<-done
	}
	cn.tunnels.Wait()
	close(finished)
	stop()
	stopKill()
	cn.killCancel()
}

// oneConnListener hands its connection to http.Server.Serve once, then
// blocks until that connection is done or ctx ends, so Serve returns at the
// right moment without a goroutine of ours.
type oneConnListener struct {
	c     net.Conn
	taken bool // Serve calls Accept from one goroutine
	done  <-chan struct{}
	ctx   context.Context
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	if !l.taken {
		l.taken = true
		return l.c, nil
	}
	select {
	case <-l.done:
	case <-l.ctx.Done():
	}
	return nil, net.ErrClosed
}

func (l *oneConnListener) Close() error   { return nil }
func (l *oneConnListener) Addr() net.Addr { return l.c.LocalAddr() }

// h1Conn counts the requests net/http rejects before any handler runs. The
// server writes those responses straight to the connection, as the status
// line followed by exactly serverErrorHeaders; a response the proxy
// forwards always has its headers sorted (Connection before Content-Type)
// and a Date, so it never matches.
//
// It also feeds what the client sends to a framing follower, which finds
// requests with both Content-Length and Transfer-Encoding (framing.go).
type h1Conn struct {
	net.Conn
	cn *conn
	fr framing
}

func (c *h1Conn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.fr.feed(b[:n])
	}
	return n, err
}

var (
	statusLinePrefix   = []byte("HTTP/1.1 ")
	serverErrorHeaders = []byte("\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n")
)

func (c *h1Conn) Write(b []byte) (int, error) {
	if len(b) >= len(statusLinePrefix)+3 && (b[9] == '4' || b[9] == '5') && bytes.HasPrefix(b, statusLinePrefix) {
		if i := bytes.IndexByte(b, '\r'); i > 0 && bytes.HasPrefix(b[i:], serverErrorHeaders) {
			c.cn.p.metrics.protocolError(c.cn.info.Direction, "http1", string(b[9:12]))
		}
	}
	return c.Conn.Write(b)
}

// errorLog routes net/http's own log lines (a handler panic that is not
// ErrAbortHandler, TLS noise) to the proxy's logger at debug level.
func (p *Proxy) errorLog() *log.Logger {
	p.errLogOnce.Do(func() {
		p.errLog = log.New(slogWriter{p}, "", 0)
	})
	return p.errLog
}

type slogWriter struct{ p *Proxy }

func (w slogWriter) Write(b []byte) (int, error) {
	w.p.log.Debug("net/http", "msg", string(bytes.TrimSpace(b)))
	return len(b), nil
}

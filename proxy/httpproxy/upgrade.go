package httpproxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"

	"golang.org/x/net/http/httpguts"
)

// tunnel completes a protocol upgrade (WebSocket): the 101 response goes to
// the client on its hijacked connection, then bytes are copied both ways
// until either side ends. Tunnels are tracked: http.Server.Shutdown does not
// know hijacked connections, so ServeConn waits for them itself and ends
// them when its drain expires.
func (c *call) tunnel(res *http.Response) error {
	back, ok := res.Body.(io.ReadWriteCloser)
	if !ok {
		res.Body.Close()
		return errorf(reasonUpstream, "101 response without a writable body")
	}
	if c.upgrade == nil || !httpguts.HeaderValuesContainsToken(res.Header[hdrConnection], "upgrade") ||
		!asciiEqualFold(first(res.Header[hdrUpgrade]), c.upgrade[0]) {
		back.Close()
		return errorf(reasonUpstream, "upstream switched to %q, not the requested protocol", first(res.Header[hdrUpgrade]))
	}
	cn := c.conn
	cn.tunnels.Add(1) // before Hijack, so ServeConn, woken by the hijack, waits for us
	defer cn.tunnels.Done()
	cn.p.tunnels.Add(1)
	defer cn.p.tunnels.Done()

	front, brw, err := http.NewResponseController(c.w).Hijack()
	if err != nil {
		back.Close()
		return errorf(reasonBadRequest, "upgrade over %s: %w", c.r.Proto, err)
	}
	c.wrote, c.status = true, http.StatusSwitchingProtocols
	stop := context.AfterFunc(cn.kill, func() { front.Close(); back.Close() })
	defer stop()
	defer front.Close()
	defer back.Close()

	res.Body = nil // Write sends the head only; the body is the tunnel
	if err := res.Write(brw); err != nil {
		return &proxyError{reason: reasonClientGone, err: err}
	}
	if err := brw.Flush(); err != nil {
		return &proxyError{reason: reasonClientGone, err: err}
	}
	errc := make(chan error, 2)
	// brw.Reader may hold bytes the client sent right after its request.
	go func() { errc <- pipe(back, brw.Reader) }()
	go func() { errc <- pipe(front, back) }()
	// A tunnel's end, clean or not, is not an error of the request: the 101
	// was its response. When one side ends, both are closed so the other
	// copy returns too.
	<-errc
	front.Close()
	back.Close()
	<-errc
	return nil
}

// pipe copies with a pooled buffer; a closed connection is a normal end.
func pipe(dst io.Writer, src io.Reader) error {
	bp := bufPool.Get().(*[bufSize]byte)
	defer bufPool.Put(bp)
	_, err := io.CopyBuffer(writerOnly{dst}, src, bp[:])
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// writerOnly hides ReadFrom, so CopyBuffer uses the pooled buffer.
type writerOnly struct{ io.Writer }

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
